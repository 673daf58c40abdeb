"""Exact resume for any data module's training DataLoader, without the data module knowing: a callback that rebuilds a
plain shuffling (or sequential) DataLoader as a `ResumableDataLoader`, whose order is seeded per epoch, whose
iterators never draw from the global random generator, and whose position is saved in every checkpoint."""

import logging
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler

from src.machinery.serving.resumable import Position, ResumableDataLoader, ResumableSampler, checked_position

log = logging.getLogger(__name__)


class ResumableShuffle(Callback):
    """Makes the training loader of the data module resume where it stopped, mid-epoch included.

    A loader this cannot rebuild (a custom sampler or batch sampler, an iterable dataset, not a DataLoader) is left as
    it is, with one log line: a resumed run then continues from the checkpoint's step, but not on the same batches.
    Loaders that resume by themselves (they have `state_dict`, as the template's in-memory data modules' do) are
    left alone.
    """

    def __init__(self) -> None:
        self._seed: int | None = None
        self._loader: ResumableDataLoader | None = None
        self._position: Position | None = None  # from a checkpoint, for the loader built next (or built already)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        datamodule = trainer.datamodule
        if stage != "fit" or datamodule is None or getattr(datamodule.train_dataloader, "resumable", False):
            return
        original = datamodule.train_dataloader

        def train_dataloader() -> Any:
            return self._rebuilt(original(), trainer)

        train_dataloader.resumable = True  # a second fit with this data module wraps it once
        datamodule.train_dataloader = train_dataloader  # Lightning asks the data module's attribute for its loader

    def _rebuilt(self, loader: Any, trainer: pl.Trainer) -> Any:
        """`loader` as a ResumableDataLoader with its dataset, batch size, workers and collation, when it can be."""
        if hasattr(loader, "state_dict"):
            return loader  # resumes by itself
        reason = why_not_rebuildable(loader)
        if reason:
            log.info(
                "Resume: the training loader is kept as it is (%s): a resumed run continues from the saved step, "
                "not on the same batches",
                reason,
            )
            return loader
        if self._seed is None:  # drawn once from torch's generator (so it follows `seed`), rank 0's on every rank
            seed = int(torch.randint(0, 2**31 - 1, (1,)).item())
            self._seed = int(trainer.strategy.broadcast(seed))
        shuffle = isinstance(loader.sampler, RandomSampler)
        sampler = ResumableSampler(loader.dataset, self._seed, trainer.global_rank, trainer.world_size, shuffle=shuffle)
        rebuilt = ResumableDataLoader(
            loader.dataset,
            batch_size=loader.batch_size,
            sampler=sampler,
            num_workers=loader.num_workers,
            collate_fn=loader.collate_fn,
            pin_memory=loader.pin_memory,
            drop_last=loader.drop_last,
            timeout=loader.timeout,
            worker_init_fn=loader.worker_init_fn,
            persistent_workers=loader.persistent_workers,
            # worker seeds from a generator of its own: an iterator never draws from the global one (dropout's)
            generator=torch.Generator().manual_seed(self._seed),
        )
        rebuilt.batches_per_epoch = lambda: trainer.num_training_batches
        if self._position is not None:
            rebuilt.load_state_dict(self._position)
            self._position = None
        self._loader = rebuilt
        return rebuilt

    def state_dict(self) -> dict[str, Any]:
        return {"seed": self._seed, "position": self._loader.state_dict()} if self._loader is not None else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if not state_dict:
            return
        position = checked_position(state_dict.get("position") if isinstance(state_dict, dict) else state_dict)
        self._seed, self._position = position["seed"], position
        if self._loader is not None:  # built before the checkpoint was read (a schedule sized by the loader's length)
            self._loader.load_state_dict(self._position)
            self._position = None


def why_not_rebuildable(loader: Any) -> str:
    """Why `loader` cannot be rebuilt as a ResumableDataLoader ("" when it can)."""
    if type(loader) is not DataLoader:
        return f"a {type(loader).__name__}, not a plain DataLoader"
    if not isinstance(loader.sampler, RandomSampler | SequentialSampler):
        return f"its own sampler, {type(loader.sampler).__name__}"
    sampler = loader.sampler
    if isinstance(sampler, RandomSampler) and (sampler.replacement or sampler.num_samples != len(loader.dataset)):
        return "a RandomSampler with replacement or num_samples"
    if type(loader.batch_sampler) is not BatchSampler or loader.batch_size is None:
        return "its own batch sampler"
    return ""
