"""Training throughput (samples per second) after a warm-up, timed at synchronised step boundaries."""

import statistics
import time

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback


class ThroughputMonitor(Callback):
    """Logs `train/samples_per_s` at each epoch end, timing each step after `warmup_steps` (compilation, autotuning)
    from the previous one's end; an epoch's first step is not counted, so validation and checkpointing stay out."""

    def __init__(self, warmup_steps: int = 10) -> None:
        self.warmup_steps = warmup_steps
        self.samples = 0
        self.seconds = 0.0
        self.step_rates: list[float] = []  # samples/s of each timed step
        self._start: float | None = None
        self._sync = False

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._sync = trainer.strategy.root_device.type == "cuda"

    def _now(self) -> float:
        if self._sync:
            torch.cuda.synchronize()  # GPU work is asynchronous: wait for it before reading the clock
        return time.perf_counter()

    @property
    def steps(self) -> int:
        """How many steps were timed."""
        return len(self.step_rates)

    @property
    def samples_per_s(self) -> float:
        """Samples over time, all timed steps together."""
        return self.samples / self.seconds if self.seconds else float("nan")

    @property
    def median_samples_per_s(self) -> float:
        """The median step's rate: robust to the bursts of slowness of a shared machine."""
        return statistics.median(self.step_rates) if self.step_rates else float("nan")

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        step = trainer.global_step
        if step < self.warmup_steps:
            return
        now = self._now()
        if self._start is not None:
            samples = len(batch[1]) * trainer.world_size
            self.samples += samples
            self.seconds += now - self._start
            self.step_rates.append(samples / (now - self._start))
        self._start = now

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = None  # validation and epoch-end work are not training throughput

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.steps:
            pl_module.log("train/samples_per_s", self.samples_per_s)
