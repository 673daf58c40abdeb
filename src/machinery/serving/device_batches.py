"""Batches served straight from tensors that already live on the training device."""

from collections.abc import Callable, Iterator

import torch

from src.machinery.serving.resumable import Position, checked_position, next_batch_position


class DeviceBatches:
    """(images, labels) batches sliced from whole-split tensors, no DataLoader. Shuffling is seeded (`seed + epoch`):
    every rank draws the same permutation, padded by wrapping so all ranks run as many steps, and takes its shard."""

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        shuffle: bool,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        self.images, self.labels = images, labels
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.rank, self.world_size = rank, world_size
        self.epoch = 0  # the epoch the next iteration serves
        self._served = 0  # batches handed out by the current iteration
        self._resume_at = 0  # batches to skip at the next iteration (after `load_state_dict`)
        self.batches_per_epoch: Callable[[], float] | None = None  # the Trainer's count, set by the DataModule
        self.shard_size = -(-len(labels) // world_size)  # ceil: every rank gets as many samples

    def __len__(self) -> int:
        return -(-self.shard_size // self.batch_size)

    def shard(self) -> torch.Tensor:
        """This rank's sample indices for the current epoch, on the data's device."""
        n = len(self.labels)
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(n, generator=generator)
        else:
            order = torch.arange(n)
        padded = order.repeat(-(-self.shard_size * self.world_size // n))[: self.shard_size * self.world_size]
        return padded[self.rank :: self.world_size].to(self.labels.device)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        index = self.shard()
        self.epoch += 1
        skip, self._resume_at = self._resume_at, 0
        self._served = skip
        for start in range(skip * self.batch_size, len(index), self.batch_size):
            batch = index[start : start + self.batch_size]
            self._served += 1
            yield self.images[batch], self.labels[batch]  # (B, C, H, W), (B,): gathered on the device

    def state_dict(self) -> Position:
        """Where the next batch comes from (`self.epoch` was already advanced for the iteration in progress)."""
        return next_batch_position(self.seed, max(0, self.epoch - 1), self._served, self.batches_per_epoch)

    def load_state_dict(self, position: Position) -> None:
        """Make the next iteration carry on from `position`."""
        position = checked_position(position)
        self.seed, self.epoch, self._resume_at = position["seed"], position["epoch"], position["batches_served"]
