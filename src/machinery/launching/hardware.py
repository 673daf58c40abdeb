"""Process-wide speed settings that depend on the hardware the Trainer picked."""

import os
import platform

import lightning.pytorch as pl
import torch

from src.errors import ConfigValueError
from src.machinery.shims.lightning import starts_ranks_by_fork

MIXED = "mixed"  # the template's own precision value: the best mixed precision this GPU has


def resolve_precision(precision: object) -> object:
    """`mixed` becomes `bf16-mixed` on GPUs with native bf16 (Ampere and newer), else `16-mixed`; any other value is
    Lightning's own and passes through unchanged, so an explicit setting wins."""
    if precision != MIXED:
        return precision
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False):
        return "bf16-mixed"
    return "16-mixed"


def check_accelerator(accelerator: object) -> None:
    """Say plainly when a GPU is asked for and torch sees none (Lightning's own message names no fix)."""
    if str(accelerator) in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigValueError(
            f"trainer.accelerator={accelerator} but torch sees no CUDA GPU (torch {torch.__version__}, "
            f"built for CUDA {torch.version.cuda}; `nvidia-smi` lists the GPUs the driver sees). "
            "Train on the CPU with trainer=cpu, or let Lightning choose with trainer.accelerator=auto."
        )


def configure_speed(trainer: pl.Trainer) -> None:
    """Call after the Trainer is built and before fitting."""
    if trainer.strategy.root_device.type == "cuda":
        # TF32 matmuls and convolutions on Ampere and newer: ~10-bit mantissa, several times the fp32 rate.
        torch.set_float32_matmul_precision("high")
    # `import lightning` sets PYTORCH_NVML_BASED_CUDA_CHECK=1 so that checking for a GPU cannot initialise
    # CUDA before a fork. With it set, every Adam/AdamW step asks NVML afresh whether a GPU exists
    # (torch.optim's graph-capture health check): a dlopen per step, ~0.2 ms on a CPU machine. Only
    # fork-based strategies need the guard; everywhere else the cached CUDA runtime answer is safe.
    if not starts_ranks_by_fork(trainer):
        os.environ.pop("PYTORCH_NVML_BASED_CUDA_CHECK", None)


def device_name(device: torch.device) -> str:
    """`NVIDIA H100 80GB HBM3` for a GPU, the CPU's model name (from /proc/cpuinfo on Linux) otherwise."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    except OSError:
        names = []
    return names[0] if names else platform.processor() or platform.machine()


def describe_hardware(trainer: pl.Trainer) -> dict[str, object]:
    """What a run ran on: accelerator, device name, device count (all nodes) and precision."""
    device = trainer.strategy.root_device
    return {
        "accelerator": device.type,
        "device_name": device_name(device),
        "devices": trainer.num_devices * trainer.num_nodes,
        "precision": str(trainer.precision),
    }
