"""Every use of a private Lightning name, in one place, each with why (no other module touches a `_` name of lightning
or torch); `tests/test_lightning_shims.py` fails, naming the Lightning version, when one of them moves or changes."""

import csv
import signal

import lightning
import lightning.pytorch as pl
from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger, Logger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

# Lightning's launcher that starts DDP ranks 1..N-1 as subprocesses of rank 0 (`trainer.strategy=ddp` on one
# machine, not under torchrun or SLURM). It is private, and it is the only handle on those processes.
from lightning.pytorch.strategies.launchers import _SubprocessScriptLauncher

LIGHTNING_VERSION = lightning.__version__


def kill_launched_ranks(trainer: pl.Trainer, signum: int = signal.SIGKILL) -> bool:
    """Send `signum` to the DDP ranks this process started; True if it started any. Lightning kills them only on
    Ctrl-C, but a rank stuck outside a collective would outlive a crashed rank 0, and preemption must reach all."""
    launcher = trainer.strategy.launcher
    if isinstance(launcher, _SubprocessScriptLauncher):
        launcher.kill(signum)
        return True
    return False


def starts_ranks_by_fork(trainer: pl.Trainer) -> bool:
    """True for the fork-based strategies (`ddp_fork`, `ddp_notebook`): only they need CUDA left uninitialised
    before the ranks start. Lightning keeps the start method in the strategy's private `_start_method`."""
    return getattr(trainer.strategy, "_start_method", None) == "fork"


def stop_per_step_sigterm_broadcast(trainer: pl.Trainer) -> bool:
    """Under DDP, Lightning's training loop broadcasts rank 0's `received_sigterm` flag and reads it back at every
    step (`_broadcast_sigterm_tensor`): a collective and a GPU sync a step. Once the template's Preemption handles
    SIGTERM itself (its handler replaces Lightning's, so the flag never changes) and the ranks agree every few steps,
    that broadcast only stalls: it is replaced on this trainer's loop, and nowhere else. True if it was there."""
    epoch_loop = trainer.fit_loop.epoch_loop
    if not callable(getattr(type(epoch_loop), "_broadcast_sigterm_tensor", None)):
        return False
    epoch_loop._broadcast_sigterm_tensor = lambda: None
    return True


def raised_restoring_datamodule(error: BaseException) -> bool:
    """Whether `error` came out of the data module's `load_state_dict` as Lightning restored it from a checkpoint, in
    `trainer.fit(ckpt_path=...)` (its private checkpoint connector's `restore_datamodule` on the stack): a state the
    data module cannot take, not a failure of training."""
    frame = error.__traceback__
    while frame is not None:
        if frame.tb_frame.f_code.co_name == "restore_datamodule":
            return True
        frame = frame.tb_next
    return False


def experiment_started(logger: Logger) -> bool:
    """Whether a logger has created its experiment (a W&B run) yet; reading `logger.experiment` would create it.
    Lightning's loggers keep it in the private `_experiment` until then."""
    return getattr(logger, "_experiment", None) is not None


class ContinuingExperimentWriter(ExperimentWriter):
    """Lightning's CSV writer deletes an existing metrics.csv (in its private `_check_log_dir_exists`); this one
    appends to it, starting from its columns."""

    def _check_log_dir_exists(self) -> None:
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as f:
                self.metrics_keys = next(csv.reader(f), [])


class ContinuingCSVLogger(CSVLogger):
    """Lightning's CSVLogger, appending to the run folder's metrics.csv so `resume=true` loses no rows; it builds its
    writer as Lightning's does (private `_experiment` and `_fs`), with the appending writer above."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = ContinuingExperimentWriter(log_dir=self.log_dir)
        return self._experiment
