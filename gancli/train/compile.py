"""`--compile MODE`: torch.compile of a run's networks for training, with eager execution as the fallback.

Each network is compiled in place (nn.Module.compile), so its state-dict keys, and with them checkpoints, do not
change. The trainer compiles after the session's first iteration, which runs eagerly: by then every SAN /
sn-exact conv has seen its input size and projected its initial weight, so its forward pre-hook traces to
nothing and a critic compiles to one graph (σ's kernel search, data-dependent shapes, runs eagerly between
critic updates, where Alg. 1 puts it; where a hook still has work, `torch.compiler.disable` makes it a graph
break). SN's power iteration is traced with the forward (an in-place buffer update). `reduce-overhead` adds
CUDA graphs on a GPU (static shapes): the trainer marks the start of every optimizer step so that graph outputs
of one step are never read after the next has begun.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn


def compile_networks(models: dict[str, nn.Module], mode: str, backend: str = "inductor") -> None:
    """Compile every network of `models` in place for training (the modes and backends of TrainConfig.compile)."""
    if mode == "none":
        return
    options = {"backend": backend, "dynamic": False}
    if backend == "inductor":
        options["mode"] = mode
    for model in models.values():
        model.compile(**options)


def step_begins(mode: str) -> None:
    """Before each optimizer step under CUDA graphs: the last step's graph outputs may be overwritten from here."""
    if mode == "reduce-overhead" and torch.cuda.is_available():
        torch.compiler.cudagraph_mark_step_begin()


def fallback(mode: str) -> contextlib.AbstractContextManager:
    """Around training steps: a network that torch.compile fails to compile (no C compiler for inductor, an op
    it does not support) runs eagerly, with dynamo's warning saying why, instead of stopping the run."""
    if mode == "none":
        return contextlib.nullcontext()
    return torch._dynamo.config.patch(suppress_errors=True)


def eager() -> contextlib.AbstractContextManager:
    """Compiled networks run uncompiled inside (sampling and evaluation: other shapes and modes than training's)."""
    return torch.compiler.set_stance("force_eager")
