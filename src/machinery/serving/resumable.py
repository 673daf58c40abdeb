"""A training DataLoader that stops mid-epoch and carries on from the next batch after a restart (seeded shuffle per
epoch). The DataModule saves and applies the position too: Lightning applies the loader's own only to a loader built
after restoring, and a scheduler sized with `estimated_stepping_batches` builds it before."""

from collections.abc import Callable, Iterator
from typing import Any

from torch.utils.data import DataLoader, Dataset, DistributedSampler

from src.errors import CheckpointError

Position = dict[str, int]  # seed, epoch, batches_served
POSITION_KEYS = ("seed", "epoch", "batches_served")


def checked_position(position: Any) -> Position:
    """`position` as read from a checkpoint, if it is one (whole numbers from 0 to 2**63 - 1 under POSITION_KEYS);
    else `CheckpointError`, one line (not a TypeError deep in a sampler when the resumed epoch starts)."""
    if not isinstance(position, dict) or not all(
        type(position.get(key)) is int and 0 <= position[key] < 2**63 for key in POSITION_KEYS
    ):
        shown = repr(position)
        raise CheckpointError(
            f"its data position {shown[:120]} is not {{seed, epoch, batches_served}} as whole numbers from 0: "
            "not a checkpoint this template wrote (resume from another, or start afresh)"
        )
    return {key: position[key] for key in POSITION_KEYS}


def next_batch_position(seed: int, epoch: int, served: int, batches_per_epoch: Callable[[], float] | None) -> Position:
    """Where the next training batch comes from: after the epoch's last batch (`limit_train_batches` counts), the
    start of the next epoch, which is what Lightning trains next on a restart."""
    if batches_per_epoch is not None and served >= batches_per_epoch():
        epoch, served = epoch + 1, 0
    return {"seed": seed, "epoch": epoch, "batches_served": served}


class ResumableSampler(DistributedSampler):
    """A seeded shuffle per epoch (`set_epoch`), optionally starting part-way through; a DistributedSampler (one
    shard per rank), so Lightning keeps it under DDP instead of swapping in its own."""

    def __init__(self, dataset: Dataset, seed: int, rank: int = 0, world_size: int = 1, shuffle: bool = True):
        super().__init__(dataset, num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed)
        self.start = 0  # samples of this epoch to skip, consumed by the next `__iter__`

    def __iter__(self) -> Iterator[int]:
        start, self.start = self.start, 0
        return iter(list(super().__iter__())[start:])


class ResumableDataLoader(DataLoader):
    """A DataLoader over a `ResumableSampler` whose `state_dict` is its position; give it a seeded `generator=` to spare
    the global RNG. Resumed, it skips trained batches by index; `len` stays full (Lightning counts them as done)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._served = 0  # batches handed out in the current epoch
        self._skip = 0  # batches to skip at the next iteration
        self.batches_per_epoch: Callable[[], float] | None = None  # the Trainer's count, set by the DataModule

    def __iter__(self) -> Iterator[Any]:
        # A generator: the epoch's order is fixed at the first fetch, after Lightning's `set_epoch` (on a restart
        # Lightning asks for the iterator earlier, and workers would otherwise read the sampler then).
        skip, self._skip = self._skip, 0
        if isinstance(self.sampler, ResumableSampler):
            self.sampler.start = skip * self.batch_size
        else:  # Lightning swapped the sampler (overfit_batches): nothing to skip by index
            skip = 0
        self._served = skip
        for batch in super().__iter__():
            self._served += 1
            yield batch

    def state_dict(self) -> Position:
        """Where the next training batch comes from: shuffle seed, epoch, batches served."""
        seed, epoch = int(getattr(self.sampler, "seed", 0)), int(getattr(self.sampler, "epoch", 0))
        return next_batch_position(seed, epoch, self._served, self.batches_per_epoch)

    def load_state_dict(self, position: Position) -> None:
        """Make the next iteration carry on from `position` (as `state_dict()` returned it)."""
        position = checked_position(position)
        if isinstance(self.sampler, ResumableSampler):
            self.sampler.seed = position["seed"]
            self.sampler.set_epoch(position["epoch"])
        self._skip = position["batches_served"]
