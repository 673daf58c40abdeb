"""Store the run's resolved config and class names in every checkpoint, so `eval.py` and `predict.py` can rebuild
the run from it and name its predictions."""

from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback


class RunConfigInCheckpoint(Callback):
    """Adds `checkpoint["run_config"]` (the run's record, credentials redacted) and `checkpoint["class_names"]` (a list
    of str by label): plain containers only, so `weights_only=True` loading works."""

    def __init__(self, run_config: dict[str, Any] | None = None) -> None:
        self.run_config = run_config

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        if self.run_config is not None:
            checkpoint["run_config"] = self.run_config
        if (names := getattr(trainer.datamodule, "class_names", None)) is not None:
            checkpoint["class_names"] = [str(name) for name in names]
