"""Process-wide speed settings that depend on the hardware the Trainer picked."""

import logging
import os

import lightning.pytorch as pl
import torch

log = logging.getLogger(__name__)


def configure_speed(trainer: pl.Trainer) -> None:
    """Call after the Trainer is built and before fitting."""
    if trainer.strategy.root_device.type == "cuda":
        # TF32 matmuls and convolutions on Ampere and newer: ~10-bit mantissa, several times the fp32 rate.
        torch.set_float32_matmul_precision("high")
    # `import lightning` sets PYTORCH_NVML_BASED_CUDA_CHECK=1 so that checking for a GPU cannot initialise
    # CUDA before a fork. With it set, every Adam/AdamW step asks NVML afresh whether a GPU exists
    # (torch.optim's graph-capture health check): a dlopen per step, ~0.2 ms on a CPU machine. Only
    # fork-based strategies need the guard; everywhere else the cached CUDA runtime answer is safe.
    if getattr(trainer.strategy, "_start_method", None) != "fork":
        os.environ.pop("PYTORCH_NVML_BASED_CUDA_CHECK", None)
