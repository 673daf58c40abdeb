"""evaluate(cfg): rebuild a training run from its checkpoint and test it."""

import logging
from pathlib import Path

import lightning.pytorch as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from src.utils.instantiate import instantiate_loggers
from src.utils.console import tidy_console
from src.utils.tracking import finish_tracking

log = logging.getLogger(__name__)
tidy_console()


def load_run_config(ckpt_path: str | Path) -> DictConfig:
    """The resolved training config stored in a checkpoint by `RunConfigInCheckpoint`."""
    checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    if "run_config" not in checkpoint:
        raise KeyError(f"{ckpt_path} holds no run_config: was it written by this template's train.py?")
    return OmegaConf.create(checkpoint["run_config"])


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Test `cfg.ckpt_path` on the training run's data (or on `data=...` when given)."""
    if not cfg.get("ckpt_path"):
        raise ValueError("eval.py needs ckpt_path=<path to a .ckpt file>")
    ckpt_path = Path(cfg.ckpt_path)
    if not ckpt_path.is_file():
        raise FileNotFoundError(f"ckpt_path={ckpt_path} is not a file")
    trained = load_run_config(ckpt_path)
    data_cfg = cfg.data if cfg.get("data") else trained.data
    # Evaluation never compiles: a compiled run's weights load unchanged into the plain network.
    module: pl.LightningModule = instantiate(trained.model, optimizer=trained.optimizer, compile=False)
    datamodule: pl.LightningDataModule = instantiate(data_cfg)
    loggers = instantiate_loggers(cfg.get("logger"))
    trainer: pl.Trainer = instantiate(cfg.trainer, logger=loggers or False)
    try:
        results = trainer.test(module, datamodule=datamodule, ckpt_path=str(ckpt_path), weights_only=True)
    finally:
        finish_tracking(loggers)
    metrics = {k: float(v) for k, v in results[0].items()} if results else {}
    if trainer.is_global_zero:
        log.info("Test metrics of %s: %s", ckpt_path, ", ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items())))
    return metrics
