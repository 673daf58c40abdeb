"""Paths restored from a checkpoint are checked before anything uses them: Lightning's `ModelCheckpoint` deletes the
old files its restored paths name, so only plain local paths inside its own checkpoint folder survive the restore.
"""

import logging
import os
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

log = logging.getLogger(__name__)

PATH_KEYS = ("best_model_path", "last_model_path", "kth_best_model_path")


def is_inside(value: Any, folder: str | Path | None) -> bool:
    """True for a plain absolute local path (no `proto://`, no `..`) that lies inside `folder`, links resolved."""
    if folder is None or not isinstance(value, str) or not value or "://" in value or "::" in value:
        return False
    path = Path(value)
    if not path.is_absolute() or ".." in path.parts:
        return False
    try:
        real, real_folder = Path(os.path.realpath(path)), Path(os.path.realpath(folder))
    except (ValueError, OSError):  # a NUL byte, a link loop
        return False
    return real != real_folder and real.is_relative_to(real_folder)


def clean_model_checkpoint_state(state: dict[str, Any], folder: str | Path | None, name: str = "") -> list[str]:
    """Drop (in place) and return each path in a `ModelCheckpoint` state not inside `folder`, so that no folder-bound
    field is restored: a path becomes "" (Lightning's "none yet"), a top-k entry goes, a foreign `dirpath` None."""
    dropped = []
    for key in PATH_KEYS:
        value = state.get(key)
        if value not in (None, "") and not is_inside(value, folder):
            dropped.append(f"{key}={value!r}")
            state[key] = ""
    best_k = state.get("best_k_models")
    if best_k is not None:
        if not isinstance(best_k, dict):
            dropped.append(f"best_k_models={type(best_k).__name__}")
            state["best_k_models"] = {}
        else:
            for path in [p for p in best_k if not is_inside(p, folder)]:
                dropped.append(f"best_k_models[{path!r}]")
                del best_k[path]
    dirpath = state.get("dirpath")
    if dirpath is not None and not (isinstance(dirpath, str) and _same_folder(dirpath, folder)):
        dropped.append(f"dirpath={dirpath!r}")
        state["dirpath"] = None
    for item in dropped:
        log.warning("Restored checkpoint state of %s: dropped %s (not a file inside %s)", name, item[:300], folder)
    return dropped


def _same_folder(value: str, folder: str | Path | None) -> bool:
    if folder is None or "://" in value or ".." in Path(value).parts or not Path(value).is_absolute():
        return False
    try:
        return os.path.realpath(value) == os.path.realpath(folder)
    except (ValueError, OSError):
        return False


class RestoredPathsCheck(Callback):
    """Cleans each `ModelCheckpoint`'s restored state before it is loaded (every callback's `on_load_checkpoint`
    runs before any callback's `load_state_dict`)."""

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        states = checkpoint.get("callbacks")
        if not isinstance(states, dict):
            return
        for callback in trainer.callbacks:
            if isinstance(callback, ModelCheckpoint) and isinstance(states.get(callback.state_key), dict):
                clean_model_checkpoint_state(states[callback.state_key], callback.dirpath, callback.state_key)
