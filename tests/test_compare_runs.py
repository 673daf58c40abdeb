"""scripts/compare_runs.py reads real run folders (or the W&B API) and shows what differed and what each reached."""

import csv
import re
import sys
from types import SimpleNamespace

import pytest
import yaml

from src.train import train
from tests.conftest import FAST, ROOT, compose_config, run_script
from tests.test_hostile_folders import run_folder
from tests.test_train import wandb_run_record, wandb_summary

sys.path.insert(0, str(ROOT / "scripts"))
import compare_runs

PNG = b"\x89PNG\r\n\x1a\n"
TINY = ["trainer=cpu", "trainer.max_epochs=2", "trainer.limit_train_batches=2", "trainer.num_sanity_val_steps=0"]


@pytest.mark.slow
def test_compare_shows_the_differing_keys_and_final_metrics(tmp_path, capsys):
    results = {}
    for name, lr in (("a", 0.003), ("b", 0.0003)):
        cfg = compose_config("train", [*FAST, f"optimizer.lr={lr}", "group=cmp", "tags=[x]"], tmp_path / name)
        results[lr] = train(cfg)
    rows = compare_runs.main([str(tmp_path), "--sort", "test/acc", "--group", "cmp", "--tag", "x"])
    header, *body = rows
    assert header[:3] == ["run", "group", "commit"] and "optimizer.lr" in header
    assert "paths.output_dir" not in header  # differs between any two runs: left out
    lr_col, acc_col = header.index("optimizer.lr"), header.index("test/acc")
    shown = {float(row[lr_col]): float(row[acc_col]) for row in body}
    assert shown == {lr: round(m["test/acc"], 4) for lr, m in results.items()}
    accs = [float(row[acc_col]) for row in body]
    assert accs == sorted(accs, reverse=True)  # best first
    assert "optimizer.lr" in capsys.readouterr().out
    assert compare_runs.main([str(tmp_path), "--group", "cmp", "--tag", "x", "--keys", "seed"])[0][3] == "seed"
    # val/acc has a curve (one value per epoch): its final and best values are both shown
    header, *body = compare_runs.main([str(tmp_path), "--metric", "val/acc"])
    best_col = header.index("best val/acc")
    assert {float(row[best_col]) for row in body} == {round(m["val/acc_best"], 4) for m in results.values()}


@pytest.mark.slow
def test_three_model_multirun_is_one_wandb_group_and_one_table(tmp_path):
    """`-m model=cnn,rnn,resnet`: three complete offline W&B runs in one group, compared from their folders."""
    done = run_script("train.py", "-m", "model=cnn,rnn,resnet", *TINY, f"hydra.sweep.dir={tmp_path}")
    assert done.returncode == 0, done.stderr[-3000:]
    jobs = sorted(p for p in tmp_path.iterdir() if p.is_dir())
    assert [p.name for p in jobs] == ["0", "1", "2"]
    test_acc, groups = {}, set()
    for job, model in zip(jobs, ["cnn", "rnn", "resnet"], strict=True):
        (run_dir,) = job.glob("wandb/offline-run-*")
        record, run = wandb_summary(run_dir), wandb_run_record(run_dir)
        assert record["state"] == "finished" and record["config"]["choices"]["model"] == model
        assert record["config"]["params"]["total"] > 0 and record["config"]["hardware"]["devices"] == 1
        assert run["display_name"].startswith(f"{model}-digits-")
        groups.add(run["run_group"])
        test_acc[model] = record["summary"]["test/acc"]
    assert groups == {tmp_path.name}  # one group: the sweep folder's name
    assert yaml.safe_load((jobs[0] / "config.yaml").read_text())["group"] == tmp_path.name

    plot = tmp_path / "curves.png"
    header, *body = compare_runs.main([str(tmp_path), "--plot", str(plot)])
    assert "model" in header and "test/acc" in header and "model.net._target_" not in header
    model_col, acc_col = header.index("model"), header.index("test/acc")
    assert {row[model_col]: float(row[acc_col]) for row in body} == {m: round(a, 4) for m, a in test_acc.items()}
    assert plot.read_bytes().startswith(PNG)


