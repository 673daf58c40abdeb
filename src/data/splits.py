"""Which images each split holds: a subset of the classes, a cross-validation fold, a share of the training images,
a held-out validation set. Every choice is seeded and the same for every run."""

import torch

from src.errors import ConfigValueError, DataError
from src.machinery.serving.in_memory import Split


def choose_images(
    splits: dict[str, Split], classes: list[int] | None, num_folds: int | None, fold: int, train_fraction: float
) -> dict[str, Split]:
    """The splits with only `classes` (relabelled), then train + val re-cut into fold `fold` of `num_folds`, then a
    stratified `train_fraction` of the training images; each step skipped when its setting is null (or 1)."""
    if classes:
        splits = {name: keep_classes(*split, classes) for name, split in splits.items()}
    if num_folds is not None:
        splits = cross_validation(splits, num_folds, fold)
    if train_fraction < 1:
        images, labels = splits["train"]
        kept = stratified_fraction(labels, train_fraction)
        splits = {**splits, "train": (images[kept], labels[kept])}
    return splits


def check_folds(num_folds: int | None, fold: int) -> None:
    """Raise `ConfigValueError` unless `fold` is one of `num_folds` (null: the fixed split, fold 0)."""
    valid = list(range(num_folds or 1))
    if (num_folds is not None and num_folds < 2) or fold not in valid:
        raise ConfigValueError(
            f"data.fold={fold} is not valid with data.num_folds={num_folds}: data.fold must be one of {valid}, "
            "and data.num_folds null (the fixed train/val split) or 2 or more"
        )


def cross_validation(splits: dict[str, Split], num_folds: int, fold: int) -> dict[str, Split]:
    """Fold `fold` of train + val (stratified, the same for every run) as val, the other folds as train."""
    images = torch.cat([splits["train"][0], splits["val"][0]])  # (N_train + N_val, C, H, W)
    labels = torch.cat([splits["train"][1], splits["val"][1]])
    if num_folds > (most := len(labels) // (num_classes := len(labels.unique()))):  # the smallest fold: N // k images
        raise ConfigValueError(
            f"data.num_folds={num_folds} leaves a fold fewer images than the {num_classes} classes: train + val hold "
            f"{len(labels)} images, so data.num_folds must be at most {most}"
        )
    val = stratified_folds(labels, num_folds) == fold  # (N_train + N_val,) bool
    return {**splits, "train": (images[~val], labels[~val]), "val": (images[val], labels[val])}


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


def stratified_folds(labels: torch.Tensor, num_folds: int, seed: int = 0) -> torch.Tensor:
    """The fold (0 .. num_folds - 1) of each image: each class shuffled once with `seed` and dealt round the folds
    in turn, so every fold holds its share of every class and fold sizes differ by at most one."""
    generator = torch.Generator().manual_seed(seed)
    members = [(labels == label).nonzero().flatten() for label in labels.unique()]  # [(n_class,), ...]
    order = torch.cat([m[torch.randperm(len(m), generator=generator)] for m in members])  # (N,)
    fold = torch.empty_like(labels)
    fold[order] = torch.arange(len(labels)) % num_folds
    return fold


def hold_out(n: int, num_held: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (kept, held out) of a seeded random split of range(n), the same for every run."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[num_held:], order[:num_held]


def keep_classes(images: torch.Tensor, labels: torch.Tensor, classes: list[int]) -> Split:
    """The images of `classes` only, relabelled by their place in it ([3, 7]: 3 -> 0, 7 -> 1), for a subset task."""
    if absent := sorted(set(classes) - set(labels.tolist())):
        raise DataError(f"data.classes={classes}: no images of {absent}; the labels are {labels.unique().tolist()}")
    matches = labels.unsqueeze(1) == torch.tensor(classes)  # (N, len(classes))
    kept = matches.any(dim=1)
    return images[kept], matches[kept].int().argmax(dim=1)
