"""Every machinery callback can be dropped from the config (`callbacks.<name>=null`): train.py still runs, and eval.py
and predict.py on its checkpoint run too or say in one line what they need."""

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from scripts.digits_to_png import write_digits
from src.train import train
from tests.conftest import ROOT, compose_config, run_script

MACHINERY = sorted(
    name
    for name, entry in OmegaConf.load(ROOT / "conf" / "callbacks" / "default.yaml").items()
    if str(entry.get("_target_", "")).startswith("src.machinery.")
)
TINY = ["trainer=cpu", "logger=csv", "trainer.max_epochs=1", "trainer.limit_train_batches=3"]
TINY += ["trainer.limit_val_batches=2", "trainer.limit_test_batches=2"]


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), stderr[-3000:]
    return lines[0]


def test_the_default_callbacks_hold_machinery_to_drop():
    assert {"last_checkpoint", "run_config", "preemption"} <= set(MACHINERY)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("digits")
    write_digits(folder)
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("name", MACHINERY)
def test_a_run_without_a_machinery_callback_trains_and_its_checkpoint_evaluates_or_says_what_it_needs(
    name, images, tmp_path
):
    run_dir = tmp_path / "run"
    metrics = train(compose_config("train", [*TINY, f"callbacks.{name}=null"], run_dir))
    assert 0.0 <= metrics["test/acc"] <= 1.0
    checkpoints = run_dir / "checkpoints"
    ckpt = checkpoints / "last.ckpt" if (checkpoints / "last.ckpt").is_file() else next(checkpoints.glob("epoch_*"))
    for script, overrides in (("eval.py", []), ("predict.py", [f"input={images}"])):
        done = run_script(script, f"ckpt_path={ckpt}", "trainer=cpu", *overrides, f"hydra.run.dir={tmp_path / script}")
        if done.returncode != 0:
            line = one_error_line(done.stderr)
            assert f"callbacks.{name}" in line, line  # names what the checkpoint lacks and how to get it
            print(f"callbacks.{name}=null, {script}: {line}")
        else:
            assert (tmp_path / script / ("predictions.csv" if script == "predict.py" else "csv")).exists()
            print(f"callbacks.{name}=null, {script}: ran")
