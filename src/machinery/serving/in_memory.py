"""Serving in-memory splits to the Trainer: seeded loaders that resume mid-epoch, or batches sliced on the device,
and the position in the epoch saved with every checkpoint. A data module holds an `InMemoryServing` and hands it its
splits; it says only what the splits are."""

from collections.abc import Callable
from typing import Any

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Dataset

from src.machinery.serving.device_batches import DeviceBatches
from src.machinery.serving.resumable import ResumableDataLoader, ResumableSampler, checked_position

Split = tuple[torch.Tensor, torch.Tensor]  # images (N, C, H, W), labels (N,)


class TensorBatchDataset(Dataset):
    """Images and labels as two tensors; `__getitems__` lets the DataLoader fetch a whole batch with one slice
    instead of stacking single samples (one tensor op per batch, not per sample)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> Split:
        return self.images[index], self.labels[index]

    def __getitems__(self, indices: list[int]) -> Split:
        index = torch.as_tensor(indices)
        return self.images[index], self.labels[index]


def keep_batch(batch: Split) -> Split:
    """Collate function for `TensorBatchDataset`: the batch is already stacked."""
    return batch


class InMemoryServing:
    """How a data module's splits reach the Trainer, used by composition (the data module's Lightning hooks call it):
    `splits` ({"train": (images, labels), ...}) as tensors, or `datasets` read item by item; `on_device=True` slices
    batches on the device (no workers, no host-to-device copy per step). The training loader resumes mid-epoch: its
    position is in the data module's `state_dict`."""

    def __init__(
        self,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
        on_device: bool = False,
    ) -> None:
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.on_device = on_device
        self.shuffle_seed: int | None = None  # drawn once, by `_agreed_shuffle_seed`
        self._train_loader: ResumableDataLoader | DeviceBatches | None = None
        self._resume_position: dict | None = None  # from a checkpoint, for the next training loader

    def place_on_device(self, splits: dict[str, Split], trainer: pl.Trainer | None) -> dict[str, Split]:
        """Every split copied to the device the Trainer chose."""
        if trainer is None:
            raise RuntimeError("data.on_device=true needs a Trainer: the device is the Trainer's choice")
        device = trainer.strategy.root_device
        return {name: (x.to(device), y.to(device)) for name, (x, y) in splits.items()}

    def _agreed_shuffle_seed(self, trainer: pl.Trainer | None) -> int:
        """The training shuffle's seed: drawn once from torch's RNG (so it follows `seed`), rank 0's on every rank."""
        if self.shuffle_seed is None:
            seed = int(torch.randint(0, 2**31 - 1, (1,)).item())
            self.shuffle_seed = trainer.strategy.broadcast(seed) if trainer else seed
        return self.shuffle_seed

    def _dataloader(
        self, dataset: Dataset, shuffle: bool, trainer: pl.Trainer | None, collate_fn: Callable | None = None
    ) -> DataLoader:
        """A DataLoader with this serving's batch size (training or evaluation), workers and pinning."""
        common = {
            "collate_fn": collate_fn,
            "num_workers": self.num_workers,
            "pin_memory": self.pin_memory,
            "persistent_workers": self.num_workers > 0,
        }
        if not shuffle:
            return DataLoader(dataset, batch_size=self.eval_batch_size, **common)
        rank, world_size = (trainer.global_rank, trainer.world_size) if trainer else (0, 1)
        seed = self._agreed_shuffle_seed(trainer)
        sampler = ResumableSampler(dataset, seed, rank, world_size)
        generator = torch.Generator().manual_seed(seed)  # worker seeds, without drawing from the global RNG
        return ResumableDataLoader(dataset, batch_size=self.batch_size, sampler=sampler, generator=generator, **common)

    def loader(
        self,
        split: str,
        splits: dict[str, Split],
        datasets: dict[str, Dataset],
        trainer: pl.Trainer | None,
        shuffle: bool = False,
    ) -> DataLoader | DeviceBatches:
        """The loader of one split (`splits` as tensors, else `datasets`)."""
        if split not in splits:
            return self._dataloader(datasets[split], shuffle, trainer)
        images, labels = splits[split]
        if self.on_device:
            batch_size = self.batch_size if shuffle else self.eval_batch_size
            rank, world_size = trainer.global_rank, trainer.world_size
            seed = self._agreed_shuffle_seed(trainer) if shuffle else 0
            return DeviceBatches(images, labels, batch_size, shuffle, seed, rank, world_size)
        return self._dataloader(TensorBatchDataset(images, labels), shuffle, trainer, collate_fn=keep_batch)

    def train_loader(
        self, splits: dict[str, Split], datasets: dict[str, Dataset], trainer: pl.Trainer | None
    ) -> DataLoader | DeviceBatches:
        """The training loader, shuffled, carrying on from a checkpoint's position when there is one."""
        loader = self.loader("train", splits, datasets, trainer, shuffle=True)
        if trainer is not None:
            loader.batches_per_epoch = lambda: trainer.num_training_batches
        if self._resume_position is not None:
            loader.load_state_dict(self._resume_position)
            self._resume_position = None
        self._train_loader = loader
        return loader

    def state_dict(self) -> dict[str, Any]:
        """Where the next training batch comes from (`src.machinery.serving.resumable`): the data module saves it in
        every checkpoint."""
        return {"train_position": self._train_loader.state_dict()} if self._train_loader is not None else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        position = state_dict.get("train_position") if isinstance(state_dict, dict) else state_dict
        self._resume_position = None if position is None else checked_position(position)

    @staticmethod
    def to_device(batch: Split, device: torch.device) -> Split:
        """The batch is always an (images, labels) pair: no need for Lightning's generic walk over collections."""
        images, labels = batch
        return images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
