"""Callbacks tests add from the command line (`+callbacks.x._target_=tests.probes....`): to see what every DDP
rank ran with, and to inject faults (a kill, a signal, a NaN, a failing rank) at a chosen step; and the module as it
was before SampleMean (`model._target_=tests.probes.MeanMetricLosses`), to count its host reads."""

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from torchmetrics import MeanMetric

from src.module import ClassificationModule


class RankProbe(Callback):
    """Writes `rank<N>.json`: the rank's learning rate, world size and first-epoch training samples.

    Samples are fingerprinted by their first pixel (distinct for synthetic data), to compare shards.
    """

    def __init__(self, out_dir: str) -> None:
        self.out_dir = Path(out_dir)
        self.fingerprints: list[float] = []

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if trainer.current_epoch == 0:
            self.fingerprints += batch[0].flatten(1)[:, 0].tolist()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch != 0:
            return
        record = {
            "rank": trainer.global_rank,
            "world_size": trainer.world_size,
            "lr": trainer.optimizers[0].defaults["lr"],
            "device": str(batch_device(pl_module)),
            "fingerprints": self.fingerprints,
        }
        (self.out_dir / f"rank{trainer.global_rank}.json").write_text(json.dumps(record))


def batch_device(pl_module: pl.LightningModule):
    return pl_module.device


def read_ranks(folder: Path) -> dict[int, dict]:
    return {int(p.stem[4:]): json.loads(p.read_text()) for p in folder.glob("rank*.json")}


class KillAt(Callback):
    """SIGKILLs its own process (no clean-up, like an OOM killer or a lost node) at a chosen point of training.

    `step`: in `on_train_batch_end` once `global_step` reaches it (before that step's checkpoint is written:
    Lightning runs checkpoint callbacks last). `epoch_start`: when that epoch begins (after the checkpoint of
    the epoch before it).
    """

    def __init__(self, step: int | None = None, epoch_start: int | None = None) -> None:
        self.step, self.epoch_start = step, epoch_start

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if self.step is not None and trainer.global_step >= self.step:
            os.kill(os.getpid(), signal.SIGKILL)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module) -> None:
        if self.epoch_start is not None and trainer.current_epoch == self.epoch_start:
            os.kill(os.getpid(), signal.SIGKILL)


class SignalAt(Callback):
    """Sends `signum` to its own process during the training step that reaches `step` (a scheduler's SIGTERM);
    under DDP only in rank `rank` when given."""

    def __init__(self, step: int, signum: int = signal.SIGTERM, rank: int | None = None) -> None:
        self.step, self.signum, self.rank = step, signum, rank

    def on_before_backward(self, trainer: pl.Trainer, pl_module, loss) -> None:
        if trainer.global_step == self.step and self.rank in (None, trainer.global_rank):
            os.kill(os.getpid(), self.signum)


class SignalInValidation(Callback):
    """Sends SIGTERM to its own process as the validation of epoch `epoch` begins."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_validation_start(self, trainer: pl.Trainer, pl_module) -> None:
        if not trainer.sanity_checking and trainer.current_epoch == self.epoch:
            os.kill(os.getpid(), signal.SIGTERM)


class NanAt(Callback):
    """Poisons the batch of training step `step` with NaN, so that step's loss is NaN."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module, batch, batch_idx: int) -> None:
        if trainer.global_step == self.step:
            batch[0].fill_(float("nan"))


class FailRank(Callback):
    """Makes one DDP rank fail at a training step: `raise` (a bug), `kill` (SIGKILL: OOM killer, lost node) or
    `hang` (stuck outside any collective). Every rank writes its process id to `<out_dir>/rank<N>.pid`; rank 0,
    the parent of the other ranks, writes each one's exit code (and the time it saw it) to `rank<N>.exit` the
    moment that rank exits.
    """

    def __init__(self, rank: int, step: int, out_dir: str, action: str = "raise") -> None:
        self.rank, self.step, self.action = rank, step, action
        self.out_dir = Path(out_dir)

    def setup(self, trainer: pl.Trainer, pl_module, stage: str) -> None:
        (self.out_dir / f"rank{trainer.global_rank}.pid").write_text(str(os.getpid()))
        if trainer.global_rank == 0 and trainer.strategy.launcher is not None:
            for rank, proc in enumerate(trainer.strategy.launcher.procs, start=1):
                threading.Thread(target=self._record_exit, args=(rank, proc), daemon=True).start()

    def _record_exit(self, rank: int, proc: subprocess.Popen) -> None:
        # Lightning's child-process observer reaps a rank that exited non-zero and SIGKILLs this process at once, so
        # a record written after the reaping may never be written (CI saw it under load). Holding the Popen's
        # waitpid lock makes the observer's poll answer "still running" (Popen._internal_poll), and WNOWAIT leaves
        # the rank unreaped: the observer reaps it, and acts, only once its exit is on disk.
        with proc._waitpid_lock:
            info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
            code = info.si_status if info.si_code == os.CLD_EXITED else -info.si_status  # killed: minus the signal
            record = {"code": code, "time": time.time()}
            (self.out_dir / f"rank{rank}.exit").write_text(json.dumps(record))

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module, batch, batch_idx: int) -> None:
        if trainer.global_rank != self.rank or trainer.global_step != self.step:
            return
        if self.action == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if self.action == "hang":
            time.sleep(3600)
        raise RuntimeError(f"injected failure on rank {self.rank} at step {self.step}")


class MeanMetricLosses(ClassificationModule):
    """The module before SampleMean (before commit 4081b2a): the epoch losses in torchmetrics' `MeanMetric`, updated
    with `(loss, weight=n)` and its default `nan_strategy="warn"`, whose NaN check (`if nans.any() or
    nans_weight.any()`) reads two values back to the host on every update."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.train_loss, self.val_loss, self.test_loss = MeanMetric(), MeanMetric(), MeanMetric()


class ProgressBarLoss(ClassificationModule):
    """The module before the progress bars read `train/loss` themselves: the step loss logged with `prog_bar=True`
    (as probe/loss), which Lightning converts to a number at every step, logged that step or not."""

    def training_step(self, batch, batch_idx: int):
        loss = super().training_step(batch, batch_idx)
        if (self.global_step + 1) % (self.trainer.log_every_n_steps or 1) == 0:
            self.log("probe/loss", loss.detach(), prog_bar=True)
        return loss


class PeakAt(Callback):
    """Logs `probe/peak` after each validation, highest at epoch `epoch`: monitored by the checkpoint callback, it puts
    the best checkpoint at a chosen epoch whatever the hardware's floating point makes of val/acc."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module) -> None:
        pl_module.log("probe/peak", -float(abs(trainer.current_epoch - self.epoch)))
