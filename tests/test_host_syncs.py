"""No host-device sync per training step: the template's own code, and the libraries it calls (torchmetrics'
updates), read tensors back to the host (and ask the strategy for collectives) at most once per logging interval in
the default configuration.

On a GPU each such read waits for every queued kernel, so one per step stalls the pipeline; on the CPU the same
calls can be counted. Reads made by Lightning itself (logging, its per-step SIGTERM broadcast) are Lightning's.
"""

import sys
from collections import Counter
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import Callback

from src.machinery.config.schemas import ROOT
from src.train import build

# Tensor methods that copy a value to the host (a sync on a GPU) and the strategy methods that are collectives
# under DDP (reductions, broadcasts, barriers, gathers).
HOST_READS = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__")
COLLECTIVES = ("reduce", "reduce_boolean_decision", "broadcast", "barrier", "all_gather")
OWN_CODE = (str(ROOT / "src") + "/", str(ROOT / "train.py"))
LIGHTNING = str(Path(pl.__file__).parent.parent) + "/"  # lightning/, whose reads (logging, SIGTERM) are its own
STEPS = 50


class SyncCounter(Callback):
    """Counts, by call site, the host reads and collectives made from the template's own files during training
    steps 0..STEPS-1 (from the first batch's start to the start of batch STEPS)."""

    def __init__(self) -> None:
        self.counting = False
        self.step = 0
        self.calls: Counter[str] = Counter()
        self.steps: set[int] = set()  # the steps at which the template synced: each a stall of the GPU's queue

    def note(self, kind: str) -> None:
        if not self.counting:
            return
        frame = sys._getframe(2)  # the caller of the patched method
        # A read inside a library the template calls (torchmetrics' update, torch) is the template's: walk out of
        # the libraries to the first frame that is either the template's (count it) or Lightning's (not counted).
        while frame is not None and not frame.f_code.co_filename.startswith((*OWN_CODE, LIGHTNING)):
            frame = frame.f_back
        if frame is not None and frame.f_code.co_filename.startswith(OWN_CODE):
            where = Path(frame.f_code.co_filename).relative_to(ROOT)
            self.calls[f"{kind} at {where}:{frame.f_lineno}"] += 1
            self.steps.add(self.step)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        self.counting = trainer.global_step < STEPS
        self.step = trainer.global_step


def patch_counting(monkeypatch: pytest.MonkeyPatch, owner: type, names: tuple[str, ...], counter: SyncCounter):
    for name in names:
        original = getattr(owner, name)

        def counted(*args, _name=name, _original=original, **kwargs):
            counter.note(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(owner, name, counted)


def count_syncs(make_cfg, monkeypatch, *overrides: str, world_size: int = 1) -> SyncCounter:
    """Train STEPS + 1 steps in one epoch (batch 8: 180 batches an epoch, 90 a rank of 2) and count the
    template's syncs.

    `world_size=2` makes the template's code take its DDP branches (the strategy's collectives stay no-ops).
    """
    cfg = make_cfg("trainer=cpu", "logger=csv", "data.batch_size=8", f"trainer.max_steps={STEPS + 1}", *overrides)
    counter = SyncCounter()
    run = build(cfg, callbacks=[counter])
    if world_size > 1:
        monkeypatch.setattr(type(run.trainer), "world_size", property(lambda self: world_size))
    patch_counting(monkeypatch, torch.Tensor, HOST_READS, counter)
    patch_counting(monkeypatch, type(run.trainer.strategy), COLLECTIVES, counter)
    run.trainer.fit(run.module, datamodule=run.datamodule)
    assert run.trainer.global_step == STEPS + 1 and run.trainer.num_training_batches > STEPS  # all in one epoch
    return counter


INTERVAL = 10  # trainer.log_every_n_steps in conf/trainer/default.yaml


def test_default_training_syncs_at_most_once_per_logging_interval(make_cfg, monkeypatch):
    counter = count_syncs(make_cfg, monkeypatch)
    calls = counter.calls
    print(f"\nhost reads and collectives by the template in {STEPS} steps: {sum(calls.values())}", dict(calls))
    assert sum(calls.values()) <= STEPS // INTERVAL
    assert not any(where.startswith(COLLECTIVES) for where in calls)  # one process: nothing to agree on


@pytest.mark.slow
def test_under_ddp_the_ranks_agree_at_most_once_per_logging_interval(make_cfg, monkeypatch):
    """As one rank of two, the finite-loss guard and the preemption check each agree with the other ranks (an
    all-reduce, then a read of its result), both at the same steps: one stall per interval."""
    counter = count_syncs(make_cfg, monkeypatch, world_size=2)
    calls = counter.calls
    print(f"\nas a rank of 2: {sum(calls.values())} at steps {sorted(counter.steps)}", dict(calls))
    assert len(counter.steps) <= STEPS // INTERVAL
    assert sum(n for where, n in calls.items() if where.startswith(COLLECTIVES)) <= 2 * STEPS // INTERVAL


@pytest.mark.slow
def test_the_counter_sees_a_per_step_sync(make_cfg, monkeypatch):
    """The skip mode reads every loss before the optimizer step: the counter must see STEPS of them."""
    calls = count_syncs(make_cfg, monkeypatch, "callbacks.finite_loss.on_nonfinite=skip").calls
    print(f"\nwith on_nonfinite=skip: {sum(calls.values())}", dict(calls))
    assert sum(calls.values()) >= STEPS
