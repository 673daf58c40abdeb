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
