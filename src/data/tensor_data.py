"""Data sets held as whole tensors, served in slices, normalised and augmented per batch."""

from collections.abc import Callable
from typing import Any

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Dataset

from src.errors import DataError
from src.machinery.augment import random_crop, random_flip
from src.machinery.device_batches import DeviceBatches
from src.machinery.resumable import ResumableDataLoader, ResumableSampler

Split = tuple[torch.Tensor, torch.Tensor]  # images (N, C, H, W), labels (N,)


class TensorBatchDataset(Dataset):
    """Images and labels as two tensors; the DataLoader fetches a whole batch with one slice.

    `__getitems__` lets the DataLoader index a batch of indices at once instead of
    gathering and stacking single samples (one tensor op per batch, not per sample).
    """

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


def stratified_fraction(labels: torch.Tensor, fraction: float, seed: int = 0) -> torch.Tensor:
    """Sorted indices of `fraction` of each class (at least one image per class), the same for every run.

    Each class is shuffled once with `seed` and its first images kept, so a smaller fraction's subset
    is inside every larger one's: a learning curve measures more data, not different data.
    """
    generator = torch.Generator().manual_seed(seed)
    kept = []
    for label in labels.unique():
        members = (labels == label).nonzero().flatten()  # (n_class,)
        order = members[torch.randperm(len(members), generator=generator)]
        kept.append(order[: max(1, round(fraction * len(members)))])
    return torch.cat(kept).sort().values


