"""last.ckpt holds the run's final state whatever the top-k checkpoint saved: runs of 1, 7 and 30 epochs with the best
epoch early, with validation every 2 epochs and with validation off; saves at most once per step, after the epoch's
validation; a finished run resumed trains nothing and leaves last.ckpt byte for byte as it was."""

import time
from pathlib import Path

import pytest
import torch

from src.machinery.checkpoints.files import AtomicCheckpointIO, read_checkpoint
from src.train import Run, build, train
from tests.conftest import compose_config, run_script

# The whole digits set (17 steps an epoch), exact; seed 7 makes val/acc peak in epoch 2 (asserted where it matters).
DIGITS = ["trainer=cpu", "logger=none", "seed=7", "trainer.deterministic=true", "callbacks.model_summary=null"]
STEPS_PER_EPOCH = 17


def fit(run_dir: Path, *overrides: str) -> Run:
    run = build(compose_config("train", [*DIGITS, *overrides], run_dir))
    run.trainer.fit(run.module, datamodule=run.datamodule, weights_only=True)
    return run


def assert_last_checkpoint_is_the_final_state(run: Run, run_dir: Path) -> dict:
    last = read_checkpoint(run_dir / "checkpoints" / "last.ckpt")  # its checksum verified too
    assert last["global_step"] == run.trainer.global_step
    final = run.module.state_dict()
    assert last["state_dict"].keys() == final.keys()
    for key, tensor in final.items():
        assert torch.equal(last["state_dict"][key], tensor), key
    return last


def best_epoch(run_dir: Path) -> int:
    """The epoch of the best checkpoint, epoch_NNN.ckpt (save_top_k is 1)."""
    (best,) = (run_dir / "checkpoints").glob("epoch_*.ckpt")
    return int(best.stem.removeprefix("epoch_"))


@pytest.mark.slow
@pytest.mark.parametrize("epochs", [1, 7])
def test_last_checkpoint_holds_the_final_state(tmp_path, epochs):
    run = fit(tmp_path, f"trainer.max_epochs={epochs}")
    assert run.trainer.global_step == epochs * STEPS_PER_EPOCH  # 17 or 119: not a multiple of the 100-step saves
    assert_last_checkpoint_is_the_final_state(run, tmp_path)
    if epochs > 1:
        assert best_epoch(tmp_path) < epochs - 1  # no top-k save at the end brought last.ckpt along


@pytest.mark.parametrize(
    "validation",
    [
        pytest.param(["trainer.check_val_every_n_epoch=2"], id="every_2_epochs"),
        pytest.param(["trainer.limit_val_batches=0"], id="off"),
    ],
)
def test_last_checkpoint_holds_the_final_state_whatever_the_validation(tmp_path, validation):
    # 3 epochs of 5 steps, a save every 4 steps: the run ends at step 15, in an epoch without validation
    run = fit(tmp_path, *validation, "trainer.max_epochs=3", "trainer.limit_train_batches=5",
              "callbacks.last_checkpoint.every_n_train_steps=4")  # fmt: skip
    assert run.trainer.global_step == 15
    assert_last_checkpoint_is_the_final_state(run, tmp_path)
    epochs = sorted(p.name for p in (tmp_path / "checkpoints").glob("epoch_*.ckpt"))
    assert len(epochs) == (1 if "every" in validation[0] else 0)  # validation off: no best checkpoint at all


def test_a_run_logs_no_weights_only_line_at_its_saves(tmp_path):
    """Every save says which state it writes: left unset, Lightning logs "`weights_only` was not set, defaulting to
    `False`" at each one (once an epoch for last.ckpt). Neither the console nor the run's log file has it."""
    run_dir = tmp_path / "run"
    short = ["trainer.max_epochs=3", "trainer.limit_train_batches=3", "trainer.limit_val_batches=2",
             "trainer.limit_test_batches=2"]  # fmt: skip
    done = run_script("train.py", "trainer=cpu", "logger=csv", *short, f"hydra.run.dir={run_dir}")
    assert done.returncode == 0, done.stderr[-3000:]
    (log_file,) = run_dir.glob("*.log")
    assert "epoch 3/3" in done.stdout + done.stderr  # the run's output is what was read
    assert "Restoring states from the checkpoint" in log_file.read_text()  # the log file holds Lightning's INFO lines
    for text in (done.stdout, done.stderr, log_file.read_text()):
        assert "weights_only" not in text
    assert read_checkpoint(run_dir / "checkpoints" / "last.ckpt")["optimizer_states"]  # still the full state


