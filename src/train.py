"""train(cfg): seed, build data, model, callbacks, loggers and Trainer from config; fit; test the best."""

import logging
from typing import Any

import lightning.pytorch as pl
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig

from src.callbacks.run_config import RunConfigInCheckpoint
from src.utils.console import tidy_console
from src.utils.instantiate import instantiate_callbacks, instantiate_loggers
from src.utils.run_record import run_config, save_run_config
from src.utils.tracking import finish_tracking

log = logging.getLogger(__name__)
tidy_console()


def best_checkpoint(trainer: pl.Trainer) -> str | None:
    """Path of the best checkpoint saved during fit, or None (no checkpoint callback, fast_dev_run)."""
    callback = trainer.checkpoint_callback
    if isinstance(callback, ModelCheckpoint) and callback.best_model_path:
        return callback.best_model_path
    return None


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit the configured model, test its best checkpoint, and return the final metrics."""
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True)
    record = run_config(cfg)
    save_run_config(record, cfg.paths.output_dir)

    datamodule: pl.LightningDataModule = instantiate(cfg.data)
    module: pl.LightningModule = instantiate(cfg.model, optimizer=cfg.optimizer, scheduler=cfg.get("scheduler"))
    loggers = instantiate_loggers(cfg.get("logger"))
    callbacks = instantiate_callbacks(cfg.get("callbacks"), has_logger=bool(loggers))
    callbacks.append(RunConfigInCheckpoint(record))
    trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    for logger in loggers:
        logger.log_hyperparams(record)

    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"), weights_only=True)
        fit_metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        ckpt = best_checkpoint(trainer)
        if ckpt is None:
            log.warning("No best checkpoint was saved: testing the weights from the end of training")
        else:
            log.info("Testing the best checkpoint: %s", ckpt)
        trainer.test(module, datamodule=datamodule, ckpt_path=ckpt, weights_only=True)
    finally:
        finish_tracking(loggers)

    metrics = {**fit_metrics, **{k: float(v) for k, v in trainer.callback_metrics.items()}}
    if trainer.is_global_zero:
        log.info("Final metrics: %s", _format(metrics))
        log.info("Run directory: %s", cfg.paths.output_dir)
    return metrics


def _format(metrics: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items()))
