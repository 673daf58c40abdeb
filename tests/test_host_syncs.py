"""No host-device sync per training step: the template's own code, and the libraries it calls (torchmetrics' updates,
Lightning's `self.log`, torch), read tensors back to the host (and ask for collectives) at most once per logging
interval in the default configuration, in one process and as a DDP rank.

On a GPU each such read waits for every queued kernel, so one per step stalls the pipeline; on the CPU the same calls
can be counted. scripts/sync_count.py's SyncCounter counts them: a read is the template's when, walking out from it,
the stack reaches the template's files (src/, train.py) before Lightning's loop; reads that Lightning's loop makes on
its own (its logging, its optimizer step) are listed apart. The counts are printed (`pytest -s`).
"""

import json
import sys
import warnings

import pytest
import torch

from src.machinery.config.schemas import ROOT
from src.train import build
from tests.conftest import run_script

sys.path.insert(0, str(ROOT / "scripts"))
from sync_count import CUDA_SYNC, DIST_COLLECTIVES, STRATEGY_COLLECTIVES, SyncCounter

STEPS = 50
INTERVAL = 10  # trainer.log_every_n_steps in conf/trainer/default.yaml
# data.batch_size=8: the 1,077 training digits are 135 batches an epoch (68 a rank of 2), more than STEPS + 1
SMALL_BATCHES = ["trainer=cpu", "logger=csv", "data.batch_size=8", f"trainer.max_steps={STEPS + 1}"]
BEFORE = "model._target_=tests.probes.MeanMetricLosses"  # the epoch losses in torchmetrics' MeanMetric
COLLECTIVES = (*STRATEGY_COLLECTIVES, *DIST_COLLECTIVES)


def count_syncs(make_cfg, *overrides: str, cuda: bool = False) -> SyncCounter:
    """Train STEPS + 1 steps in one epoch and count the syncs of steps 0..STEPS-1."""
    counter = SyncCounter(STEPS, cuda=cuda)
    run = build(make_cfg(*SMALL_BATCHES, *overrides), callbacks=[counter])
    run.trainer.fit(run.module, datamodule=run.datamodule)
    assert run.trainer.num_training_batches > STEPS and sorted(counter.seen) == list(range(STEPS))  # one epoch
    print(f"\n{counter.table()}")
    return counter


def reads_by_template(counter: SyncCounter) -> int:
    return sum(counter.calls["template"].values())


def test_default_training_syncs_at_most_once_per_logging_interval(make_cfg):
    counter = count_syncs(make_cfg)
    assert reads_by_template(counter) <= STEPS // INTERVAL
    assert len(counter.steps_with["template"]) <= STEPS // INTERVAL
    assert not any(where.startswith(COLLECTIVES) for where in counter.calls["template"])  # one process: no collective
    # Lightning's loop too: its loggers read the logged values on the logging steps, the progress bar nothing more
    assert len(counter.steps_with["lightning"]) <= STEPS // INTERVAL, counter.calls["lightning"]


def test_a_progress_bar_value_is_read_by_lightning_at_every_step(make_cfg):
    """Before: `self.log("train/loss", loss, prog_bar=True)` on the logging steps only, and still Lightning's
    progress-bar conversion read it at every step after the first log."""
    counter = count_syncs(make_cfg, "model._target_=tests.probes.ProgressBarLoss")
    progress_bar = sum(n for where, n in counter.calls["lightning"].items() if "apply_func.py" in where)
    assert progress_bar >= STEPS - INTERVAL, counter.calls["lightning"]


def test_the_counter_sees_reads_made_inside_a_library_the_template_calls(make_cfg):
    """Before SampleMean: torchmetrics' MeanMetric reads two values in its NaN check on every update, inside
    torchmetrics; they are the template's (at the line of src/module.py that called the update), and the default
    test's bound fails with them."""
    counter = count_syncs(make_cfg, BEFORE)
    in_torchmetrics = {
        where: n
        for where, n in counter.calls["template"].items()
        if where.startswith("__bool__ at src/module.py:") and "(in torchmetrics/aggregation.py:" in where
    }
    assert sum(in_torchmetrics.values()) == 2 * STEPS, counter.calls["template"]  # nans.any(), nans_weight.any()
    assert reads_by_template(counter) > STEPS // INTERVAL  # what the default test allows
    assert len(counter.steps_with["template"]) == STEPS


