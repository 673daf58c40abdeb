"""compare_runs.py --group-by: runs that share config values (over seeds and folds) pooled into mean ± std rows."""

import csv
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from tests.conftest import ROOT, run_script
from tests.test_compare_runs import PNG, TINY, FakeWandbRun

sys.path.insert(0, str(ROOT / "scripts"))
import compare_runs


def by_hand(values: list[float]) -> tuple[str, str]:
    """Mean and sample standard deviation (n - 1), as the table prints them."""
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return f"{mean:.4f}", f"{std:.4f}"


def final_value(metrics_csv: Path, metric: str) -> float:
    """The last logged value of `metric` in a run's csv/metrics.csv."""
    with open(metrics_csv) as f:
        return [float(row[metric]) for row in csv.DictReader(f) if row.get(metric)][-1]


@pytest.mark.slow
def test_three_seeds_of_two_configs_give_two_rows_of_mean_and_std(tmp_path, capsys):
    """`-m seed=0,1,2 model.net.dropout=0.0,0.5`: one group (the sweep), and a two-row table over the seeds."""
    sweep = tmp_path / "sweep"
    done = run_script(
        "train.py", "-m", "seed=0,1,2", "model.net.dropout=0.0,0.5", *TINY, "logger=csv",
        "callbacks.test_figures=null", f"hydra.sweep.dir={sweep}",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    configs = [yaml.safe_load((job / "config.yaml").read_text()) for job in jobs]
    assert len(jobs) == 6 and {c["group"] for c in configs} == {"sweep"}  # the seeds are one group: the sweep's
    metrics = ["test/acc", "val/acc"]
    values: dict[float, dict[str, list[float]]] = {}
    for job, config in zip(jobs, configs, strict=True):
        for metric in metrics:
            value = final_value(job / "csv" / "metrics.csv", metric)
            values.setdefault(config["model"]["net"]["dropout"], {}).setdefault(metric, []).append(value)

    out = tmp_path / "groups.csv"
    rows = compare_runs.main([str(sweep), "--group-by", "model.net.dropout", "--metrics", *metrics, "--csv", str(out)])
    header, *body = rows
    assert header[:2] == ["model.net.dropout", "n"] and len(body) == 2
    for row in body:
        cells = dict(zip(header, row, strict=True))
        assert cells["n"] == "3"
        for metric in metrics:
            by_dropout = values[float(cells["model.net.dropout"])][metric]
            assert (cells[f"{metric} mean"], cells[f"{metric} std"]) == by_hand(by_dropout), metric
    with open(out) as f:
        assert list(csv.reader(f)) == rows
    printed = capsys.readouterr().out
    assert "6 runs in 2 groups; a group pools runs that differ in: seed" in printed and " ± " in printed


def write_run(folder: Path, config: dict, rows: list[dict]) -> None:
    """A finished run's folder as train.py leaves it: config.yaml and csv/metrics.csv."""
    (folder / "csv").mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    with open(folder / "csv" / "metrics.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, ["epoch", "step", "val/acc", "test/acc"])
        writer.writeheader()
        writer.writerows(rows)


def test_folds_of_two_configs_are_pooled_with_a_bar_chart(tmp_path, capsys):
    accs = {}
    for model in ("cnn", "rnn"):
        for fold in range(5):
            acc = 0.9 + 0.01 * fold + (0.05 if model == "cnn" else 0)
            accs.setdefault(model, []).append(acc)
            config = {"choices": {"model": model}, "model": {"net": {"width": len(model)}}, "data": {"fold": fold}}
            rows = [{"epoch": 0, "step": 9, "val/acc": acc - 0.1}, {"epoch": 1, "step": 19, "val/acc": acc}]
            write_run(tmp_path / f"{model}{fold}", config, [*rows, {"step": 19, "test/acc": acc}])
    plot = tmp_path / "bars.png"
    header, *body = compare_runs.main([str(tmp_path), "--group-by", "model", "--plot", str(plot)])
    assert header == ["model", "n", "val/acc mean", "val/acc std", "test/acc mean", "test/acc std",
                      "test/loss mean", "test/loss std", "best val/acc mean", "best val/acc std"]  # fmt: skip
    assert [row[:2] for row in body] == [["cnn", "5"], ["rnn", "5"]]  # best mean first
    for row in body:
        assert row[4:6] == list(by_hand(accs[row[0]])) and row[6:8] == ["", ""]  # no test/loss logged: blank
    assert plot.read_bytes().startswith(PNG)
    printed = capsys.readouterr().out
    assert "10 runs in 2 groups; a group pools runs that differ in: data.fold" in printed
    assert f"cnn    5  {by_hand(accs['cnn'])[0]} ± {by_hand(accs['cnn'])[1]}" in printed
    # against a config value: one line per group, error bars over the folds
    assert compare_runs.main([str(tmp_path), "--group-by", "model", "--x", "data.fold", "--plot", str(plot)])
    with pytest.raises(SystemExit, match=r"--group-by seed: no run has this config key \(keys that differ here: "
                       r"model, data.fold\)"):  # fmt: skip
        compare_runs.main([str(tmp_path), "--group-by", "seed"])


def test_wandb_runs_are_grouped_the_same_way(monkeypatch, tmp_path, capsys):
    """--wandb --group-by: a stand-in W&B API (the real one needs a server and a key) with 3 seeds of 2 dropouts."""
    acc = {(0.1, 0): 0.91, (0.1, 1): 0.95, (0.1, 2): 0.90, (0.3, 0): 0.97, (0.3, 1): 0.96, (0.3, 2): 0.98}
    gap = {key: 0.1 - value / 10 for key, value in acc.items()}

    def runs(path, filters):
        return [
            FakeWandbRun(
                name=f"cnn-digits-{i}", id=str(i), group="sweep", tags=[], summary={"test/acc": a},
                config={"model": {"net": {"dropout": d, "batch_norm": True}}, "optimizer": {"weight_decay": 0.05},
                        "seed": s, "git": {"commit": "abc", "dirty": False}},
                rows=[{"_step": 9, "gap/acc": gap[d, s] + 0.05}, {"_step": 19, "gap/acc": gap[d, s]}],
            )
            for i, ((d, s), a) in enumerate(acc.items())
        ]  # fmt: skip

    monkeypatch.setattr(compare_runs, "wandb_api", lambda: SimpleNamespace(runs=runs))
    out = tmp_path / "wandb.csv"
    keys = ["model.net.batch_norm", "optimizer.weight_decay", "model.net.dropout"]  # differing past 60 characters
    args = ["--wandb", "t/p", "--group-by", *keys, "--metrics", "test/acc", "gap/acc", "--metric", "test/acc"]
    header, *body = compare_runs.main([*args, "--csv", str(out), "--plot", str(tmp_path / "b.png")])
    assert header == [*keys, "n", "test/acc mean", "test/acc std", "gap/acc mean", "gap/acc std"]
    assert [row[:4] for row in body] == [["True", "0.05", "0.3", "3"], ["True", "0.05", "0.1", "3"]]  # best first
    for row in body:
        d = float(row[2])
        assert row[4:6] == list(by_hand([acc[d, s] for s in range(3)]))
        assert row[6:8] == list(by_hand([gap[d, s] for s in range(3)]))  # the final value of each run's curve
    assert "6 runs in 2 groups; a group pools runs that differ in: seed" in capsys.readouterr().out
    with open(out) as f:
        assert list(csv.reader(f)) == [header, *body]
    assert (tmp_path / "b.png").read_bytes().startswith(PNG)
