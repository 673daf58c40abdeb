"""Image data sets held as whole tensors: a subclass says what the splits are; this base normalises and augments them,
and answers the template's optional questions about its inputs (their shape, how to draw one, how to read a new
image file, a sample batch).

How the splits reach the Trainer (loaders that resume mid-epoch, data kept on the device) is the machinery's
(`src/machinery/serving/in_memory.py`).
"""

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import Dataset

from src.data.splits import check_folds, choose_images
from src.errors import DataError
from src.machinery.serving.augment import random_crop, random_flip
from src.machinery.serving.in_memory import InMemoryServing, Split

__all__ = ["Split", "TensorDataModule"]


class TensorDataModule(pl.LightningDataModule):
    """Base class: subclasses return the splits from `load_splits`.

    Images are stored raw (uint8 or float, scaled by `max_value`) and normalised after they reach the device, where
    the training-time augmentation (random crops, flips) also runs, batched. `train_fraction` < 1 trains on a
    stratified share of the training split (validation and test stay whole); `classes` keeps only those labels.
    `num_folds` pools train and val and validates on stratified fold `fold` of them, training on the rest
    (cross-validation; test stays untouched).
    """

    max_value: float = 1.0

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        image_size: int,
        input_shape: tuple[int, ...] | None = None,
        mean: tuple[float, ...] = (0.0,),
        std: tuple[float, ...] = (1.0,),
        crop_padding: int = 0,
        flip: bool = False,
        train_fraction: float = 1.0,
        classes: list[int] | None = None,
        num_folds: int | None = None,
        fold: int = 0,
        **serving,  # batch_size, eval_batch_size, num_workers, pin_memory, on_device
    ) -> None:
        super().__init__()
        self.serving = InMemoryServing(**serving)  # how the splits reach the Trainer: the machinery's
        self.on_device = self.serving.on_device
        self.splits: dict[str, Split] = {}  # {"train": (images, labels), ...} as tensors (set by `setup`)
        self.datasets: dict[str, Dataset] = {}  # or read item by item (a subclass that decodes files)
        if not 0 < train_fraction <= 1:
            raise ValueError(f"data.train_fraction={train_fraction} is not valid: use a number in (0, 1], e.g. 0.25")
        self.train_fraction = train_fraction
        self.classes = [int(c) for c in classes] if classes else None
        check_folds(num_folds, fold)
        self.num_folds, self.fold = num_folds, fold
        self.num_classes = num_classes
        self.dims = (in_channels, image_size, image_size)
        if input_shape is not None and tuple(input_shape) != self.dims:
            raise ValueError(
                f"data.input_shape={list(input_shape)} does not match data.in_channels and data.image_size: "
                f"use [{in_channels}, {image_size}, {image_size}] or leave input_shape to its default"
            )
        self.crop_padding = crop_padding
        self.flip = flip
        self.mean = torch.tensor(mean).view(1, -1, 1, 1)  # (1, C or 1, 1, 1)
        self.std = torch.tensor(std).view(1, -1, 1, 1)
        self._stats_on: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def class_names(self) -> list[str]:
        """The name of each class, by label: "0", "1", ... unless a subclass names them."""
        return [str(label) for label in range(self.num_classes)]

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One input as the network takes it: (C, H, W)."""
        return self.dims

    def sample_batch(self, batch_size: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch of random normalised images and labels of the right shape and range, for tests: reads no file."""
        return torch.randn(batch_size, *self.dims), torch.randint(0, self.num_classes, (batch_size,))

    def draw_input(self, ax: Any, image: np.ndarray) -> None:
        """Draw one (C, H, W) image as the network saw it, scaled to its own range (the test pictures)."""
        pixels = image.transpose(1, 2, 0)  # (H, W, C)
        pixels = (pixels - pixels.min()) / max(float(np.ptp(pixels)), 1e-8)
        ax.imshow(pixels[..., 0] if pixels.shape[2] == 1 else pixels, cmap="gray")

    def read_input(self, path: str | Path) -> torch.Tensor:
        """A new image file (any size, mode and format Pillow reads) as the network takes it: (C, H, W), resized and
        centre-cropped as `data=imagefolder` decodes, on this data set's scale, normalised (predict.py). An unreadable
        file is a `DataError` naming it."""
        from src.data.imagefolder import image_to_tensor, load_image  # imagefolder builds on this module

        image = image_to_tensor(*self.dims[:2])(load_image(path))  # (C, H, W) uint8 0..255
        scaled = image.float() * (self.max_value / 255)  # on the scale the splits are stored in (0..max_value),
        scaled = scaled.round() if self.max_value > 1 else scaled  # whole levels above 1: a PNG'd digit comes back
        x, _ = self.transform((scaled.unsqueeze(0), None), train=False)  # (1, C, H, W)
        return x[0]

    def load_splits(self) -> dict[str, Split]:
        """Subclasses return {"train": ..., "val": ..., "test": ...} as (images, labels) tensors."""
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        splits = choose_images(self.load_splits(), self.classes, self.num_folds, self.fold, self.train_fraction)
        for name, (images, labels) in splits.items():
            self._check_split(name, images, labels)
        self.splits = self.serving.place_on_device(splits, self.trainer) if self.on_device else splits

    def _check_split(self, name: str, images: torch.Tensor, labels: torch.Tensor) -> None:
        """Fail early, naming the expected shape, when files do not match the config."""
        if tuple(images.shape[1:]) != self.dims:
            raise DataError(
                f"{type(self).__name__} {name} images have shape {tuple(images.shape[1:])}, "
                f"config says (in_channels, image_size, image_size) = {self.dims}"
            )
        if labels.numel() and int(labels.max()) >= self.num_classes:
            raise DataError(f"{name} labels reach {int(labels.max())} but num_classes={self.num_classes}")

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

    # Lightning's hooks, answered by the serving (the machinery): loaders that resume mid-epoch or data on the device
    def train_dataloader(self) -> Any:
        return self.serving.train_loader(self.splits, self.datasets, self.trainer)

    def val_dataloader(self) -> Any:
        return self.serving.loader("val", self.splits, self.datasets, self.trainer)

    def test_dataloader(self) -> Any:
        return self.serving.loader("test", self.splits, self.datasets, self.trainer)

    def predict_dataloader(self) -> Any:
        return self.test_dataloader()

    def state_dict(self) -> dict[str, Any]:
        return self.serving.state_dict()  # where the next training batch comes from, in every checkpoint

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.serving.load_state_dict(state_dict)

    def transfer_batch_to_device(self, batch: Split, device: torch.device, dataloader_idx: int) -> Split:
        return self.serving.to_device(batch, device)
