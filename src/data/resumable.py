"""A training DataLoader that can stop mid-epoch and carry on from the next batch after a restart.

Lightning saves the `state_dict` of every training loader that has one with each checkpoint, and loads it back
on resume. The shuffle is a function of (seed, epoch), so the state is just the epoch and the batches served.
"""

from collections.abc import Iterator
from typing import Any

from torch.utils.data import DataLoader, Dataset, DistributedSampler


class ResumableSampler(DistributedSampler):
    """A seeded shuffle per epoch (`set_epoch`, as Lightning calls it), optionally starting part-way through.

    It is a DistributedSampler (one shard per rank, `num_replicas=1` on one process), so Lightning keeps it
    under DDP instead of swapping in its own sampler.
    """

    def __init__(self, dataset: Dataset, seed: int, rank: int = 0, world_size: int = 1, shuffle: bool = True):
        super().__init__(dataset, num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed)
        self.start = 0  # samples of this epoch to skip, consumed by the next `__iter__`

    def __iter__(self) -> Iterator[int]:
        start, self.start = self.start, 0
        return iter(list(super().__iter__())[start:])


class ResumableDataLoader(DataLoader):
    """A DataLoader over a `ResumableSampler` whose `state_dict` records the epoch and the batches served.

    After `load_state_dict`, the next iteration skips the batches already trained on (by index, without loading
    them); `len` stays the full epoch, as Lightning counts the skipped batches as done.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._served = 0  # batches handed out in the current epoch
        self._resume_at = 0  # batches to skip at the next iteration

    def __iter__(self) -> Iterator[Any]:
        skip, self._resume_at = self._resume_at, 0
        if isinstance(self.sampler, ResumableSampler):
            self.sampler.start = skip * self.batch_size
        else:  # Lightning swapped the sampler (overfit_batches): nothing to skip by index
            skip = 0
        self._served = skip
        for batch in super().__iter__():
            self._served += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        seed, epoch = int(getattr(self.sampler, "seed", 0)), int(getattr(self.sampler, "epoch", 0))
        return {"seed": seed, "epoch": epoch, "batches_served": self._served}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if isinstance(self.sampler, ResumableSampler):
            self.sampler.seed = state["seed"]
            self.sampler.set_epoch(state["epoch"])
        self._resume_at = state["batches_served"]