@pytest.mark.slow
def test_learning_curve_sweep_trains_on_more_data_and_plots_accuracy_against_it(tmp_path):
    done = run_script(
        "train.py",
        "-m",
        "experiment=learning_curve",
        "logger=csv",
        "trainer=cpu",
        "trainer.max_epochs=1",
        f"hydra.sweep.dir={tmp_path}",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    steps = {}
    for job in sorted(p for p in tmp_path.iterdir() if p.is_dir()):
        fraction = yaml.safe_load((job / "config.yaml").read_text())["data"]["train_fraction"]
        with open(job / "csv" / "metrics.csv") as f:
            steps[fraction] = max(int(row["step"]) for row in csv.DictReader(f))
    # 109, 268, 538 and 1,077 training images, 64 a batch: 2, 5, 9 and 17 steps in the one epoch
    assert steps == {0.1: 2, 0.25: 5, 0.5: 9, 1.0: 17}

    plot = tmp_path / "learning_curve.png"
    header, *body = compare_runs.main([str(tmp_path), "--x", "data.train_fraction", "--plot", str(plot)])
    column = header.index("data.train_fraction")
    assert [float(row[column]) for row in body] == [0.1, 0.25, 0.5, 1.0]
    assert "test/acc" in header and all(row[header.index("test/acc")] for row in body)
    assert plot.read_bytes().startswith(PNG)


class FakeWandbRun(SimpleNamespace):
    def scan_history(self, keys):
        return [row for row in self.rows if all(k in row for k in keys)]


def test_wandb_runs_are_read_filtered_and_compared_like_folders(monkeypatch):
    """--wandb: the same table from the W&B API (a stand-in API here; the real one needs a server and a key)."""
    asked = {}

    def runs(path, filters):
        asked.update(path=path, filters=filters)
        return [
            FakeWandbRun(
                name=f"cnn-digits-{i}", id=str(i), group="g", tags=["a", "b"], summary={"test/acc": acc},
                config={"optimizer": {"lr": lr}, "seed": 1, "git": {"commit": "abc", "dirty": False}},
                rows=[{"_step": 9, "val/acc": acc - 0.1}, {"_step": 19, "val/acc": acc}],
            )
            for i, (lr, acc) in enumerate([(0.001, 0.9), (0.01, 0.95)])
        ]  # fmt: skip

    monkeypatch.setattr(compare_runs, "wandb_api", lambda: SimpleNamespace(runs=runs))
    header, *body = compare_runs.main(["--wandb", "team/proj", "--group", "g", "--tags", "a", "b"])
    assert asked == {
        "path": "team/proj",
        "filters": {"group": "g", "$and": [{"tags": {"$in": ["a"]}}, {"tags": {"$in": ["b"]}}]},
    }
    assert header[3] == "optimizer.lr" and [row[3] for row in body] == ["0.01", "0.001"]  # best val/acc first
    assert [row[header.index("test/acc")] for row in body] == ["0.9500", "0.9000"]
    assert [row[header.index("best val/acc")] for row in body] == ["0.9500", "0.9000"]


def two_runs(root):
    """Two finished runs (optimizer.lr 0.1 and 0.01) with a val/acc curve and a test/acc."""
    for lr in (0.1, 0.01):
        run_folder(root, f"lr{lr}", {"optimizer": {"lr": lr}}, f"epoch,step,val/acc,test/acc\n0,9,{lr},\n0,9,,{lr}\n")
    return root


@pytest.mark.parametrize(
    "option,message",
    [
        (
            ["--metric", "val/accc"],
            "--metric val/accc: no run logged this metric (metrics logged here: test/acc, val/acc)",
        ),
        (
            ["--metrics", "nonexist"],
            "--metrics nonexist: no run logged this metric (metrics logged here: test/acc, val/",
        ),
        (["--x", "nonexist.key"], "--x nonexist.key: no run has this config key (keys that differ here: optimizer.lr)"),
        (["--keys", "optimizer.lrr"], "--keys optimizer.lrr: no run has this config key (keys that differ here: optim"),
    ],
)
def test_a_metric_or_key_no_run_has_is_one_line_naming_those_they_have(tmp_path, option, message):
    with pytest.raises(SystemExit) as exited:
        compare_runs.main([str(two_runs(tmp_path / "runs")), *option, "--plot", str(tmp_path / "p.png")])
    assert str(exited.value.code).startswith(f"Error: {message}")
    assert not (tmp_path / "p.png").exists()


def test_plot_and_csv_files_go_into_new_folders_and_an_unknown_chart_format_is_one_line(tmp_path):
    runs = str(two_runs(tmp_path / "runs"))
    compare_runs.main([runs, "--plot", str(tmp_path / "new" / "p.png"), "--csv", str(tmp_path / "other" / "r.csv")])
    assert (tmp_path / "new" / "p.png").read_bytes().startswith(PNG)
    assert (tmp_path / "other" / "r.csv").read_text().startswith("run,group,commit,optimizer.lr")
    for name in ("p.txt", "p"):
        with pytest.raises(SystemExit) as exited:
            compare_runs.main([runs, "--plot", str(tmp_path / name)])
        assert re.fullmatch(
            rf"Error: --plot {tmp_path / name}: not a chart format; end it in one of \..*png.*", exited.value.code
        )
