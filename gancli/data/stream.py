"""An endless, resumable stream of training batches, exactly reproducible from (seed, batch index)."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler


class SeededBatchSampler(Sampler):
    """Yields lists of (index, seed) keys: epoch e is a permutation drawn from (seed, e).

    Batch b is a pure function of (seed, b), so resuming at batch b reproduces the
    uninterrupted stream, whatever the number of workers.
    """

    def __init__(self, size: int, batch_size: int, seed: int, start_batch: int = 0, shard: tuple[int, int] = (0, 1)):
        self.size, self.batch_size, self.seed, self.start = size, batch_size, seed, start_batch
        self.rank, self.shards = shard  # process `rank` of `shards` takes its equal slice of every batch

    def _permutation(self, epoch: int) -> torch.Tensor:
        return torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed * 7919 + epoch))

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        per_epoch = max(self.size // self.batch_size, 1)
        b = self.start
        while True:
            epoch, offset = divmod(b, per_epoch)
            perm = self._permutation(epoch)
            if self.size >= self.batch_size:
                idx = perm[offset * self.batch_size:(offset + 1) * self.batch_size]
            else:  # tiny dataset: wrap around
                idx = perm[torch.arange(self.batch_size) % self.size]
            item_seed = (self.seed * 1_000_003 + b) * 4096
            keys = [(int(i), item_seed + k) for k, i in enumerate(idx)]
            per = self.batch_size // self.shards
            yield keys[self.rank * per:(self.rank + 1) * per]
            b += 1

    def __len__(self) -> int:  # endless; DataLoader only needs it to exist
        return 2**62


def batch_stream(dataset: Dataset, batch_size: int, seed: int, start_batch: int = 0, workers: int = 0,
                 shard: tuple[int, int] = (0, 1)) -> Iterator[dict[str, torch.Tensor]]:
    """Endless iterator of collated batches starting at batch `start_batch` (this process's shard of each)."""
    sampler = SeededBatchSampler(len(dataset), batch_size, seed, start_batch, shard)
    # its own generator: creating the iterator must not draw from the global RNG (exact resume)
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=workers, persistent_workers=workers > 0,
                        pin_memory=torch.cuda.is_available(), generator=torch.Generator().manual_seed(seed))
    return iter(loader)
