"""Distributed training settings the Trainer's string shortcuts cannot express."""

from datetime import timedelta
from typing import Any

import torch
from lightning.pytorch.strategies import DDPStrategy


def ddp(timeout_s: float = 300, **kwargs: Any) -> DDPStrategy:
    """Lightning's DDPStrategy with a collective timeout in seconds (torch's default is 30 minutes): when one rank
    dies or hangs, the others fail within `timeout_s` instead of holding their devices for half an hour."""
    return DDPStrategy(timeout=timedelta(seconds=timeout_s), **kwargs)


def close_process_group() -> None:
    """Destroy the default process group, if any, while the interpreter is still whole (run at exit). Lightning does
    this for NCCL only; a Gloo group left to shutdown can abort a finished run (pytorch/pytorch#190489)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
