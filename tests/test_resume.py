"""Killed runs resume exactly: SIGKILL at an epoch boundary, mid-epoch and at random steps (or a SIGTERM), then
`resume=true`, ends with the weights and optimizer state of a run that never stopped (CPU, deterministic)."""

import csv
import random
import shutil
import time
from pathlib import Path

import pytest
import torch

from src.train import train
from tests.conftest import run_script

pytestmark = pytest.mark.slow  # end-to-end runs: `make test-all` (CI) runs them

EPOCHS, STEPS_PER_EPOCH, EVERY = 5, 17, 4
PLANNED_STEPS = EPOCHS * STEPS_PER_EPOCH  # 85: the whole digits set (17 batches of 64) each epoch
BEST_EPOCH_END = 4 * STEPS_PER_EPOCH  # the best checkpoint is epoch 3's (PeakAt): the last epoch saves no top-k file
# Exact: dropout and batch norm (so the RNG and buffers matter); last.ckpt every 4 steps, so a kill replays up to 3
# steps from the checkpoint before it, and the run ends at a step (85) that only the end-of-epoch save covers.
BASE = [
    "trainer=cpu",
    "logger=none",
    "trainer.deterministic=true",
    f"trainer.max_epochs={EPOCHS}",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "callbacks.model_summary=null",
    # where val/acc peaks depends on the machine's floating point (epoch 3 on some, 4 on others): a probe's score
    # peaks at epoch 3 on every machine, and the checkpoint callback monitors it
    "+callbacks.peak._target_=tests.probes.PeakAt",
    f"+callbacks.peak.epoch={BEST_EPOCH_END // STEPS_PER_EPOCH - 1}",
    "callbacks.model_checkpoint.monitor=probe/peak",
]
RUN = [*BASE, f"callbacks.last_checkpoint.every_n_train_steps={EVERY}"]
KILL = "+callbacks.kill._target_=tests.probes.KillAt"
# Every kill comes after the best epoch, so the final last.ckpt is one no top-k save brought along.
KILLS = {
    "epoch_boundary": [f"{KILL}", f"+callbacks.kill.epoch_start={EPOCHS - 1}"],
    "mid_epoch": [f"{KILL}", "+callbacks.kill.step=77"],
    **{
        f"random_step_{s}": [KILL, f"+callbacks.kill.step={s}"]
        for s in random.Random(1).sample(range(BEST_EPOCH_END + 1, PLANNED_STEPS), 3)
    },
}


def last_state(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)


def assert_equal_nested(a, b, where: str = "") -> None:
    """Tensors equal bit for bit (`torch.equal`), everything else ==, through dicts and lists."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_equal_nested(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_equal_nested(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def assert_same_training_state(resumed: dict, reference: dict) -> None:
    assert resumed["global_step"] == reference["global_step"] == PLANNED_STEPS
    assert_equal_nested(resumed["state_dict"], reference["state_dict"], "state_dict")
    assert_equal_nested(resumed["optimizer_states"], reference["optimizer_states"], "optimizer_states")
    assert_equal_nested(resumed["lr_schedulers"], reference["lr_schedulers"], "lr_schedulers")


def best_epoch(run_dir: Path) -> int:
    """The epoch of the run's best checkpoint, epoch_NNN.ckpt (save_top_k is 1)."""
    (best,) = (run_dir / "checkpoints").glob("epoch_*.ckpt")
    return int(best.stem.removeprefix("epoch_"))


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory) -> Path:
    """One uninterrupted run, shared by every case; its best epoch is before the last, so last.ckpt's final save
    is not one that a top-k save brought along."""
    run_dir = tmp_path_factory.mktemp("reference")
    done = run_script("train.py", *RUN, f"hydra.run.dir={run_dir}")
    assert done.returncode == 0, done.stderr[-3000:]
    assert best_epoch(run_dir) == BEST_EPOCH_END // STEPS_PER_EPOCH - 1 < EPOCHS - 1
    assert PLANNED_STEPS % EVERY and last_state(run_dir)["global_step"] == PLANNED_STEPS
    return run_dir


# The random steps run in `make test-all` (CI); the epoch boundary and mid-epoch cases in every `make test`.
SLOW_KILLS = {name for name in KILLS if name.startswith("random_step")}


