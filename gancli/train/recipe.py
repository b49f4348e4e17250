"""The small interface through which a recipe plugs into the trainer, sampler and evaluators."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn
from torch.utils.data import Dataset

from gancli.config import TrainConfig
from gancli.errors import ConfigError
from gancli.nn.export import ExportInputs
from gancli.objectives import PENALTIES, get_loss
from gancli.train.imports import ImportFormat

Logs = dict[str, float]
Models = dict[str, nn.Module]
Loader = Callable[..., Models]  # load("G", "D") -> the run's networks by name, loaded only when a verb calls it


class Recipe:
    """Base class of a pipeline; subclasses live in the top-level `recipes` package.

    Contract with the core:
    - `build_models()` returns plain networks: "G" is required, "D" optional (no critic means
      the trainer runs generator steps only, e.g. SR's L1 pretraining). The core applies
      `cfg.norm` to "D" itself, so the recipe never does.
    - `build_dataset()` returns a map-style dataset whose keys are `(index, seed)` pairs:
      any randomness in loading (crops, flips, noise) must come from
      `torch.Generator().manual_seed(seed)`, which makes resume exact with any worker count.
      `len(dataset)` is the number of distinct indices. Items are dicts of tensors.
    - `d_step` / `g_step` take the models and a collated batch (already on the device) and
      return `(loss, logs)`; the trainer does backward, accumulation, optimizer steps and EMA.
      `step_regularizer` adds a weights-only term once per optimizer step, not once per micro-batch.
    - `sample(G, n, generator)` returns n images in [-1, 1] (N, 3, H, W) for grids and
      `gancli sample`; `evaluate(G)` returns named scores for metrics.jsonl.
    - `validate()` checks the recipe's own config fields; the base calls it (and checks the loss and penalty
      names) when the recipe is made, before the trainer creates the run folder. A recipe that resolves config
      values from its data (and saves them in config.toml) does so before `super().__init__`.
    - Inference verbs (`upscale`, ...) are methods named in VERBS; a recipe that lacks one refuses it in one
      sentence (check_supports), so the API can offer every verb on every run. File verbs take a Loader, so that
      their cheap checks (names, paths) come before the networks are loaded.
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    Config: ClassVar[type[TrainConfig]] = TrainConfig
    presets: ClassVar[dict[str, dict[str, Any]]] = {}
    offline_preset: ClassVar[str] = "quick"  # used when no --data and no --preset is given
    # why the offline preset's critic has the normalization it has: the measurement (or the paper) it follows
    offline_critic_why: ClassVar[str] = ""
    best_metric: ClassVar[tuple[str, str] | None] = None  # e.g. ("fid", "min") keeps checkpoints/best
    # --augment augments the critic's first argument (an image batch) on every call; a recipe whose critic must see
    # its inputs as they are gives the reason here, and the flag is refused with it
    no_augment_reason: ClassVar[str] = ""
    # published checkpoint formats this recipe reads (`gancli import`), by name
    import_formats: ClassVar[dict[str, "ImportFormat"]] = {}
    # config keys that shape the networks: `--init-from RUN` takes them from RUN unless given (a preset does not
    # override them), so that the run's weights fit
    network_fields: ClassVar[tuple[str, ...]] = ()

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.step = 0  # the trainer sets this before each iteration
        self.validate()
        if cfg.penalty not in PENALTIES:
            raise ConfigError(f"Unknown critic penalty '{cfg.penalty}'; choose one of: {', '.join(PENALTIES)}.")
        get_loss(cfg.loss)  # one sentence on an unknown loss name

    def validate(self) -> None:
        """ConfigError on a config value this recipe cannot train with (the base checks loss and penalty)."""

    def critic_active(self, step: int) -> bool:
        """Whether this iteration trains the critic (False e.g. in an L1 pretraining phase)."""
        return True

    @property
    def device(self) -> torch.device:
        return getattr(self, "_device", torch.device("cpu"))

    @device.setter
    def device(self, value: torch.device) -> None:
        self._device = value

    def build_models(self) -> Models:
        raise NotImplementedError

    def build_dataset(self) -> Dataset:
        raise NotImplementedError

    def d_step(self, models: Models, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, Logs]:
        raise NotImplementedError

    def g_step(self, models: Models, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, Logs]:
        raise NotImplementedError

    def step_regularizer(self, name: str, models: Models) -> tuple[torch.Tensor, Logs] | None:
        """A term added once per optimizer step of network `name`, after its micro-batches' gradients (e.g.
        BigGAN's orthogonal regularization, which depends on the weights only); None when there is none."""
        return None

    @torch.no_grad()
    def sample(self, G: nn.Module, n: int, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def evaluate(self, G: nn.Module) -> dict[str, Any]:
        return {}

    def finalize_generator(self, G: nn.Module) -> None:
        """Prepare a loaded generator for inference (e.g. BigGAN standing statistics)."""
        G.eval()

    # ---- inference verbs: a recipe overrides those it supports ---------------------------------
    VERBS: ClassVar[dict[str, tuple[str, str]]] = {  # method: (the command, what it needs)
        "upscale": ("`gancli upscale`", "an sr run"),
        "score_test_set": ("`gancli eval sr`", "an sr run"),
        "translate_files": ("`gancli translate`", "a stargan run"),
        "synthesize_files": ("`gancli synthesize`", "a spade run"),
        "interpolate": ("`gancli sample --interpolate`", "a class-conditional run (biggan)"),
        "export_inputs": ("`gancli export`", "a recipe that declares its generator's inputs"),
    }

    def supports(self, verb: str) -> bool:
        return getattr(type(self), verb) is not getattr(Recipe, verb)

    def check_supports(self, verb: str) -> None:
        """One sentence when this recipe lacks an inference verb."""
        if not self.supports(verb):
            command, needs = self.VERBS[verb]
            raise ConfigError(f"This is a '{self.name}' run; {command} needs {needs}.")

    def upscale(self, G: nn.Module, image: torch.Tensor, **options: Any) -> torch.Tensor:
        """One uint8 image (3, h, w) → its upscaled uint8 image."""
        self.check_supports("upscale")

    def score_test_set(self, G: nn.Module, data: str, lr: str | None = None, **options: Any) -> dict[str, Any]:
        """Per-image and mean restoration scores of G on a test set, next to a baseline."""
        self.check_supports("score_test_set")

    def synthesize_files(self, load: Loader, labels: list[Path], out: Path, **options: Any) -> list[Path]:
        """One PNG per label-map file (× styles) in out; returns the files written."""
        self.check_supports("synthesize_files")

    def interpolate(self, G: nn.Module, rows: int, steps: int, generator: torch.Generator, **options: Any) -> torch.Tensor:
        """rows strips of `steps` images between two latents or two classes, in [-1, 1]."""
        self.check_supports("interpolate")

    def translate_files(self, load: Loader, images: list[Path], attrs: list[str] | dict[str, int], *, out: Path,
                        grid: bool = False) -> Any:
        """Image files translated to attribute assignments ('Name=1'), one PNG each in out (and a grid)."""
        self.check_supports("translate_files")

    def verb_inputs(self) -> dict[str, Any]:
        """What a client (the web page) needs to offer this recipe's verbs, by verb: the palette a label map is
        painted with, the attributes a face has, the scale; JSON-able."""
        return {}

    def export_inputs(self, G: nn.Module, size: tuple[int, int] | None = None) -> ExportInputs:
        """G's inputs for `gancli export`: example tensors (image inputs of `size` when it applies), their names,
        meanings and dims that may vary, and the recipe's facts (z size, classes, scale, ...) for the metadata."""
        self.check_supports("export_inputs")
