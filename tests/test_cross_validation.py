"""Stratified k-fold cross-validation over train + val (data.num_folds, data.fold): the test split untouched."""

from collections import Counter

import pytest
import torch
from hydra.utils import instantiate

from src.data.digits import DigitsDataModule
from src.data.imagefolder import ImageFolderDataModule
from src.data.splits import stratified_folds
from src.errors import ConfigValueError, DataError
from tests.test_data import DIGITS, write_image_tree


def items(split: tuple[torch.Tensor, torch.Tensor]) -> Counter:
    """The split as a multiset of (image bytes, label): equal multisets hold the same images the same times."""
    images, labels = split
    return Counter((x.numpy().tobytes(), int(y)) for x, y in zip(images, labels, strict=True))


def test_five_folds_validate_on_every_train_and_val_image_exactly_once_stratified():
    fixed = DigitsDataModule(**DIGITS)
    fixed.setup()
    pooled = items(fixed.splits["train"]) + items(fixed.splits["val"])  # 1,437 images
    pooled_counts = torch.bincount(torch.cat([fixed.splits["train"][1], fixed.splits["val"][1]]), minlength=10)
    seen_as_val: Counter = Counter()
    for fold in range(5):
        dm = DigitsDataModule(num_folds=5, fold=fold, **DIGITS)
        dm.setup()
        val, train = items(dm.splits["val"]), items(dm.splits["train"])
        assert train + val == pooled  # each pooled image in exactly one of the two (as often as it occurs)
        assert sum(val.values()) in (287, 288)  # 1,437 / 5
        assert torch.equal(dm.splits["test"][0], fixed.splits["test"][0])  # the test split untouched
        # stratified: each class's count in the fold is its pooled count / 5, rounded either way
        per_class = torch.bincount(dm.splits["val"][1], minlength=10)
        assert ((per_class - pooled_counts / 5).abs() < 1).all(), per_class
        seen_as_val += val
    assert seen_as_val == pooled  # every train+val image validated exactly once over the five folds


def test_folds_partition_the_indices_and_are_the_same_every_run():
    labels = torch.arange(103) % 7  # 7 classes of 14-15
    folds = stratified_folds(labels, 4)
    assert torch.equal(folds, stratified_folds(labels, 4))  # fixed seed: every run and seed gets the same folds
    assert sorted(torch.bincount(folds).tolist()) == [25, 26, 26, 26]  # sizes differ by at most one
    for label in range(7):  # each class dealt round the folds
        counts = torch.bincount(folds[labels == label], minlength=4)
        assert counts.max() - counts.min() <= 1


def test_train_fraction_takes_its_share_of_the_folds_training_part():
    dm = DigitsDataModule(num_folds=5, fold=1, train_fraction=0.1, **DIGITS)
    dm.setup()
    assert len(dm.splits["val"][1]) in (287, 288) and 110 <= len(dm.splits["train"][1]) <= 120  # 10% of ~1,150


@pytest.mark.parametrize(
    ("num_folds", "fold", "valid"),
    [(5, 5, "[0, 1, 2, 3, 4]"), (5, -1, "[0, 1, 2, 3, 4]"), (1, 0, "[0]"), (None, 2, "[0]")],
)
def test_a_fold_outside_the_folds_is_one_clear_error(num_folds, fold, valid):
    with pytest.raises(
        ConfigValueError, match=rf"data.fold={fold} is not valid with data.num_folds={num_folds}: .*{valid}"
    ):
        DigitsDataModule(num_folds=num_folds, fold=fold, **DIGITS)


def test_folds_too_small_to_hold_each_class_once_are_one_clear_error():
    too_many = DigitsDataModule(num_folds=144, fold=0, **DIGITS)
    with pytest.raises(
        ConfigValueError,
        match=r"^data.num_folds=144 leaves a fold fewer images than the 10 classes: train \+ val hold 1437 images, "
        r"so data.num_folds must be at most 143$",
    ):
        too_many.setup()
    most = DigitsDataModule(num_folds=143, fold=142, **DIGITS)  # 1437 // 143 = 10 images a fold
    most.setup()
    assert len(most.splits["val"][1]) >= 10


def test_folds_are_set_from_the_command_line(make_cfg):
    dm = instantiate(make_cfg("data.num_folds=5", "data.fold=3").data)
    assert (dm.num_folds, dm.fold) == (5, 3)
    default = instantiate(make_cfg().data)
    assert (default.num_folds, default.fold) == (None, 0)


def test_imagefolder_folds_need_decoded_tensors_and_a_test_folder(tmp_path):
    write_image_tree(tmp_path / "train", ["a", "b"], per_class=5, size=8)
    common = dict(data_dir=str(tmp_path), num_classes=2, in_channels=3, image_size=8, num_folds=2, fold=1)
    with pytest.raises(ValueError, match=r"data.num_folds needs data.in_memory=true"):
        ImageFolderDataModule(**common)
    dm = ImageFolderDataModule(in_memory=True, **common)
    with pytest.raises(DataError, match=r"has no test/ folder, which data.num_folds needs"):
        dm.setup()  # without one, the validation images (the test set) would be trained on in the other fold
    write_image_tree(tmp_path / "test", ["a", "b"], per_class=2, size=8)
    dm = ImageFolderDataModule(in_memory=True, **common)
    dm.setup()
    assert {k: len(v[1]) for k, v in dm.splits.items()} == {"train": 5, "val": 5, "test": 4}


def test_folds_are_cut_from_the_kept_classes():
    kept = DigitsDataModule(classes=[3, 7], **{**DIGITS, "num_classes": 2})
    kept.setup()
    pooled = items(kept.splits["train"]) + items(kept.splits["val"])
    folds = [DigitsDataModule(classes=[3, 7], num_folds=2, fold=f, **{**DIGITS, "num_classes": 2}) for f in (0, 1)]
    for dm in folds:
        dm.setup()
        assert set(dm.splits["val"][1].tolist()) == {0, 1}  # renumbered labels, both in each fold
    assert items(folds[0].splits["val"]) + items(folds[1].splits["val"]) == pooled