@pytest.mark.slow
def test_the_counter_sees_a_per_step_sync_of_the_templates_own(make_cfg):
    """The skip mode reads every loss, and agrees on it with the other ranks, before the optimizer step."""
    counter = count_syncs(make_cfg, "callbacks.finite_loss.on_nonfinite=skip")
    assert reads_by_template(counter) >= 2 * STEPS
    assert sum(n for where, n in counter.calls["template"].items() if where.startswith("reduce_boolean")) == STEPS


def test_cuda_sync_warnings_are_counted_where_the_template_made_them(make_cfg, monkeypatch):
    """On a GPU the counter reads torch's sync debug warnings (`set_sync_debug_mode("warn")`, CUDA-only). Here torch
    code called by the template warns as CUDA would, at every step: every warning is counted (not once per place, as
    Python shows warnings by default), at the template's line, and none is shown."""
    isfinite = torch.Tensor.isfinite

    def warns_like_cuda(tensor: torch.Tensor) -> torch.Tensor:  # SampleMean.update calls value.isfinite()
        warnings.warn(CUDA_SYNC, UserWarning, stacklevel=1)
        return isfinite(tensor)

    monkeypatch.setattr(torch.Tensor, "isfinite", warns_like_cuda)
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("default")
        counter = count_syncs(make_cfg, cuda=True)
    [(where, n)] = counter.calls["template"].items()
    assert where.startswith("sync at src/module.py:") and n == STEPS  # the training updates; validation is outside
    assert not [w for w in shown if CUDA_SYNC in str(w.message)]


@pytest.mark.slow
@pytest.mark.parametrize("module", ["now", "before", "without_preemption"])
def test_as_a_ddp_rank_the_template_syncs_at_most_once_per_logging_interval(tmp_path, module):
    """Each of 2 CPU ranks counts its own. Now: the finite-loss guard and the preemption check each agree with the
    other ranks (an all-reduce, then a read of its result), both at the same steps, one stall per interval. Before
    SampleMean: two reads a step on every rank. Without the Preemption callback, Lightning's own per-step SIGTERM
    broadcast stays (and the counter sees it)."""
    counter = [
        "+callbacks.syncs._target_=scripts.sync_count.SyncCounter",
        f"+callbacks.syncs.steps={STEPS}",
        "+callbacks.syncs.out_dir=${paths.output_dir}",
    ]
    ddp = ["trainer.devices=2", "trainer.strategy=ddp", "callbacks.model_summary=null", "trainer.limit_test_batches=1"]
    extra = {"now": [], "before": [BEFORE], "without_preemption": ["callbacks.preemption=null"]}[module]
    done = run_script("train.py", *SMALL_BATCHES, *ddp, *counter, *extra, f"hydra.run.dir={tmp_path}")
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"syncs_rank{rank}.json").read_text()) for rank in (0, 1)]
    for record in ranks:
        template = record["calls"]["template"]
        print(
            f"\n{module}, rank {record['rank']} of {record['world_size']}: {record['per_step']['template']:.2f} a step "
            f"by the template at steps {record['steps_with']['template']}: {template}\n"
            f"  Lightning's loop: {record['calls']['lightning']}"
        )
        assert record["world_size"] == 2 and record["steps"] == STEPS
        if module == "now":
            assert len(record["steps_with"]["template"]) <= STEPS // INTERVAL
            # Lightning's per-step broadcast of rank 0's SIGTERM flag (and the read of it) is stopped: Preemption
            # agrees on signals itself; what is left of Lightning's loop is its logging, on the logging steps
            assert len(record["steps_with"]["lightning"]) <= STEPS // INTERVAL, record["calls"]["lightning"]
            assert sum(n for where, n in template.items() if where.startswith(COLLECTIVES)) <= 2 * STEPS // INTERVAL
        elif module == "before":
            assert record["per_step"]["template"] >= 2 and len(record["steps_with"]["template"]) == STEPS
        else:
            lightning = record["calls"]["lightning"]
            assert sum(n for where, n in lightning.items() if where.startswith("broadcast at")) == STEPS, lightning
