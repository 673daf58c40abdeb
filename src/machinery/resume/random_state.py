"""Save the random-number generators' states with each checkpoint, so a resumed run draws what an unbroken one would."""

import random
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

from src.errors import CheckpointError, first_line


def rng_states() -> dict[str, Any]:
    """torch, CUDA, numpy and Python RNG states as tensors and plain containers (`weights_only=True` loads them)."""
    kind, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached_gaussian],
        "python": random.getstate(),
    }


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore what `rng_states` returned."""
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    kind, keys, pos, has_gauss, cached_gaussian = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached_gaussian))
    version, internal, gauss_next = states["python"]
    random.setstate((version, tuple(internal), gauss_next))


def check_rng_states(states: Any) -> None:
    """Raise `CheckpointError` (one line) unless `states` is what `rng_states` returns: each state is set on a
    generator of its own, so a wrong type or shape fails here, when the checkpoint is read, not at train start."""
    try:
        if not isinstance(states, dict):
            raise TypeError(f"a {type(states).__name__}, not a dict")
        torch.Generator().set_state(states["torch"])
        cuda = states["cuda"]
        if not isinstance(cuda, list | tuple) or not all(
            isinstance(s, torch.Tensor) and s.dtype == torch.uint8 for s in cuda
        ):
            raise TypeError("cuda: not a list of byte tensors")
        kind, keys, pos, has_gauss, cached_gaussian = states["numpy"]
        if not isinstance(keys, torch.Tensor) or keys.dtype != torch.int64:
            raise TypeError("numpy: its keys are not an int64 tensor")
        np.random.RandomState().set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached_gaussian))
        version, internal, gauss_next = states["python"]
        if not isinstance(internal, list | tuple):
            raise TypeError("python: its internal state is not a sequence")
        random.Random().setstate((version, tuple(internal), gauss_next))
    except (TypeError, ValueError, KeyError, IndexError, RuntimeError, OverflowError) as error:
        raise CheckpointError(
            f"its random-generator state is not what this template saves ({first_line(error)[:200]}): resume from "
            "another checkpoint, or start afresh"
        ) from None


class RandomStateInCheckpoint(Callback):
    """Stores the RNG states in every checkpoint; restores them at train start, not on load, as setting up the loaders
    draws random numbers in between. Under DDP it holds rank 0's (`seed_everything` gives every rank the same)."""

    def __init__(self) -> None:
        self._to_restore: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        return rng_states()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        check_rng_states(state_dict)
        self._to_restore = state_dict

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._to_restore is not None:
            set_rng_states(self._to_restore)
            self._to_restore = None
