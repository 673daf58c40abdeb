"""Data modules: real splits, shapes, normalisation, batched augmentation, real files when present."""

import gzip
import shutil
import tarfile
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from PIL import Image

from src.data.digits import DigitsDataModule
from src.data.imagefolder import ImageFolderDataModule, load_image
from src.data.synthetic import SyntheticDataModule
from src.errors import DataError
from src.machinery.serving.augment import random_crop, random_flip
from tests.conftest import SHARED_DATA

DIGITS = dict(num_classes=10, in_channels=1, image_size=8, mean=(0.3053,), std=(0.376,))


def normalised_batch(dm, split: str = "train"):
    """The first batch of a split as the model receives it (after the device-side transform)."""
    loader = {"train": dm.train_dataloader, "val": dm.val_dataloader, "test": dm.test_dataloader}[split]()
    return dm.on_after_batch_transfer(next(iter(loader)), 0)


def test_digits_split_is_fixed_stratified_and_disjoint():
    dm = DigitsDataModule(**DIGITS)
    dm.setup()
    sizes = {name: len(labels) for name, (_, labels) in dm.splits.items()}
    assert sizes == {"train": 1077, "val": 360, "test": 360}
    for _, labels in dm.splits.values():  # every class in every split, in proportion (about 10% each)
        counts = torch.bincount(labels, minlength=10).float() / len(labels)
        assert counts.min() > 0.08 and counts.max() < 0.12
    images = {name: {x.numpy().tobytes() for x in imgs} for name, (imgs, _) in dm.splits.items()}
    assert not images["test"] & images["train"]  # no test image is a training image
    again = DigitsDataModule(**DIGITS)
    again.setup()
    assert torch.equal(again.splits["test"][1], dm.splits["test"][1])


def test_train_fraction_keeps_a_stratified_nested_share_of_training_only():
    full = DigitsDataModule(**DIGITS)
    full.setup()
    kept = {}
    for fraction in (0.1, 0.5):
        dm = DigitsDataModule(train_fraction=fraction, **DIGITS)
        dm.setup()
        images, labels = dm.splits["train"]
        expected = torch.bincount(full.splits["train"][1], minlength=10) * fraction
        assert (torch.bincount(labels, minlength=10) - expected).abs().max() <= 0.5  # per class, rounded
        assert torch.equal(dm.splits["test"][1], full.splits["test"][1]) and len(dm.splits["val"][1]) == 360
        kept[fraction] = {x.numpy().tobytes() for x in images}
    assert kept[0.1] < kept[0.5]  # the smaller share is inside the larger one
    for bad in (0, 1.5, -0.2):
        with pytest.raises(ValueError, match=rf"data.train_fraction={bad} is not valid: use a number in \(0, 1\]"):
            DigitsDataModule(train_fraction=bad, **DIGITS)


def test_digits_batches_are_normalised():
    dm = DigitsDataModule(batch_size=2000, **DIGITS)
    dm.setup()
    x, y = normalised_batch(dm)
    assert x.shape == (1077, 1, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert abs(x.mean().item()) < 0.05 and abs(x.std().item() - 1) < 0.05


def test_random_crop_shifts_each_image_within_the_padding():
    x = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).view(2, 3, 6, 6) + 1
    assert torch.equal(random_crop(x, padding=0), x)
    torch.manual_seed(0)
    crops = random_crop(x.repeat(50, 1, 1, 1), padding=2)
    assert crops.shape == (100, 3, 6, 6)
    # each crop equals the image shifted by at most 2 pixels, with zeros where it left the frame
    for crop, image in zip(crops[:10], x.repeat(5, 1, 1, 1), strict=True):
        found = False
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                padded = torch.nn.functional.pad(image, (2, 2, 2, 2))
                window = padded[:, 2 + dy : 8 + dy, 2 + dx : 8 + dx]
                found |= torch.equal(window, crop)
        assert found
    assert len({c.sum().item() for c in crops}) > 5  # offsets differ between images


def test_random_flip_mirrors_about_half():
    torch.manual_seed(0)
    x = torch.arange(4.0).view(1, 1, 1, 4).repeat(1000, 1, 1, 1)
    flipped = random_flip(x)
    mirrored = (flipped == x.flip(3)).all(dim=(1, 2, 3))
    kept = (flipped == x).all(dim=(1, 2, 3))
    assert torch.all(mirrored | kept)
    assert 400 < mirrored.sum() < 600


def test_synthetic_shapes_and_determinism():
    kwargs = dict(num_classes=4, in_channels=3, image_size=16, num_train=64, num_val=32, num_test=32)
    a, b = SyntheticDataModule(**kwargs), SyntheticDataModule(**kwargs)
    a.setup(), b.setup()
    assert a.splits["train"][0].shape == (64, 3, 16, 16)
    assert torch.equal(a.splits["val"][0], b.splits["val"][0])
    assert a.splits["test"][1].max() < 4


def write_image_tree(root: Path, classes: list[str], per_class: int, size: int = 12) -> None:
    """A tiny ImageFolder tree of random PNGs (different sizes and modes, as real folders have)."""
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (size + i % 3, size, 3), dtype=np.uint8)
            image = Image.fromarray(pixels)
            (image.convert("L") if i % 2 else image).save(root / c / f"{i}.png")


