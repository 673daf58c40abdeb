"""`last.ckpt`, the run's latest state. Lightning 2.6's `save_last=True` writes it at an epoch end only with a top-k
save, so it falls behind once `val/acc` stops improving: this callback owns it (the top-k one has `save_last: false`).
"""

from pathlib import Path
from weakref import proxy

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerFn

LAST_NAME = f"{ModelCheckpoint.CHECKPOINT_NAME_LAST}{ModelCheckpoint.FILE_EXTENSION}"


class LastCheckpoint(ModelCheckpoint):
    """Writes `last.ckpt` at every epoch end (after validation), at the end of training and every `every_n_train_steps`
    steps. A `ModelCheckpoint` (its hooks replaced) so that W&B `log_model` sees its `last_model_path`."""

    def __init__(self, dirpath: str | None = None, every_n_train_steps: int | None = 100) -> None:
        super().__init__(
            dirpath=dirpath,
            save_top_k=0,
            save_last=True,
            every_n_train_steps=every_n_train_steps,
            enable_version_counter=False,
        )
        self.every_n_train_steps = every_n_train_steps or 0
        self.saved_step = 0  # the global step last.ckpt holds; step 0 (nothing trained) is never saved

    @property
    def path(self) -> Path:
        """Where `last.ckpt` goes (the folder is known once the Trainer has set this callback up)."""
        if self.dirpath is None:
            raise RuntimeError("LastCheckpoint.path is known only after the Trainer's setup")
        return Path(self.dirpath) / LAST_NAME

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Resumed from this very file: it already holds this step, so a fit that trains nothing leaves it as it was.
        if trainer.ckpt_path and Path(trainer.ckpt_path).resolve() == self.path.resolve():
            self.saved_step = trainer.global_step

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx: int
    ) -> None:
        if not self.every_n_train_steps or trainer.global_step % self.every_n_train_steps:
            return
        # The epoch's last batch: the epoch-end save follows at this same step, after validation (a checkpoint from
        # before the validation would make a resumed run skip it).
        if trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            return
        self.save(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.save(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Nothing: the epoch-end save comes after the validation (ModelCheckpoint would save here)."""

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        """Nothing: last.ckpt keeps the last state saved before the failure."""

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.save(trainer)

    def save(self, trainer: pl.Trainer) -> Path:
        """Write last.ckpt (atomically, through the Trainer's checkpoint I/O) unless it already holds this step;
        called on every rank, as the save is collective under DDP."""
        path = self.path
        if trainer.fast_dev_run or trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING:
            return path
        if trainer.global_step == self.saved_step:
            return path
        self.last_model_path = str(path)  # set before saving: it is part of the saved state
        save_training_state(trainer, path)
        self.saved_step = trainer.global_step
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.after_save_checkpoint(proxy(self))
        return path


def find_last_checkpoint(trainer: pl.Trainer) -> LastCheckpoint | None:
    """The Trainer's LastCheckpoint callback, if it has one."""
    return next((c for c in trainer.checkpoint_callbacks if isinstance(c, LastCheckpoint)), None)


def last_checkpoint_path(trainer: pl.Trainer) -> Path:
    """Where `last.ckpt` goes: the LastCheckpoint's file, else in the folder of the first ModelCheckpoint, else
    <run dir>/checkpoints/last.ckpt (where `resume=true` looks)."""
    if (last := find_last_checkpoint(trainer)) is not None:
        return last.path
    for callback in trainer.checkpoint_callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.dirpath:
            return Path(callback.dirpath) / LAST_NAME
    return Path(trainer.default_root_dir) / "checkpoints" / LAST_NAME


def save_last_checkpoint(trainer: pl.Trainer) -> Path:
    """Save last.ckpt now (as the preemption handler does): through the LastCheckpoint, which skips the save when
    the file already holds this step, else straight to `last_checkpoint_path`."""
    if (last := find_last_checkpoint(trainer)) is not None:
        return last.save(trainer)
    path = last_checkpoint_path(trainer)
    save_training_state(trainer, path)
    return path


def save_training_state(trainer: pl.Trainer, path: Path) -> None:
    """Write the whole training state (weights, optimizer, loops, callbacks) to `path`, to resume from. A save, not a
    load: Lightning's `weights_only` here chooses what is written (False: everything), and left unset it logs a line
    at every save. Every load goes through read_checkpoint, with torch.load(weights_only=True)."""
    trainer.save_checkpoint(path, weights_only=False)