@pytest.mark.parametrize(
    "kill", [pytest.param(name, marks=pytest.mark.slow) if name in SLOW_KILLS else name for name in KILLS]
)
def test_killed_run_resumes_to_the_same_weights(reference_run, tmp_path, kill):
    start = time.monotonic()
    killed = run_script("train.py", *RUN, *KILLS[kill], f"hydra.run.dir={tmp_path}")
    assert killed.returncode == -9, killed.stderr[-3000:]  # SIGKILL: no clean-up ran
    stopped_at = last_state(tmp_path)["global_step"]
    assert 0 < stopped_at < PLANNED_STEPS

    resumed = run_script("train.py", *RUN, "resume=true", f"hydra.run.dir={tmp_path}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from a checkpoint that ended before the epoch ended" not in resumed.stderr  # loader resumed
    assert_same_training_state(last_state(tmp_path), last_state(reference_run))
    seconds = time.monotonic() - start
    print(f"{kill}: last checkpoint at step {stopped_at}, resumed to step {PLANNED_STEPS}, {seconds:.1f} s")


def test_resuming_a_finished_run_trains_nothing(reference_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(reference_run, run_dir)
    before = (run_dir / "checkpoints" / "last.ckpt").read_bytes()
    resumed = run_script("train.py", *RUN, "resume=true", f"hydra.run.dir={run_dir}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"`max_epochs={EPOCHS}` reached" in resumed.stdout + resumed.stderr
    assert (run_dir / "checkpoints" / "last.ckpt").read_bytes() == before  # not even rewritten
    assert_same_training_state(last_state(run_dir), last_state(reference_run))


def test_sigterm_saves_at_the_end_of_the_step_exits_143_and_resumes_exactly(reference_run, tmp_path):
    # No step checkpoints: the only mid-epoch checkpoint is the one the signal makes.
    sigterm_at_step_8 = ["callbacks.last_checkpoint=null", "+callbacks.term._target_=tests.probes.SignalAt"]
    stopped = run_script("train.py", *BASE, *sigterm_at_step_8, "+callbacks.term.step=8", f"hydra.run.dir={tmp_path}")
    assert stopped.returncode == 143, stopped.stderr[-3000:]
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert stopped.stderr.strip().splitlines()[-1] == (
        f"Error: stopped by signal 15 after saving {last}; resume with resume=true"
    )
    assert last_state(tmp_path)["global_step"] == 9  # the step the signal arrived in, finished and saved

    resumed = run_script("train.py", *RUN, "resume=true", f"hydra.run.dir={tmp_path}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"Restoring states from the checkpoint path at {last}" in resumed.stdout + resumed.stderr
    assert_same_training_state(last_state(tmp_path), last_state(reference_run))


@pytest.mark.slow
def test_sigterm_during_the_last_validation_keeps_its_checkpoints_and_skips_the_test_stage(reference_run, tmp_path):
    term = ["+callbacks.term._target_=tests.probes.SignalInValidation", f"+callbacks.term.epoch={EPOCHS - 1}"]
    stopped = run_script("train.py", *RUN, *term, f"hydra.run.dir={tmp_path}")
    assert stopped.returncode == 143, stopped.stderr[-3000:]
    assert "Testing the best checkpoint" not in stopped.stdout + stopped.stderr
    assert last_state(tmp_path)["global_step"] == PLANNED_STEPS  # saved at the epoch's end, after its validation
    resumed = run_script("train.py", *RUN, "resume=true", f"hydra.run.dir={tmp_path}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"`max_epochs={EPOCHS}` reached" in resumed.stdout + resumed.stderr
    assert "Final metrics" in resumed.stdout + resumed.stderr
    assert_same_training_state(last_state(tmp_path), last_state(reference_run))


@pytest.mark.slow
def test_on_device_data_resumes_mid_epoch_exactly(tmp_path):
    """`data.on_device=true` serves batches without a DataLoader: its shuffle position resumes as well."""
    on_device = [*RUN, "data.on_device=true"]
    reference = run_script("train.py", *on_device, f"hydra.run.dir={tmp_path / 'reference'}")
    assert reference.returncode == 0, reference.stderr[-3000:]
    killed = run_script("train.py", *on_device, *KILLS["mid_epoch"], f"hydra.run.dir={tmp_path / 'run'}")
    assert killed.returncode == -9 and last_state(tmp_path / "run")["global_step"] == 76  # killed at step 77
    resumed = run_script("train.py", *on_device, "resume=true", f"hydra.run.dir={tmp_path / 'run'}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_training_state(last_state(tmp_path / "run"), last_state(tmp_path / "reference"))


def test_resume_logs_to_the_same_wandb_run(make_cfg, tmp_path):
    wandb = ["trainer=cpu", "logger=wandb", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1"]
    train(make_cfg(*wandb, "trainer.max_epochs=1"))
    train(make_cfg(*wandb, "trainer.max_epochs=2", "resume=true"))
    run_id = (tmp_path / "wandb_run_id").read_text().strip()
    runs = sorted(tmp_path.glob("wandb/offline-run-*"))
    assert len(runs) == 2 and all(run.name.endswith(f"-{run_id}") for run in runs)  # one W&B run, written twice


def test_resume_keeps_the_metrics_already_written(make_cfg, tmp_path):
    quick = ["trainer=cpu", "logger=csv", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1"]
    train(make_cfg(*quick, "trainer.max_epochs=1"))
    train(make_cfg(*quick, "trainer.max_epochs=2", "resume=true"))
    with open(tmp_path / "csv" / "metrics.csv") as f:
        epochs = [int(row["epoch"]) for row in csv.DictReader(f) if row["val/acc"]]
    assert epochs == [0, 1]  # the first run's row is still there, the resumed run's follows
