"""Stop (or skip the batch) at a NaN or infinite training loss, and never save the weights it spoiled."""

import logging

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback

from src.errors import NonFiniteLossError

log = logging.getLogger(__name__)

MODES = ("stop", "skip")
NONE_YET = torch.iinfo(torch.long).max  # "no non-finite loss so far", as a step number larger than any other


class FiniteLoss(Callback):
    """Watches every training loss for NaN and infinity (docs/reliability.md): `stop` checks on the device with no sync
    and reads the verdict every few steps; `skip` drops a bad batch's update, at the cost of a host read every step."""

    def __init__(self, on_nonfinite: str = "stop", every_n_steps: int | None = None) -> None:
        if on_nonfinite not in MODES:
            raise ValueError(f"callbacks.finite_loss.on_nonfinite={on_nonfinite!r} is not one of {list(MODES)}")
        self.on_nonfinite = on_nonfinite
        self.every_n_steps = every_n_steps
        self.skipped = 0
        self._skip_step = False
        self._buffers_before: list[torch.Tensor] = []
        self._first_bad: torch.Tensor | None = None  # () long: the first step with a non-finite loss, or NONE_YET
        self._bad_loss: torch.Tensor | None = None  # () float: that step's loss

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._first_bad = torch.full((), NONE_YET, dtype=torch.long, device=pl_module.device)
        self._bad_loss = torch.zeros((), device=pl_module.device)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx: int) -> None:
        if self.on_nonfinite == "skip":
            self._buffers_before = [buffer.detach().clone() for buffer in pl_module.buffers()]

    def on_before_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: torch.Tensor) -> None:
        if self.on_nonfinite == "stop":
            # On the device: a few scalar kernels, no sync.
            new = (self._first_bad == NONE_YET) & ~torch.isfinite(loss.detach()).all()
            self._first_bad = torch.where(new, trainer.global_step, self._first_bad)
            self._bad_loss = torch.where(new, loss.detach().float(), self._bad_loss)
            return
        finite = trainer.strategy.reduce_boolean_decision(bool(torch.isfinite(loss).all()), all=True)
        self._skip_step = not finite
        if not finite:
            self.skipped += 1
            where = f"step {trainer.global_step} (epoch {trainer.current_epoch}, batch {trainer.fit_loop.batch_idx})"
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

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx: int):
        every = self.every_n_steps or trainer.log_every_n_steps or 1
        if trainer.global_step % every == 0:
            self._stop_if_nonfinite(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._stop_if_nonfinite(trainer)

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        # Runs on every rank while any checkpoint is assembled, before the file is written: raising stops the save.
        self._stop_if_nonfinite(trainer)

    def _stop_if_nonfinite(self, trainer: pl.Trainer) -> None:
        if self.on_nonfinite != "stop" or self._first_bad is None:
            return
        first_bad = self._first_bad
        if trainer.world_size > 1:  # every rank takes the same decision: the earliest bad step of any rank
            first_bad = trainer.strategy.reduce(first_bad.clone(), reduce_op="min")
        step = int(first_bad)  # the one host read of this check
        if step == NONE_YET:
            return
        loss = self._bad_loss.item() if int(self._first_bad) == step else "non-finite (on another rank)"
        raise NonFiniteLossError(
            f"training loss is {loss} at step {step}: stopped at step {trainer.global_step}, before any checkpoint "
            "held the weights it changed (callbacks.finite_loss.on_nonfinite=skip skips such batches instead)"
        )