@pytest.mark.parametrize("with_val_and_test", [False, True])
def test_imagefolder_reads_a_tree(tmp_path, with_val_and_test):
    classes = ["cat", "dog", "emu"]
    write_image_tree(tmp_path / "train", classes, per_class=10)
    if with_val_and_test:
        write_image_tree(tmp_path / "val", classes, per_class=2)
        write_image_tree(tmp_path / "test", classes, per_class=3)
    dm = ImageFolderDataModule(
        data_dir=str(tmp_path),
        num_classes=3,
        in_channels=3,
        image_size=8,
        batch_size=64,
        num_workers=0,
        val_fraction=0.2,
        mean=(0.5, 0.5, 0.5),
        std=(0.25, 0.25, 0.25),
    )
    dm.setup()
    sizes = {name: len(ds) for name, ds in dm.datasets.items()}
    assert sizes == ({"train": 30, "val": 6, "test": 9} if with_val_and_test else {"train": 24, "val": 6, "test": 6})
    x, y = normalised_batch(dm)
    assert x.shape == (sizes["train"], 3, 8, 8) and x.dtype == torch.float32
    assert set(y.tolist()) == {0, 1, 2}
    assert x.min() >= -2.1 and x.max() <= 2.1  # (0..1 - 0.5) / 0.25


def test_imagefolder_in_memory_decodes_once_and_trains_on_device(make_cfg, tmp_path):
    write_image_tree(tmp_path / "images" / "train", ["cat", "dog"], per_class=12, size=8)
    cfg = make_cfg(
        "data=imagefolder", f"data.data_dir={tmp_path / 'images'}", "data.num_classes=2", "data.image_size=8",
        "data.num_workers=0", "data.in_memory=true", "data.on_device=true", "data.batch_size=8",
        "trainer=cpu", "logger=csv", "trainer.max_epochs=2",
    )  # fmt: skip
    dm = instantiate(cfg.data, on_device=False)  # without a Trainer there is no device to go to
    dm.setup()
    assert {k: tuple(v[0].shape) for k, v in dm.splits.items()} == {
        "train": (22, 3, 8, 8), "val": (2, 3, 8, 8), "test": (2, 3, 8, 8)
    }  # fmt: skip
    assert dm.splits["train"][0].dtype == torch.uint8
    from src.train import train

    metrics = train(cfg)
    assert "test/acc" in metrics
    with pytest.raises(ValueError, match=r"needs data\.in_memory=true"):
        ImageFolderDataModule(data_dir=str(tmp_path), num_classes=2, in_channels=3, image_size=8, on_device=True)


def test_imagefolder_names_a_class_count_mismatch(tmp_path):
    write_image_tree(tmp_path / "train", ["a", "b"], per_class=2)
    dm = ImageFolderDataModule(data_dir=str(tmp_path), num_classes=10, in_channels=1, image_size=8)
    with pytest.raises(DataError, match=r"has 2 class folders \['a', 'b'\], but data.num_classes=10"):
        dm.setup()


@pytest.mark.parametrize("bits", [8, 16])
def test_a_16_bit_grey_image_decodes_to_its_8_bit_levels_not_white(tmp_path, bits):
    levels = np.arange(0, 256, 4, dtype=np.uint8).reshape(8, 8)  # a ramp of 64 grey levels
    pixels = levels.astype(np.uint16) * 257 if bits == 16 else levels  # 16-bit: the same levels, 0..65535
    Image.fromarray(pixels).save(tmp_path / "ramp.png")
    assert Image.open(tmp_path / "ramp.png").mode == ("I;16" if bits == 16 else "L")
    decoded = np.asarray(load_image(tmp_path / "ramp.png"))  # (8, 8, 3) uint8
    assert (decoded == levels[..., None]).all()


def test_imagefolder_without_train_folder_says_so(tmp_path):
    dm = ImageFolderDataModule(data_dir=str(tmp_path), num_classes=2, in_channels=1, image_size=8)
    with pytest.raises(DataError, match="has no train/ folder"):
        dm.setup()
    (tmp_path / "file").touch()
    dm = ImageFolderDataModule(data_dir=str(tmp_path / "file"), num_classes=2, in_channels=1, image_size=8)
    with pytest.raises(DataError, match=f"data.data_dir={tmp_path / 'file'} is not a folder"):
        dm.setup()


def test_imagefolder_skips_hidden_folders_and_files(tmp_path):
    """What notebooks, macOS and Finder leave in a folder: .ipynb_checkpoints/, ._<name> copies, .DS_Store."""
    write_image_tree(tmp_path / "train", ["cat", "dog"], per_class=5)
    (tmp_path / "train" / ".ipynb_checkpoints").mkdir()
    (tmp_path / "train" / "cat" / "._0.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble, not a PNG")
    (tmp_path / "train" / "dog" / ".DS_Store").write_bytes(b"Bud1")
    (tmp_path / "train" / "dog" / ".thumbs").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "train" / "dog" / ".thumbs" / "0.png")
    dm = ImageFolderDataModule(data_dir=str(tmp_path), num_classes=2, in_channels=1, image_size=8, val_fraction=0.2)
    dm.setup()
    assert dm.class_names == ["cat", "dog"] and len(dm.datasets["train"]) + len(dm.datasets["val"]) == 10


