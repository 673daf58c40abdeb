"""Per-step learning-rate schedules that take the run's total step count from the Trainer."""

import math

import torch
from torch.optim.lr_scheduler import LambdaLR, OneCycleLR


def warmup_cosine(
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    warmup_fraction: float = 0.05,
    final_lr_fraction: float = 0.0,
) -> LambdaLR:
    """Linear warm-up from 0 over `warmup_fraction` of the run, then cosine decay to `final_lr_fraction`."""
    if not 0.0 <= warmup_fraction < 1.0:
        raise ValueError(f"warmup_fraction must be in [0, 1), got {warmup_fraction}")
    warmup_steps = max(1, round(warmup_fraction * total_steps))

    # A closure, not a partial: LambdaLR stores no state for plain functions, so
    # checkpoints keep loading with torch.load(weights_only=True).
    def lr_factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
        return final_lr_fraction + (1.0 - final_lr_fraction) * cosine

    return LambdaLR(optimizer, lr_factor)


class ResumableOneCycleLR(OneCycleLR):
    """OneCycleLR that, resumed, restores only its position: the saving run's total steps, restored after a rise in
    max_epochs, would fail ("Tried to step N times") once the old total is passed."""

    def load_state_dict(self, state_dict: dict) -> None:
        for key in ("last_epoch", "_step_count", "_last_lr"):
            setattr(self, key, state_dict[key])


def one_cycle(
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    max_lr: float,
    pct_start: float = 0.25,
) -> OneCycleLR:
    """torch's one-cycle schedule (Smith & Topin 2017) sized to the run."""
    return ResumableOneCycleLR(optimizer, max_lr=max_lr, total_steps=total_steps, pct_start=pct_start)
