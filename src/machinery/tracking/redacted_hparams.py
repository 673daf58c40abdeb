"""What Lightning records by itself, redacted: the hyperparameters it hands every logger (`csv/hparams.yaml`, MLflow's
parameters, W&B's config) and stores in every checkpoint are the module's and data module's own
(`save_hyperparameters`), which the run record's redaction never saw."""

from argparse import Namespace
from collections.abc import Iterable, Mapping
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import Logger

from src.machinery.tracking.secrets import redact

HPARAMS_KEYS = ("hyper_parameters", "datamodule_hyper_parameters")  # Lightning's keys in a checkpoint


def _plain(params: Any) -> Any:
    return vars(params) if isinstance(params, Namespace) else dict(params) if isinstance(params, Mapping) else params


class _Redacting:
    """A logger's `log_hyperparams` that redacts its argument first (a class, not a closure: loggers stay picklable)."""

    def __init__(self, log_hyperparams: Any, secrets: list[str]) -> None:
        self.log_hyperparams, self.secrets = log_hyperparams, secrets

    def __call__(self, params: Any, *args: Any, **kwargs: Any) -> Any:
        return self.log_hyperparams(redact(_plain(params), self.secrets), *args, **kwargs)


def redact_logged_hyperparameters(loggers: Iterable[Logger], secrets: Iterable[str]) -> None:
    """Every logger in `loggers` redacts what it is given to `log_hyperparams` (by name, value and shape), whoever
    calls it: the run record, and Lightning with the module's own hyperparameters."""
    secrets = list(secrets)
    for logger in loggers:
        logger.log_hyperparams = _Redacting(logger.log_hyperparams, secrets)  # type: ignore[method-assign]


class RedactedHyperparameters(Callback):
    """Redacts the hyperparameters Lightning stores in each checkpoint (a copy: the module's own stay as they are)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self.secrets = list(secrets)

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        for key in HPARAMS_KEYS:
            if key in checkpoint:
                checkpoint[key] = redact(_plain(checkpoint[key]), self.secrets)
