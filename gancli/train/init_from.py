"""`--init-from RUN`: a new run's networks start from another run's weights (a pretraining run, or a published
model brought in by `gancli import`), whatever critic normalization either run uses.

The generator must fit. The critic is carried over when the other run has one of the same shapes: it is read
under the other run's normalization, turned into the plain critic it computes with, and handed to the new run
before its own normalization (`--norm`, e.g. san) is applied; when the shapes differ it starts fresh, and a
warning says so.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

from torch import nn

from gancli.config import TrainConfig, apply_overrides, load_toml
from gancli.errors import CheckpointError, state_dict_mismatch
from gancli.nn import apply_config_norm
from gancli.nn.norms import plain_critic_state
from gancli.train import checkpoint as ckpt

log = logging.getLogger("gancli.train")


def source_config(run_dir: str | Path, recipe: str) -> dict:
    """The saved config of an --init-from run, checked to be a run of this recipe."""
    config_file = Path(run_dir) / "config.toml"
    if not config_file.is_file():
        raise CheckpointError(f"--init-from '{run_dir}' is not a gancli run folder (it has no config.toml).")
    theirs = load_toml(config_file)
    if theirs.get("recipe") != recipe:
        raise CheckpointError(f"--init-from '{run_dir}' is a '{theirs.get('recipe')}' run, not a {recipe} run.")
    return theirs


def initialise_from(run_dir: str | Path, models: dict[str, nn.Module], recipe: str) -> list[str]:
    """Load G (and D when it fits) of the latest checkpoint of another run into plain networks; returns the names
    loaded."""
    theirs = source_config(run_dir, recipe)
    path = ckpt.resolve_checkpoint(run_dir)
    weights, _ = ckpt.load_weights(path)
    if "G" not in weights:
        raise CheckpointError(f"--init-from '{run_dir}': checkpoint '{path}' holds no generator.")
    try:
        models["G"].load_state_dict(weights["G"])
    except RuntimeError as exc:
        raise CheckpointError(f"--init-from '{run_dir}': its generator does not fit this run's "
                              f"({state_dict_mismatch(exc)}).") from None
    loaded = ["G"]
    if "D" in models and "D" in weights:
        problem = _load_critic(models["D"], weights["D"], theirs)
        if problem:
            log.warning("--init-from %s: the critic starts fresh: %s", run_dir, problem)
        else:
            loaded.append("D")
    log.warning("Initialised %s from %s", " and ".join(loaded), path)
    return loaded


def _load_critic(D: nn.Module, state: dict, theirs: dict) -> str:
    """Load another run's critic weights (saved under its normalization) into the plain critic D; '' or why not."""
    keys = ("norm", "norm_ratio", "norm_gain", "norm_every", "san_mode", "critic_padding")
    setting = apply_overrides(TrainConfig(), {k: theirs[k] for k in keys if k in theirs}, "--init-from")
    source = apply_config_norm(copy.deepcopy(D), setting)
    try:
        source.load_state_dict(state)
        D.load_state_dict(plain_critic_state(source))
    except RuntimeError as exc:
        return state_dict_mismatch(exc)
    return ""
