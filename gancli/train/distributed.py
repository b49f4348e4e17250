"""Data-parallel training over processes with torch.distributed, as `torchrun` launches them.

    torchrun --nproc_per_node 8 -m gancli train biggan ...

Every process holds the whole G and D and trains on its own share of each global batch
(`batch_size` is the global batch). After the backward pass of a network, its gradients are
averaged over the processes in one all-reduce, so every replica takes the same optimizer step.
Averaging gradients after the fact (rather than wrapping the networks in DistributedDataParallel)
keeps every recipe's step code as it is: a critic called on real and fake images in two forwards,
gradient penalties that differentiate the critic twice, and a generator step through a frozen critic
all work unchanged. Process 0 alone writes the run folder (logs, samples, evaluations, checkpoints).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (one process: rank 0 of 1)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def world_from_env() -> World:
    """The World torchrun describes in WORLD_SIZE / RANK / LOCAL_RANK, or a single process."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    return World(int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", "0")))


def start(world: World, device: torch.device) -> torch.device:
    """Join the process group (NCCL on GPUs, gloo on CPUs); each process gets its own GPU."""
    if world.size == 1:
        return device
    if device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():  # generous timeout: the others wait while process 0 evaluates FID
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=timedelta(hours=1))
    return device


def stop() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


@contextmanager
def main_first(world: World) -> Iterator[None]:
    """Process 0 runs the block first (a dataset's first-use download), then the others, which find it done."""
    if world.size > 1 and not world.main:
        dist.barrier()
    yield
    if world.size > 1 and world.main:
        dist.barrier()


def broadcast_module(module: nn.Module) -> None:
    """Make every replica start from process 0's weights and buffers."""
    for tensor in itertools.chain(module.parameters(), module.buffers()):
        dist.broadcast(tensor.data, src=0)


def average_gradients(parameters: Iterable[nn.Parameter], world: World) -> None:
    """Replace each gradient by its mean over the processes: one all-reduce of all of them, flattened."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    flat = _flatten_dense_tensors(grads)
    dist.all_reduce(flat)
    flat.div_(world.size)
    for grad, mean in zip(grads, _unflatten_dense_tensors(flat, grads)):
        grad.copy_(mean)


def average_values(values: dict[str, float], world: World, device: torch.device) -> dict[str, float]:
    """Means over the processes of logged scalars (every process must pass the same keys)."""
    if world.size == 1 or not values:
        return values
    keys = sorted(values)
    tensor = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return dict(zip(keys, (tensor / world.size).tolist()))


def any_process(flag: bool, world: World, device: torch.device) -> bool:
    """True on every process when it is true on any (e.g. one of them was sent SIGTERM)."""
    if world.size == 1:
        return flag
    tensor = torch.tensor([float(flag)], device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item())


def gather_objects(obj, world: World) -> list:
    """obj of every process, in rank order (small picklable state such as RNG states)."""
    if world.size == 1:
        return [obj]
    out: list = [None] * world.size
    dist.all_gather_object(out, obj)
    return out
