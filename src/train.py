"""train(cfg): seed, build data, model, callbacks, loggers and Trainer from config; fit; test the best."""

import logging
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from src.callbacks.energy import energy_summary
from src.errors import CheckpointError, Preempted, RunError
from src.machinery.checkpoints.bounds import lift_bounds
from src.machinery.checkpoints.files import check_state_dict_fits, data_state_error, init_weights, read_checkpoint
from src.machinery.config.instantiate import (
    instantiate_callbacks,
    instantiate_loggers,
    instantiate_node,
    instantiate_trainer,
)
from src.machinery.launching.multirun import isolated_job
from src.machinery.resume.run_config import RunConfigInCheckpoint
from src.machinery.runs.folder import check_no_links, check_only_regular_files
from src.machinery.shims.lightning import kill_launched_ranks, raised_restoring_datamodule
from src.machinery.tracking.console import tidy_console
from src.machinery.tracking.loggers import finish_tracking, track_run
from src.machinery.tracking.redacted_hparams import RedactedHyperparameters, redact_logged_hyperparameters
from src.machinery.tracking.run_record import (
    describe_run,
    run_config,
    save_git_diff,
    save_run_config,
    set_default_group,
)
from src.machinery.tracking.secrets import redact_hydra_records, secret_values

log = logging.getLogger(__name__)
tidy_console()


def best_checkpoint(trainer: pl.Trainer) -> str | None:
    """Path of the best checkpoint saved during fit, or None (no checkpoint callback, fast_dev_run)."""
    callback = trainer.checkpoint_callback
    if isinstance(callback, ModelCheckpoint) and callback.best_model_path:
        return callback.best_model_path
    return None


@dataclass
class Run:
    """Everything a training run is made of, built from one config."""

    datamodule: pl.LightningDataModule
    module: pl.LightningModule
    trainer: pl.Trainer
    loggers: list[Logger]


def build(cfg: DictConfig, ckpt_path: str | None = None, **trainer_overrides: Any) -> Run:
    """Seed, record the config, and instantiate data, model, loggers, callbacks and Trainer (for a fit from
    `ckpt_path`, once the checkpoint is known to fit the model)."""
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True)
    set_default_group(cfg)
    record = run_config(cfg)  # credentials redacted
    secrets = secret_values(OmegaConf.to_container(cfg, resolve=True))
    redact_hydra_records(cfg.paths.output_dir, secrets)

    datamodule: pl.LightningDataModule = instantiate_node(cfg.data)
    module: pl.LightningModule = instantiate_node(cfg.model, optimizer=cfg.optimizer, scheduler=cfg.get("scheduler"))
    if cfg.get("init_from") is not None:  # weights only: the optimizer and step count start fresh
        init_weights(module, cfg.init_from, strict=cfg.get("init_strict", True))
    if ckpt_path is not None:  # before the record is written: a failed resume leaves the run folder's config as it was
        # mmap: only the tensors' shapes are read here; fit loads the checkpoint itself
        stored = read_checkpoint(ckpt_path, mmap=True)["state_dict"]
        check_state_dict_fits(module.state_dict(), stored, source=ckpt_path)
    loggers = instantiate_loggers(cfg.get("logger"))
    redact_logged_hyperparameters(loggers, secrets)  # Lightning logs the module's own hyperparameters
    callbacks = instantiate_callbacks(cfg.get("callbacks"), has_logger=bool(loggers))
    callbacks.append(RedactedHyperparameters(secrets))  # and stores them in every checkpoint
    for callback in callbacks:
        if isinstance(callback, RunConfigInCheckpoint):
            callback.run_config = record
    callbacks += trainer_overrides.pop("callbacks", [])
    trainer = instantiate_trainer(
        cfg.trainer, module, callbacks=callbacks, logger=loggers or False, **trainer_overrides
    )
    record.update(describe_run(module, trainer))
    log.info("Training %d of %d parameters", record["params"]["trainable"], record["params"]["total"])
    save_run_config(record, cfg.paths.output_dir)
    track_run(loggers, record, files=[save_git_diff(record, cfg.paths.output_dir)])
    return Run(datamodule, module, trainer, loggers)


def resume_from(cfg: DictConfig) -> str | None:
    """The checkpoint fit starts from: `ckpt_path`, or with `resume=true` (or `ckpt_path=last`) the run folder's
    checkpoints/last.ckpt; None (a fresh start, with a warning) while it has none, as at a requeued job's first run."""
    ckpt_path = cfg.get("ckpt_path")
    if cfg.get("resume") or ckpt_path == "last":
        check_no_links(cfg.paths.output_dir)  # a copied folder: nothing the run writes may leave it
        check_only_regular_files(cfg.paths.output_dir)  # a FIFO there would block whatever opens it
        last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
        if last.is_file():
            log.info("Resuming from %s", last)
            return str(last)
        log.warning("resume=true but %s does not exist: starting a new run in %s", last, cfg.paths.output_dir)
        return None
    if ckpt_path is not None and not Path(ckpt_path).is_file():  # fail before the data and model are built
        raise CheckpointError(f"ckpt_path={ckpt_path} does not exist (or is not a file)")
    return ckpt_path


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit the configured model, test its best checkpoint, and return the final metrics."""
    lift_bounds(cfg.get("trust_checkpoint", False))  # the user's own switch, for checkpoints they trust
    ckpt_path = resume_from(cfg)
    with isolated_job():
        return _fit_and_test(build(cfg, ckpt_path), cfg, ckpt_path)


def _fit_and_test(run: Run, cfg: DictConfig, ckpt_path: str | None) -> dict[str, float]:
    """Fit (resuming from `ckpt_path` if set), then test the best checkpoint; W&B is closed either way."""
    datamodule, module, trainer, loggers = run.datamodule, run.module, run.trainer, run.loggers

    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
        fit_metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        ckpt = best_checkpoint(trainer)
        if ckpt is None:
            log.warning("No best checkpoint was saved: testing the weights from the end of training")
        else:
            log.info("Testing the best checkpoint: %s", ckpt)
        trainer.test(module, datamodule=datamodule, ckpt_path=ckpt, weights_only=True)
    except SIGTERMException:
        # Lightning's own SIGTERM exit (code 0), outside the training steps the Preemption callback covers.
        raise Preempted(signal.SIGTERM, None) from None
    except CheckpointError as error:  # a restored state refused (random generators, data position): name the file
        if ckpt_path is None or str(ckpt_path) in str(error):
            raise
        raise CheckpointError(f"checkpoint {ckpt_path}: {error}") from None
    except Exception as error:
        if ckpt_path is not None and not isinstance(error, RunError) and raised_restoring_datamodule(error):
            raise data_state_error(datamodule, error, ckpt_path) from None  # every rank reads the same state
        if not isinstance(error, RunError):  # a crash, not a stop every rank takes together
            kill_launched_ranks(trainer)
        raise
    finally:
        finish_tracking(loggers)

    metrics = {**fit_metrics, **{k: float(v) for k, v in trainer.callback_metrics.items()}}
    if trainer.is_global_zero:
        log.info("Final metrics: %s", _format(metrics))
        if cost := energy_summary(trainer):
            log.info("Cost: %s", cost)
        log.info("Run directory: %s", cfg.paths.output_dir)
    return metrics


def _format(metrics: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items()))
