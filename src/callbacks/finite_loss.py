"""Stop (or skip the batch) at a NaN or infinite training loss, before it reaches the weights."""

import logging

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback

from src.errors import NonFiniteLossError

log = logging.getLogger(__name__)

MODES = ("stop", "skip")


class FiniteLoss(Callback):
    """Checks every training loss before backward.

    `on_nonfinite=stop` raises `NonFiniteLossError` (the run exits non-zero, naming the step) before the optimizer
    step, so no weights and no checkpoint ever hold the NaN. `skip` drops that batch's gradients instead, so the
    optimizer leaves every weight (and its moments) as they were, and puts back the buffers (batch-norm
    statistics) that the batch's forward pass changed; it copies the buffers every step to do so. Costs one
    host-device sync per step (and one all-reduce under DDP, so every rank takes the same decision).
    """

    def __init__(self, on_nonfinite: str = "stop") -> None:
        if on_nonfinite not in MODES:
            raise ValueError(f"callbacks.finite_loss.on_nonfinite={on_nonfinite!r} is not one of {list(MODES)}")
        self.on_nonfinite = on_nonfinite
        self.skipped = 0
        self._skip_step = False
        self._buffers_before: list[torch.Tensor] = []

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx: int) -> None:
        if self.on_nonfinite == "skip":
            self._buffers_before = [buffer.detach().clone() for buffer in pl_module.buffers()]

    def on_before_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: torch.Tensor) -> None:
        finite = trainer.strategy.reduce_boolean_decision(bool(torch.isfinite(loss).all()), all=True)
        self._skip_step = not finite
        if finite:
            return
        where = f"step {trainer.global_step} (epoch {trainer.current_epoch}, batch {trainer.fit_loop.batch_idx})"
        if self.on_nonfinite == "stop":
            raise NonFiniteLossError(
                f"training loss is {loss.item()} at {where}: stopped before the weights changed "
                "(callbacks.finite_loss.on_nonfinite=skip skips such batches instead)"
            )
        self.skipped += 1
        log.warning("Training loss is %s at %s: skipping this batch (%d skipped)", loss.item(), where, self.skipped)

    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        if not self._skip_step:
            return
        # Optimizers leave parameters without a gradient untouched: no update, no weight decay, no moments.
        for group in optimizer.param_groups:
            for param in group["params"]:
                param.grad = None
        with torch.no_grad():
            for buffer, before in zip(pl_module.buffers(), self._buffers_before, strict=True):
                buffer.copy_(before)