def hold_out(n: int, num_held: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (kept, held out) of a seeded random split of range(n), the same for every run."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[num_held:], order[:num_held]


class TensorDataModule(pl.LightningDataModule):
    """Base class: subclasses return the splits from `load_splits`; this class serves and transforms them.

    Images are stored raw (uint8 or float, scaled by `max_value`) and normalised after they
    reach the device, where the training-time augmentation also runs, batched.

    `train_fraction` < 1 trains on a stratified share of the training split (validation and test stay whole).

    With `on_device=True` the whole data set is copied to the training device once, in `setup`, and
    batches are sliced there (`DeviceBatches`): no workers and no host-to-device copy per step.
    """

    max_value: float = 1.0

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        image_size: int,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
        mean: tuple[float, ...] = (0.0,),
        std: tuple[float, ...] = (1.0,),
        crop_padding: int = 0,
        flip: bool = False,
        on_device: bool = False,
        train_fraction: float = 1.0,
    ) -> None:
        super().__init__()
        if not 0 < train_fraction <= 1:
            raise ValueError(f"data.train_fraction={train_fraction} is not valid: use a number in (0, 1], e.g. 0.25")
        self.train_fraction = train_fraction
        self.num_classes = num_classes
        self.dims = (in_channels, image_size, image_size)
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.crop_padding = crop_padding
        self.flip = flip
        self.on_device = on_device
        self.shuffle_seed: int | None = None  # drawn once, by `_agreed_shuffle_seed`
        self._train_loader: ResumableDataLoader | DeviceBatches | None = None
        self._resume_position: dict | None = None  # from a checkpoint, for the next training loader
        self.mean = torch.tensor(mean).view(1, -1, 1, 1)  # (1, C or 1, 1, 1)
        self.std = torch.tensor(std).view(1, -1, 1, 1)
        self._stats_on: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}
        self.splits: dict[str, Split] = {}

    def load_splits(self) -> dict[str, Split]:
        """Subclasses return {"train": ..., "val": ..., "test": ...} as (images, labels) tensors."""
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        splits = self.load_splits()
        if self.train_fraction < 1:
            images, labels = splits["train"]
            kept = stratified_fraction(labels, self.train_fraction)
            splits["train"] = (images[kept], labels[kept])
        for name, (images, labels) in splits.items():
            self._check_split(name, images, labels)
        self.splits = splits
        if self.on_device:
            self._place_on_device()

    def _check_split(self, name: str, images: torch.Tensor, labels: torch.Tensor) -> None:
        """Fail early, naming the expected shape, when files do not match the config."""
        if tuple(images.shape[1:]) != self.dims:
            raise DataError(
                f"{type(self).__name__} {name} images have shape {tuple(images.shape[1:])}, "
                f"config says (in_channels, image_size, image_size) = {self.dims}"
            )
        if labels.numel() and int(labels.max()) >= self.num_classes:
            raise DataError(f"{name} labels reach {int(labels.max())} but num_classes={self.num_classes}")

    def _place_on_device(self) -> None:
        """Copy every split to the device the Trainer chose."""
        trainer = self.trainer
        if trainer is None:
            raise RuntimeError("data.on_device=true needs a Trainer: the device is the Trainer's choice")
        device = trainer.strategy.root_device
        self.splits = {name: (x.to(device), y.to(device)) for name, (x, y) in self.splits.items()}

    def _agreed_shuffle_seed(self) -> int:
        """The training shuffle's seed: drawn once from torch's RNG (so it follows `seed`), rank 0's on every rank."""
        if self.shuffle_seed is None:
            seed = int(torch.randint(0, 2**31 - 1, (1,)).item())
            self.shuffle_seed = self.trainer.strategy.broadcast(seed) if self.trainer else seed
        return self.shuffle_seed

    def _dataloader(self, dataset: Dataset, shuffle: bool, collate_fn: Callable | None = None) -> DataLoader:
        """A DataLoader with this module's batch size (training or evaluation), workers and pinning.

        The training loader shuffles with a seeded, per-epoch sampler and can resume mid-epoch.
        """
        common = {
            "collate_fn": collate_fn,
            "num_workers": self.num_workers,
            "pin_memory": self.pin_memory,
            "persistent_workers": self.num_workers > 0,
        }
        if not shuffle:
            return DataLoader(dataset, batch_size=self.eval_batch_size, **common)
        rank, world_size = (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
        seed = self._agreed_shuffle_seed()
        sampler = ResumableSampler(dataset, seed, rank, world_size)
        generator = torch.Generator().manual_seed(seed)  # worker seeds, without drawing from the global RNG
        return ResumableDataLoader(dataset, batch_size=self.batch_size, sampler=sampler, generator=generator, **common)

    def _loader(self, split: str, shuffle: bool) -> DataLoader | DeviceBatches:
        images, labels = self.splits[split]
        if self.on_device:
            batch_size = self.batch_size if shuffle else self.eval_batch_size
            rank, world_size = self.trainer.global_rank, self.trainer.world_size
            seed = self._agreed_shuffle_seed() if shuffle else 0
            return DeviceBatches(images, labels, batch_size, shuffle, seed, rank, world_size)
        return self._dataloader(TensorBatchDataset(images, labels), shuffle, collate_fn=keep_batch)

    def train_dataloader(self) -> DataLoader | DeviceBatches:
        loader = self._loader("train", shuffle=True)
        if self.trainer is not None:
            loader.batches_per_epoch = lambda: self.trainer.num_training_batches
        if self._resume_position is not None:
            loader.load_state_dict(self._resume_position)
            self._resume_position = None
        self._train_loader = loader
        return loader

    def state_dict(self) -> dict[str, Any]:
        """Saved in every checkpoint: where the next training batch comes from (see `src.machinery.resumable`)."""
        return {"train_position": self._train_loader.state_dict()} if self._train_loader is not None else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._resume_position = state_dict.get("train_position")

    def val_dataloader(self) -> DataLoader | DeviceBatches:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader | DeviceBatches:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader | DeviceBatches:
        return self._loader("test", shuffle=False)

    def transfer_batch_to_device(self, batch: Split, device: torch.device, dataloader_idx: int) -> Split:
        # The batch is always an (images, labels) pair: skip Lightning's generic walk over collections.
        images, labels = batch
        return images.to(device, non_blocking=True), labels.to(device, non_blocking=True)

    def transform(self, batch: Split, train: bool) -> Split:
        """Scale to [0, 1], normalise, and (when training) augment a batch on its device."""
        images, labels = batch
        x = images.float() / self.max_value  # (B, C, H, W) in [0, 1]
        if x.device not in self._stats_on:  # one copy per device, not a host-to-device copy per batch
            self._stats_on[x.device] = (self.mean.to(x.device), self.std.to(x.device))
        mean, std = self._stats_on[x.device]
        x = (x - mean) / std
        if train and self.crop_padding:
            x = random_crop(x, self.crop_padding)
        if train and self.flip:
            x = random_flip(x)
        return x, labels

    def on_after_batch_transfer(self, batch: Split, dataloader_idx: int) -> Split:
        return self.transform(batch, train=self.trainer is not None and self.trainer.training)