def test_a_class_missing_from_test_is_named_as_folders_that_differ(tmp_path):
    write_image_tree(tmp_path / "train", ["cat", "dog", "emu"], per_class=2)
    write_image_tree(tmp_path / "test", ["cat", "dog"], per_class=2)
    dm = ImageFolderDataModule(data_dir=str(tmp_path), num_classes=3, in_channels=1, image_size=8)
    with pytest.raises(DataError, match=r"class folders differ between splits: .*test has \['cat', 'dog'\]$"):
        dm.setup()


@pytest.mark.parametrize(("data", "name"), [("mnist", "MNIST"), ("cifar10", "CIFAR10")])
def test_a_download_that_fails_is_one_line_naming_the_folder(make_cfg, tmp_path, monkeypatch, data, name):
    def no_network(url, *args, **kwargs):
        raise URLError("[Errno -2] Name or service not known")  # what urllib raises with no network

    for module in ("mnist", "cifar"):  # torchvision's downloader, as each data set module imported it
        monkeypatch.setattr(f"torchvision.datasets.{module}.download_and_extract_archive", no_network)
    dm = instantiate(make_cfg(f"data={data}", f"data.data_dir={tmp_path}").data)
    with pytest.raises(DataError) as error:
        dm.prepare_data()
    assert str(error.value) == (
        f"{name} is not in data.data_dir={tmp_path} and could not be downloaded (<urlopen error [Errno -2] Name or "
        "service not known>): connect to the network once, or copy its files there (docs/troubleshooting.md)"
    )


@pytest.mark.skipif(not (SHARED_DATA / "mnist").is_dir(), reason="../shared/data/mnist is absent")
def test_mnist_reads_the_real_files(make_cfg, tmp_path):
    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for archive in (SHARED_DATA / "mnist").glob(
        "*.gz"
    ):  # torchvision wants them unpacked, as its downloader leaves them
        with gzip.open(archive) as src, open(raw / archive.stem, "wb") as dst:
            shutil.copyfileobj(src, dst)
    cfg = make_cfg("data=mnist", f"data.data_dir={tmp_path / 'data'}")
    dm = instantiate(cfg.data)
    dm.prepare_data()  # finds the files: no download
    dm.setup()
    sizes = {name: len(labels) for name, (_, labels) in dm.splits.items()}
    assert sizes == {"train": 55000, "val": 5000, "test": 10000}
    assert torch.bincount(dm.splits["test"][1]).tolist()[:3] == [980, 1135, 1032]  # official test counts
    x, _ = normalised_batch(dm, "test")
    assert x.shape == (1000, 1, 28, 28) and abs(x.mean().item()) < 0.1 and abs(x.std().item() - 1) < 0.1


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_DATA / "cifar10-jpeg").is_dir(), reason="../shared/data/cifar10-jpeg is absent")
def test_imagefolder_reads_the_real_cifar10_jpegs(make_cfg, tmp_path):
    for name in ("train", "test"):
        with tarfile.open(SHARED_DATA / "cifar10-jpeg" / f"{name}.tar.gz") as tar:
            tar.extractall(tmp_path / "cifar10", filter="data")
    cfg = make_cfg("data=imagefolder", f"data.data_dir={tmp_path / 'cifar10'}", "data.num_workers=0")
    dm = instantiate(cfg.data)
    dm.setup()
    assert {name: len(ds) for name, ds in dm.datasets.items()} == {"train": 45000, "val": 5000, "test": 10000}
    assert dm.datasets["test"].classes[:3] == ["airplane", "automobile", "bird"]
    x, y = normalised_batch(dm, "test")
    assert x.shape == (500, 3, 32, 32) and y.max() <= 9


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_DATA / "cifar10-jpeg").is_dir(), reason="../shared/data/cifar10-jpeg is absent")
def test_cifar10_jpeg_decodes_into_memory(make_cfg, tmp_path):
    for name in ("train", "test"):
        with tarfile.open(SHARED_DATA / "cifar10-jpeg" / f"{name}.tar.gz") as tar:
            tar.extractall(tmp_path / "cifar10-jpeg", filter="data")
    dm = instantiate(make_cfg("data=cifar10_jpeg", f"data.data_dir={tmp_path / 'cifar10-jpeg'}").data)
    dm.setup()
    assert {k: tuple(v[0].shape) for k, v in dm.splits.items()} == {
        "train": (45000, 3, 32, 32), "val": (5000, 3, 32, 32), "test": (10000, 3, 32, 32)
    }  # fmt: skip
    assert torch.bincount(dm.splits["test"][1]).tolist() == [1000] * 10
    x, _ = dm.transform(dm.splits["test"], train=False)  # all 10,000 (the first batch is all aeroplanes)
    assert abs(x.mean().item()) < 0.05 and abs(x.std().item() - 1) < 0.05  # CIFAR-10's statistics fit
