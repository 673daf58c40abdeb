"""train.py and eval.py as a user runs them: errors, the default run, DDP, sweeps."""

import re
import time

import pytest
import torch
import yaml

from tests.conftest import ROOT, run_script
from tests.test_train import wandb_summary

QUICK = ["trainer=cpu", "trainer.max_epochs=2"]
MODELS = r"\s+".join(sorted(path.stem for path in (ROOT / "conf" / "model").glob("*.yaml")))  # a fork adds its own


@pytest.mark.parametrize(
    "override,expected",
    [
        ("model=resnt", rf"Could not find 'model/resnt'.*Available options in 'model':\s+{MODELS}\n"),
        ("trainer.devicez=2", r"Key 'devicez' not in 'TrainerConf'\s+full_key: trainer.devicez"),
        (
            "trainer.max_epochs=abc",
            r"Value 'abc' of type 'str' could not be converted to Integer\s+full_key: trainer.max_epochs",
        ),
        ("data.train_fraction=1.5", r"data.train_fraction=1.5 is out of range: it must be a number in \(0, 1\]"),
        ("data.num_folds=2.5", r"data.num_folds=2.5 is out of range: it must be a whole number in \[2, inf\]"),
    ],
)
def test_config_errors_name_the_bad_value_before_training(tmp_path, override, expected):
    done = run_script("train.py", override, f"hydra.run.dir={tmp_path}")
    assert done.returncode != 0
    assert re.search(expected, done.stderr, re.S), done.stderr
    assert not (tmp_path / "config.yaml").exists()  # nothing started


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_asking_for_a_gpu_without_one_says_what_to_do(tmp_path):
    done = run_script("train.py", "trainer=gpu", "logger=none", f"hydra.run.dir={tmp_path}")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("Error: trainer.accelerator=gpu but torch sees no CUDA GPU")
    assert "trainer=cpu" in done.stderr and "trainer.accelerator=auto" in done.stderr


@pytest.mark.slow
def test_default_run_trains_digits_and_eval_reproduces_it(tmp_path):
    """`python train.py` as in the README (W&B offline), then `python eval.py` on its best checkpoint."""
    start = time.monotonic()
    done = run_script("train.py", f"hydra.run.dir={tmp_path}")
    seconds = time.monotonic() - start
    assert done.returncode == 0, done.stderr[-3000:]
    test_acc = float(re.search(r"Final metrics: .*test/acc=([0-9.]+)", done.stdout + done.stderr).group(1))
    print(f"python train.py: test/acc {test_acc:.4f} in {seconds:.1f} s from process start")
    assert test_acc >= 0.97
    assert "wandb sync" in done.stdout + done.stderr  # says where the offline run is and how to upload it
    # Not a terminal: one plain progress line per epoch, and no colour codes or progress-bar redraws.
    assert len(re.findall(r"\] epoch \d+/20  step \d+", done.stdout)) == 20
    assert "\x1b[" not in done.stdout + done.stderr and "\r" not in done.stdout

    best = next((tmp_path / "checkpoints").glob("epoch_*.ckpt"))
    done = run_script("eval.py", f"ckpt_path={best}", f"hydra.run.dir={tmp_path / 'eval'}")
    assert done.returncode == 0, done.stderr[-3000:]
    evaluated = float(re.search(r"test/acc=([0-9.]+)", done.stdout + done.stderr).group(1))
    assert evaluated == pytest.approx(test_acc, abs=1e-3)


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_gives_one_run(tmp_path):
    done = run_script(
        "train.py", *QUICK, "trainer.devices=2", "trainer.strategy=ddp", "logger=default", f"hydra.run.dir={tmp_path}"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" in done.stdout + done.stderr
    assert len(list(tmp_path.glob("wandb/offline-run-*"))) == 1
    assert (tmp_path / "config.yaml").exists() and (tmp_path / "checkpoints" / "last.ckpt").exists()
    record = wandb_summary(next(tmp_path.glob("wandb/offline-run-*")))
    assert record["config"]["trainer"]["devices"] == 2 and record["summary"]["test/acc"] > 0.5


@pytest.mark.slow
def test_multirun_gives_one_folder_and_one_wandb_run_per_job(tmp_path):
    done = run_script(
        "train.py", "-m", *QUICK, "logger=default", "optimizer.lr=0.001,0.01", f"hydra.sweep.dir={tmp_path}"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    jobs = sorted(p for p in tmp_path.iterdir() if p.is_dir() and p.name.isdigit())
    assert [p.name for p in jobs] == ["0", "1"]
    lrs = []
    for job in jobs:
        runs = list(job.glob("wandb/offline-run-*"))
        assert len(runs) == 1
        record = wandb_summary(runs[0])
        assert record["state"] == "finished" and "test/acc" in record["summary"]
        lrs.append(record["config"]["optimizer"]["lr"])
        assert yaml.safe_load((job / "config.yaml").read_text())["optimizer"]["lr"] == lrs[-1]
    assert lrs == [0.001, 0.01]
