"""Stop cleanly on SIGTERM / SIGUSR1: finish the step, save `last.ckpt`, exit 128 + signal (SLURM: requeue)."""

import logging
import os
import signal
import subprocess

import lightning.pytorch as pl
import torch
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.callbacks import Checkpoint

from src.errors import Preempted
from src.machinery.checkpoints.last import save_last_checkpoint
from src.machinery.shims.lightning import kill_launched_ranks, stop_per_step_sigterm_broadcast

log = logging.getLogger(__name__)


def requeue_slurm_job() -> None:
    """Put this SLURM job back in the queue (as Lightning's auto-requeue does); it restarts with the same command."""
    job_id = os.environ["SLURM_JOB_ID"]
    if os.environ.get("SLURM_ARRAY_JOB_ID"):
        job_id = f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    result = subprocess.run(["scontrol", "requeue", job_id], capture_output=True, text=True)
    if result.returncode == 0:
        log.info("Requeued SLURM job %s", job_id)
    else:
        log.warning("Requeuing SLURM job %s failed: %s", job_id, result.stderr.strip())


class Preemption(Checkpoint):
    """On one of `signals`: finish the step, save `last.ckpt`, exit 128 + signal (Lightning's handlers exit 0 unsaved
    or save mid-step). A `Checkpoint`, so it runs after the ModelCheckpoints; DDP ranks agree every `every_n_steps`."""

    def __init__(
        self,
        signals: tuple[str, ...] = ("SIGTERM", "SIGUSR1"),
        requeue: bool = True,
        every_n_steps: int | None = None,
    ) -> None:
        self.signals = [signal.Signals[name] for name in signals]
        self.requeue = requeue
        self.every_n_steps = every_n_steps
        self.received = 0
        self._trainer: pl.Trainer | None = None

    def _handle(self, signum: int, frame: object) -> None:
        # Only note it (a handler may run in the middle of an optimizer step); pass it to the ranks we launched.
        self.received = self.received or signum
        if self._trainer is not None:
            kill_launched_ranks(self._trainer, signum)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._trainer = trainer
        if trainer.received_sigterm:  # arrived before training began, under Lightning's handler
            self.received = signal.SIGTERM
        for signum in self.signals:
            signal.signal(signum, self._handle)
        if signal.SIGTERM in self.signals and trainer.world_size > 1:
            stop_per_step_sigterm_broadcast(trainer)  # this callback's own agreement, every few steps, replaces it

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx: int):
        every = self.every_n_steps or trainer.log_every_n_steps or 1
        if trainer.world_size == 1 or trainer.global_step % every == 0:
            self._stop_if_signalled(trainer, pl_module)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # A signal during the epoch-end validation stops here, after the ModelCheckpoints have saved the epoch
        # (and, in the last epoch, before the test stage).
        self._stop_if_signalled(trainer, pl_module)

    def _stop_if_signalled(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        received = self.received
        if trainer.world_size > 1:  # every rank stops at the same step, whichever got the signal
            flag = torch.tensor(received, device=pl_module.device)
            received = int(trainer.strategy.reduce(flag, reduce_op="max"))
        if not received:
            return
        path = save_last_checkpoint(trainer)  # skipped when last.ckpt already holds this step
        if trainer.is_global_zero:
            log.info("Signal %d: saved %s at step %d", received, path, trainer.global_step)
        if self.requeue and received == signal.SIGUSR1 and trainer.is_global_zero and SLURMEnvironment.detect():
            requeue_slurm_job()
        raise Preempted(received, str(path))