class SaveRecorder(AtomicCheckpointIO):
    """The Trainer's checkpoint I/O, recording (file name, global step) for every save."""

    def __init__(self) -> None:
        super().__init__()
        self.saves: list[tuple[str, int]] = []

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        self.saves.append((Path(path).name, checkpoint["global_step"]))
        super().save_checkpoint(checkpoint, path, storage_options)


def test_last_checkpoint_is_saved_every_n_steps_and_at_epoch_ends_once_per_step_after_the_top_k(tmp_path):
    recorder = SaveRecorder()
    cfg = compose_config("train", [*DIGITS, "trainer.max_epochs=2", "trainer.limit_train_batches=6",
                                   "callbacks.last_checkpoint.every_n_train_steps=3"], tmp_path)  # fmt: skip
    run = build(cfg, plugins=[recorder])
    run.trainer.fit(run.module, datamodule=run.datamodule, weights_only=True)
    last_saves = [step for name, step in recorder.saves if name == "last.ckpt"]
    assert last_saves == [3, 6, 9, 12]  # steps 6 and 12 end epochs as well: written once, at the epoch end
    assert ("epoch_000.ckpt", 6) in recorder.saves
    assert recorder.saves.index(("epoch_000.ckpt", 6)) < recorder.saves.index(("last.ckpt", 6))
    assert_last_checkpoint_is_the_final_state(run, tmp_path)


@pytest.fixture(scope="module")
def thirty_epochs(tmp_path_factory) -> tuple[Path, dict]:
    """A finished 30-epoch run on the whole digits set (510 steps): its folder and figures."""
    run_dir = tmp_path_factory.mktemp("thirty")
    start = time.monotonic()
    run = fit(run_dir, "trainer.max_epochs=30")
    figures = {"seconds": time.monotonic() - start, "global_step": run.trainer.global_step}
    last = assert_last_checkpoint_is_the_final_state(run, run_dir)
    figures |= {"last_step": last["global_step"], "best_epoch": best_epoch(run_dir)}
    return run_dir, figures


@pytest.mark.slow
def test_thirty_epochs_last_checkpoint_holds_the_final_state(thirty_epochs):
    _, figures = thirty_epochs
    print(f"30 epochs: {figures}")
    assert figures["global_step"] == figures["last_step"] == 30 * STEPS_PER_EPOCH
    assert figures["best_epoch"] < 29


@pytest.mark.slow
def test_resuming_a_finished_thirty_epoch_run_trains_nothing_and_leaves_last_checkpoint_as_it_was(thirty_epochs):
    run_dir, _ = thirty_epochs
    last = run_dir / "checkpoints" / "last.ckpt"
    before, sums_before, mtime = last.read_bytes(), Path(f"{last}.sha256").read_bytes(), last.stat().st_mtime_ns
    start = time.monotonic()
    metrics = train(compose_config("train", [*DIGITS, "trainer.max_epochs=30", "resume=true"], run_dir))
    print(f"finished 30-epoch run resumed: {time.monotonic() - start:.1f} s, {len(before)} bytes unchanged")
    assert "test/acc" in metrics and "train/loss" not in metrics  # tested the best checkpoint, trained nothing
    assert last.read_bytes() == before and Path(f"{last}.sha256").read_bytes() == sums_before
    assert last.stat().st_mtime_ns == mtime  # not even rewritten
    assert read_checkpoint(last)["global_step"] == 30 * STEPS_PER_EPOCH
