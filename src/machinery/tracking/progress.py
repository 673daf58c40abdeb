"""Progress reporting: a rich bar in a terminal, a few plain lines in logs (CI, SLURM, nohup)."""

import sys
import time

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ProgressBar, RichProgressBar


def auto_progress_bar(every_n_seconds: float = 30.0) -> ProgressBar:
    """`RichBar` when stdout is a terminal, else `LineProgress` (without one Rich prints nothing until the end,
    and tqdm floods logs)."""
    if sys.stdout.isatty():
        return RichBar()
    return LineProgress(every_n_seconds=every_n_seconds)


class LatestTrainLoss:
    """The latest logged `train/loss` as a number, read from the device at most once every `every_n_seconds`.

    The module logs the step loss without `prog_bar=True`: Lightning converts every progress-bar value to a number
    at every step, a host read (a GPU sync) a step even when the value was logged ten steps ago. Lightning hands the
    callback metrics over as new tensors at every step, so only a clock can tell when to read again: once a second
    is a refresh a person can follow, and no stall a step.
    """

    def __init__(self, every_n_seconds: float = 1.0) -> None:
        self.every_n_seconds = every_n_seconds
        self._tensor: object = None
        self._value: float | None = None
        self._read_at = -float("inf")

    def __call__(self, trainer: pl.Trainer) -> dict[str, float]:
        tensor = trainer.callback_metrics.get("train/loss")
        if tensor is None:
            return {}
        now = time.monotonic()
        if tensor is not self._tensor and (self._value is None or now - self._read_at >= self.every_n_seconds):
            self._tensor, self._value, self._read_at = tensor, float(tensor), now
        return {"train/loss": self._value}


class RichBar(RichProgressBar):
    """Lightning's RichProgressBar, showing `train/loss` (see `LatestTrainLoss`)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._train_loss = LatestTrainLoss()

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict:
        return {**super().get_metrics(trainer, pl_module), **self._train_loss(trainer)}


def _format(metrics: dict, prefixes: tuple[str, ...]) -> str:
    return "  ".join(f"{k} {float(v):.4f}" for k, v in sorted(metrics.items()) if k.startswith(prefixes))


class LineProgress(ProgressBar):
    """One line per epoch with the latest train/val metrics, plus one every `every_n_seconds` inside
    long epochs."""

    def __init__(self, every_n_seconds: float = 30.0) -> None:
        super().__init__()
        self.every_n_seconds = every_n_seconds
        self._enabled = True
        self._start = self._last_line = time.monotonic()  # eval.py tests without a training start
        self._finished_epoch = ""
        self._train_loss = LatestTrainLoss()

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    @property
    def is_enabled(self) -> bool:
        return self._enabled

    def _line(self, text: str) -> None:
        if self._enabled:
            print(f"[{time.monotonic() - self._start:7.1f}s] {text}", flush=True)
            self._last_line = time.monotonic()

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = self._last_line = time.monotonic()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if time.monotonic() - self._last_line >= self.every_n_seconds:
            total = self.total_train_batches
            metrics = _format({**trainer.progress_bar_metrics, **self._train_loss(trainer)}, ("train/",))
            self._line(f"epoch {trainer.current_epoch} batch {batch_idx + 1}/{total}  {metrics}")

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Called before Lightning computes the epoch's train/ metrics (after every on_train_epoch_end hook): the line
        # waits for them.
        epochs = f"{trainer.current_epoch + 1}/{trainer.max_epochs}" if trainer.max_epochs else trainer.current_epoch
        self._finished_epoch = f"epoch {epochs}  step {trainer.global_step}"

    def _print_finished_epoch(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._finished_epoch:
            self._line(f"{self._finished_epoch}  {_format(trainer.callback_metrics, ('train/', 'val/'))}")
            self._finished_epoch = ""

    on_train_epoch_start = on_train_end = _print_finished_epoch

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._line(f"test  {_format(trainer.callback_metrics, ('test/',))}")
