"""Bring-your-own images: a folder of `train/<class>/*` and optional `val/` and `test/` trees."""

import logging
import os
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Subset
from torchvision import transforms
from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import has_file_allowed_extension

from src.data.image_file import load_image
from src.data.splits import hold_out, stratified_fraction
from src.data.tensor_data import Split, TensorDataModule
from src.errors import DataError

log = logging.getLogger(__name__)


class ImageFolderDataModule(TensorDataModule):
    """Images decoded into uint8 tensors of `image_size`; normalised and augmented per batch.

    Without `val/`, `val_fraction` of `train/` is held out (seeded by `split_seed`); without
    `test/`, the validation images double as the test set, and a warning says so.

    By default DataLoader workers decode files for every batch. With `in_memory=True` every image is
    decoded once, in `setup`, and the splits are held as tensors like the built-in data sets, which
    also allows `on_device=True` (for data sets that fit in memory, such as CIFAR-10 as JPEGs).
    """

    max_value = 255.0

    def __init__(
        self,
        data_dir: str,
        val_fraction: float = 0.1,
        split_seed: int = 0,
        in_memory: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if self.on_device and not in_memory:
            raise ValueError("data.on_device=true needs data.in_memory=true for imagefolder: files are decoded once")
        if self.num_folds is not None and not in_memory:
            raise ValueError("data.num_folds needs data.in_memory=true for imagefolder: folds are cut from tensors")
        self.data_dir = Path(data_dir)
        self.val_fraction = val_fraction
        self.split_seed = split_seed
        self.in_memory = in_memory
        self._class_names: list[str] = []

    @property
    def class_names(self) -> list[str]:
        """The class folder names, by label (once `setup` has read train/)."""
        return self._class_names or super().class_names

    def _folder(self, split: str) -> ImageFolder:
        to_tensor = image_to_tensor(self.dims[0], self.dims[1])
        try:
            folder = ContainedImageFolder(self.data_dir / split, boundary=self.data_dir, transform=to_tensor)
        except FileNotFoundError as error:  # no class folders, or no image files in them
            raise DataError(f"{self.data_dir / split}: {error}") from None
        for path, _ in folder.samples:  # fail before training, not in the middle of an epoch
            load_image(path, header_only=True)
        if split == "train" and len(folder.classes) != self.num_classes:  # val/, test/: `_same_classes`
            raise DataError(
                f"{self.data_dir / split} has {len(folder.classes)} class folders {folder.classes}, "
                f"but data.num_classes={self.num_classes}"
            )
        return folder

    def _file_datasets(self) -> dict[str, Dataset]:
        """The train/val/test splits as datasets of files."""
        if not (self.data_dir / "train").is_dir():
            found = "has no train/ folder of class folders" if self.data_dir.is_dir() else "is not a folder"
            raise DataError(f"data.data_dir={self.data_dir} {found}")
        train = self._folder("train")
        self._class_names = train.classes  # every split has train/'s (`_same_classes`)
        if (self.data_dir / "val").is_dir():
            datasets = {"train": train, "val": _same_classes(train, self._folder("val"))}
        else:
            kept, held = hold_out(len(train), max(1, round(self.val_fraction * len(train))), self.split_seed)
            datasets = {"train": Subset(train, kept.tolist()), "val": Subset(train, held.tolist())}
        if (self.data_dir / "test").is_dir():
            datasets["test"] = _same_classes(train, self._folder("test"))
        elif self.num_folds is not None:  # the validation images would be trained on in the other folds
            raise DataError(f"{self.data_dir} has no test/ folder, which data.num_folds needs (the set it leaves out)")
        else:
            log.warning("%s has no test/ folder: testing on the validation images", self.data_dir)
            datasets["test"] = datasets["val"]
        return datasets

    def load_splits(self) -> dict[str, Split]:
        """Decode every image once (in parallel in `num_workers` processes) into whole-split tensors."""
        splits = {}
        for name, dataset in self._file_datasets().items():
            loader = DataLoader(dataset, batch_size=1000, num_workers=self.serving.num_workers)
            images, labels = zip(*loader, strict=True)
            splits[name] = (torch.cat(images), torch.cat(labels))  # (N, C, H, W) uint8, (N,)
        log.info("Decoded %s into memory: %s", self.data_dir, {k: len(v[1]) for k, v in splits.items()})
        return splits

    def setup(self, stage: str | None = None) -> None:
        if self.in_memory:
            super().setup(stage)
        elif not self.datasets:
            self.datasets = self._file_datasets()
            if self.train_fraction < 1:
                self.datasets["train"] = self._fraction_of(self.datasets["train"])

    def _fraction_of(self, train: ImageFolder | Subset) -> Subset:
        """A stratified `train_fraction` of the training files (the in-memory path subsamples the tensors)."""
        targets = [train.dataset.targets[i] for i in train.indices] if isinstance(train, Subset) else train.targets
        return Subset(train, stratified_fraction(torch.as_tensor(targets), self.train_fraction).tolist())


class ContainedImageFolder(ImageFolder):
    """torchvision's ImageFolder that stays inside `boundary` (the data folder): directory links are not followed
    (two links to `.` would make torchvision's walk endless), and a file or class folder whose link leads out of
    `boundary` is refused with one line naming it."""

    def __init__(self, root: str | Path, boundary: str | Path, **kwargs: Any) -> None:
        self.boundary = Path(os.path.realpath(boundary))
        _check_inside(Path(root), self.boundary)
        super().__init__(root, loader=load_image, **kwargs)

    def find_classes(self, directory: str | Path) -> tuple[list[str], dict[str, int]]:
        classes, _ = super().find_classes(directory)
        classes = [name for name in classes if not name.startswith(".")]  # .ipynb_checkpoints, __MACOSX's ._*
        if not classes:
            raise FileNotFoundError(f"Couldn't find any class folder in {directory}.")  # as torchvision says
        class_to_idx = {name: index for index, name in enumerate(classes)}
        split = Path(os.path.realpath(directory))
        for name in classes:
            target = _check_inside(Path(directory) / name, self.boundary)
            if split.is_relative_to(target):  # a class folder that is (a link to) the split or above it
                raise DataError(f"{Path(directory) / name} is a link to {target}, which holds the split itself")
        return classes, class_to_idx

    def make_dataset(  # an instance method here: it needs `boundary`
        self,
        directory: str | Path,
        class_to_idx: dict[str, int],
        extensions: tuple[str, ...] | None = None,
        is_valid_file: Any = None,
        allow_empty: bool = False,
    ) -> list[tuple[str, int]]:
        samples, seen = [], set()
        for name, index in sorted(class_to_idx.items()):
            for parent, dirs, files in os.walk(Path(directory) / name, followlinks=False):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))  # hidden: a tool's, not images
                files = [f for f in files if not f.startswith(".")]  # .DS_Store, macOS's ._<name> copies
                for entry in [*dirs, *files]:
                    if (Path(parent) / entry).is_symlink():
                        _check_inside(Path(parent) / entry, self.boundary)  # a link inside: files read, dirs not
                for file in sorted(files):
                    path = os.path.join(parent, file)
                    valid = is_valid_file(path) if is_valid_file else has_file_allowed_extension(path, extensions)
                    if valid:
                        samples.append((path, index))
                        seen.add(name)
        if not allow_empty and (empty := sorted(set(class_to_idx) - seen)):
            raise FileNotFoundError(
                f"no image file ({', '.join(extensions or ())}) in the class folders {', '.join(empty)}: "
                "add images or remove the folders"
            )
        return samples


