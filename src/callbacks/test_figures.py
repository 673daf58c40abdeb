"""Pictures of the test set: the confusion matrix and a grid of misclassified examples, as PNGs and in W&B. The data
module says how to draw one of its inputs (`draw_input(ax, x)`); one that cannot gets the confusion matrix alone."""

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import WandbLogger

log = logging.getLogger(__name__)


class TestFigures(Callback):
    """After testing, writes `confusion_matrix.png` (every process's share) and `misclassified.png` (process 0's first
    `max_examples` errors, drawn by the data module's `draw_input`) into `out_dir`, from the `{"preds": (B,)}` that
    `test_step` returns and the `(x, y, ...)` batches."""

    __test__ = False  # not a pytest class, despite the name

    def __init__(self, out_dir: str, max_examples: int = 32) -> None:
        self.out_dir = Path(out_dir)
        self.max_examples = max_examples
        self.paths: dict[str, Path] = {}

    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        n = pl_module.hparams.num_classes
        # (num_classes, num_classes): rows true, columns predicted; made where the predictions are, so that
        # every process has one to gather, even a process that saw no test batch
        self.confusion = torch.zeros(n, n, dtype=torch.long, device=pl_module.device)
        self.wrong: list[tuple[np.ndarray, int, int]] = []  # one input (e.g. a (C, H, W) image), label, prediction
        datamodule = trainer.datamodule
        self.draw_input = getattr(datamodule, "draw_input", None)
        if self.draw_input is None and self.max_examples and trainer.is_global_zero:
            log.info(
                "Test pictures: %s has no draw_input(ax, x), so misclassified examples are not drawn (the confusion "
                "matrix is)", type(datamodule).__name__ if datamodule is not None else "the test data",
            )  # fmt: skip

    def on_test_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, *args: Any
    ) -> None:
        if not isinstance(outputs, dict) or "preds" not in outputs:
            return
        inputs, labels = batch[0], batch[1]  # (B, ...) as the network takes them (images: normalised), (B,)
        preds = outputs["preds"]  # (B,)
        n = self.confusion.shape[0]
        self.confusion += torch.bincount(labels * n + preds, minlength=n * n).reshape(n, n)
        room = self.max_examples - len(self.wrong)
        if room > 0 and self.draw_input is not None:
            wrong = (preds != labels).nonzero().flatten()[:room]
            for image, label, pred in zip(
                inputs[wrong].numpy(force=True), labels[wrong].tolist(), preds[wrong].tolist(), strict=True
            ):
                self.wrong.append((image, label, pred))

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        n = self.confusion.shape[0]
        confusion = pl_module.all_gather(self.confusion).reshape(-1, n, n).sum(0).numpy(force=True)
        if not trainer.is_global_zero or not confusion.sum():
            return  # nothing was predicted: test_step returned no "preds"
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.paths = {"test/confusion_matrix": draw_confusion_matrix(confusion, self.out_dir / "confusion_matrix.png")}
        if self.draw_input is not None and self.max_examples:
            names = [str(name) for name in getattr(trainer.datamodule, "class_names", None) or []]
            names = names if len(names) == n else None
            path = draw_misclassified(self.wrong, self.out_dir / "misclassified.png", self.draw_input, names)
            self.paths["test/misclassified"] = path
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                for key, path in self.paths.items():
                    logger.log_image(key=key, images=[str(path)])
        log.info("Test pictures: %s", ", ".join(str(p) for p in self.paths.values()))


def draw_confusion_matrix(confusion: np.ndarray, path: Path) -> Path:
    """Counts per (true, predicted) class, with the accuracy in the title."""
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, nothing global

    n = confusion.shape[0]
    fig = Figure(figsize=(1.5 + 0.45 * n, 1.2 + 0.45 * n), layout="constrained")
    ax = fig.subplots()
    ax.imshow(confusion, cmap="Blues")
    if n <= 20:
        for (i, j), count in np.ndenumerate(confusion):
            color = "white" if count > confusion.max() / 2 else "black"
            ax.text(j, i, str(count), ha="center", va="center", color=color, fontsize=7)
    ax.set(xlabel="predicted", ylabel="true", xticks=range(n), yticks=range(n))
    accuracy = np.trace(confusion) / max(confusion.sum(), 1)
    ax.set_title(f"test: {confusion.sum()} images, accuracy {accuracy:.4f}", fontsize=9)
    fig.savefig(path, dpi=100)
    return path


def draw_misclassified(
    wrong: list[tuple[np.ndarray, int, int]],
    path: Path,
    draw_input: Callable[[Any, np.ndarray], None],
    class_names: list[str] | None = None,
    columns: int = 8,
) -> Path:
    """A grid of misclassified examples titled `true -> predicted` (class names when given), each drawn by
    `draw_input(ax, x)`."""
    from matplotlib.figure import Figure

    rows = max(1, -(-len(wrong) // columns))
    fig = Figure(figsize=(columns * 1.1, rows * 1.25), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False).flatten()
    for ax in axes:
        ax.axis("off")
    for ax, (example, label, pred) in zip(axes, wrong, strict=False):
        draw_input(ax, example)
        true, predicted = (class_names[label], class_names[pred]) if class_names else (label, pred)
        ax.set_title(f"{true} -> {predicted}", fontsize=8)
    if not wrong:
        axes[0].text(0.5, 0.5, "no misclassified test examples", ha="center", va="center")
    fig.savefig(path, dpi=100)
    return path
