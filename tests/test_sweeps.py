"""Optuna search (hydra-optuna-sweeper): trials run, and the best trial is reported at the end."""

import ast
import csv
import re

import pytest
import yaml

from tests.conftest import run_script


@pytest.mark.slow
def test_optuna_search_runs_three_trials_and_reports_the_best(tmp_path):
    done = run_script(
        "train.py", "-m", "hparams_search=optuna", "hydra.sweeper.n_trials=3", "trainer=cpu", "trainer.max_epochs=1",
        "trainer.limit_train_batches=4", "trainer.num_sanity_val_steps=0", "logger=csv", f"hydra.sweep.dir={tmp_path}",
        f"hydra.sweeper.storage=sqlite:///{tmp_path}/optuna.db",  # a study kept on disk (resumable)
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    output = done.stdout + done.stderr
    reported = ast.literal_eval(re.search(r"Best parameters: (\{.*\})", output).group(1))
    results = yaml.safe_load((tmp_path / "optimization_results.yaml").read_text())
    assert reported == results["best_params"]
    assert set(results["best_params"]) == {"optimizer.lr", "optimizer.weight_decay", "model.net.dropout",
                                           "data.batch_size"}  # fmt: skip
    trials = {}
    for job in sorted(p for p in tmp_path.iterdir() if p.is_dir()):
        config = yaml.safe_load((job / "config.yaml").read_text())
        with open(job / "csv" / "metrics.csv") as f:
            val_acc_best = [float(r["val/acc_best"]) for r in csv.DictReader(f) if r["val/acc_best"]][-1]
        trials[config["optimizer"]["lr"]] = (val_acc_best, config)
    assert len(trials) == 3  # three trials, three different learning rates
    best_value, best_config = max(trials.values(), key=lambda t: t[0])
    assert results["best_value"] == best_value and f"Best value: {best_value}" in output
    assert best_config["optimizer"]["lr"] == results["best_params"]["optimizer.lr"]
    assert best_config["data"]["batch_size"] == results["best_params"]["data.batch_size"]
    assert (tmp_path / "optuna.db").stat().st_size > 0


QUICK_JOB = ["trainer=cpu", "trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1",
             "trainer.limit_test_batches=1", "trainer.num_sanity_val_steps=0", "logger=csv"]  # fmt: skip


@pytest.mark.slow
def test_a_job_that_fails_fails_alone_and_the_sweep_reports_it_and_exits_1(tmp_path):
    done = run_script("train.py", "-m", "optimizer.lr=-1,0.01", *QUICK_JOB, f"hydra.sweep.dir={tmp_path}")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert (tmp_path / "1" / "checkpoints" / "last.ckpt").is_file()  # the job after the failed one still ran
    message = "optimizer.lr=-1 is out of range: it must be a number in (0, inf]"
    lines = done.stderr.strip().splitlines()
    assert lines[0] == f"Error: {message}"  # when the job fails; at the end, Hydra names its overrides, then:
    assert f"Error: sweep job {tmp_path / '0'} failed: {message}" in lines


@pytest.mark.slow
def test_an_optuna_trial_that_fails_is_a_failed_trial_within_max_failure_rate(tmp_path):
    search = tmp_path / "conf" / "hparams_search"
    search.mkdir(parents=True)
    (search / "one_bad_lr.yaml").write_text(
        "# @package _global_\ndefaults:\n  - optuna\nhydra:\n  sweeper:\n    max_failure_rate: 1.0\n    params:\n"
        "      optimizer.lr: choice(-1.0, 0.01)\n      optimizer.weight_decay: choice(0.0)\n"
        "      model.net.dropout: choice(0.0)\n      data.batch_size: choice(64)\n"
    )
    done = run_script(
        "train.py", "-m", f"hydra.searchpath=[file://{tmp_path / 'conf'}]", "hparams_search=one_bad_lr",
        "hydra.sweeper.n_trials=4", *QUICK_JOB, f"hydra.sweep.dir={tmp_path / 'sweep'}",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Error: optimizer.lr=-1.0 is out of range" in done.stderr  # reported, and the study went on
    assert len([p for p in (tmp_path / "sweep").iterdir() if p.is_dir()]) == 4
    assert yaml.safe_load((tmp_path / "sweep" / "optimization_results.yaml").read_text())["best_params"] == {
        "optimizer.lr": 0.01, "optimizer.weight_decay": 0.0, "model.net.dropout": 0.0, "data.batch_size": 64,
    }  # fmt: skip