def _check_inside(path: Path, boundary: Path) -> Path:
    """`path`'s real location, if it lies inside `boundary`; else `DataError` naming the link."""
    target = Path(os.path.realpath(path))
    if not target.is_relative_to(boundary):
        raise DataError(
            f"{path} leads to {target}, outside data.data_dir={boundary}: not followed; "
            "if you trust it, copy the files into the folder (cp -rL) instead of linking them"
        )
    return target


def image_to_tensor(in_channels: int, size: int) -> transforms.Compose:
    """A decoded RGB image -> (in_channels, size, size) uint8: resized (shorter side) and centre-cropped."""
    return transforms.Compose(
        [
            transforms.Grayscale() if in_channels == 1 else transforms.Lambda(_to_rgb),
            transforms.Resize(size),
            transforms.CenterCrop(size),
            transforms.PILToTensor(),  # (C, H, W) uint8
        ]
    )


def _same_classes(train: ImageFolder, other: ImageFolder) -> ImageFolder:
    """`other`, if its class folders are train/'s (a label means the same class in every split)."""
    if other.classes != train.classes:
        raise DataError(
            f"class folders differ between splits: {train.root} has {train.classes}, {other.root} has {other.classes}"
        )
    return other


def _to_rgb(image):
    """PIL image in any mode -> RGB (a named function so DataLoader workers can pickle it)."""
    return image.convert("RGB")
