"""Build the Trainer, and the callbacks and loggers named in a config group (a dict of `_target_` entries)."""

import atexit
import logging
from typing import Any

import lightning.pytorch as pl
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import Callback, LearningRateMonitor
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig

from src.errors import ConfigValueError, RunError
from src.machinery.checkpoints.files import AtomicCheckpointIO
from src.machinery.launching.distributed import close_process_group
from src.machinery.launching.hardware import check_accelerator, configure_speed, resolve_precision

log = logging.getLogger(__name__)
atexit.register(close_process_group)  # registered once: at exit, the process group (if any), whatever the strategy


def instantiate_node(node: DictConfig, **kwargs: Any) -> Any:
    """Hydra's instantiate, reporting a constructor's `RunError` as one line, and a bad value or missing package
    (`ValueError`, Lightning's `MisconfigurationException`, `ImportError`) as a `ConfigValueError`."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as error:
        cause = error.__cause__
        if isinstance(cause, RunError | ValueError | MisconfigurationException | ImportError):
            raise cause if isinstance(cause, RunError) else ConfigValueError(cause) from None
        raise


def instantiate_group(group: DictConfig | None) -> list:
    """Instantiate every entry of a group; an entry set to null (`callbacks.early_stopping=null`) is skipped."""
    if not group:
        return []
    objects = []
    for name, node in group.items():
        if node is None:
            continue
        if not isinstance(node, DictConfig) or "_target_" not in node:
            raise ValueError(f"Config entry {name!r} has no _target_: {node}")
        objects.append(instantiate_node(node))
    return objects


def instantiate_loggers(group: DictConfig | None) -> list[Logger]:
    return instantiate_group(group)


def instantiate_callbacks(group: DictConfig | None, has_logger: bool) -> list[Callback]:
    """Callbacks; the learning-rate monitor is dropped with a note when there is no logger to write to."""
    callbacks = instantiate_group(group)
    if not has_logger and any(isinstance(c, LearningRateMonitor) for c in callbacks):
        log.info("No logger (logger=none): the learning-rate monitor is left out")
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    return callbacks


def instantiate_trainer(trainer_cfg: DictConfig, model: torch.nn.Module | None = None, **kwargs: Any) -> pl.Trainer:
    """The configured Trainer, with the template's `precision: mixed` resolved, atomic and verified checkpoint
    files (`AtomicCheckpointIO`, checking that a loaded checkpoint fits `model`), and the speed settings applied."""
    check_accelerator(kwargs.get("accelerator", trainer_cfg.accelerator))
    kwargs.setdefault("precision", resolve_precision(trainer_cfg.precision))
    kwargs.setdefault("plugins", [AtomicCheckpointIO(model)])
    trainer = instantiate_node(trainer_cfg, **kwargs)
    configure_speed(trainer)
    return trainer
