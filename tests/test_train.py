"""End-to-end runs on digits, in-process: training works, checkpoints are safe, eval reproduces."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from src.errors import DataError
from src.eval import evaluate
from src.train import train
from tests.conftest import FAST, compose_config

# Each family for a few epochs on the 1,077 training digits; chance is 0.10.
FAMILIES = {
    "cnn": (["model=cnn"], 0.90),
    "lstm": (["model=rnn", "model.net.cell=lstm"], 0.60),
    "gru": (["model=rnn", "model.net.cell=gru", "model.net.bidirectional=true"], 0.60),
    "resnet": (["model=resnet", "model.net.width=16"], 0.80),
}


# The CNN's run is the default suite's one end-to-end run; the other families' are `slow`.
@pytest.mark.parametrize("family", [f if f == "cnn" else pytest.param(f, marks=pytest.mark.slow) for f in FAMILIES])
def test_each_family_learns_digits(make_cfg, tmp_path, family):
    overrides, threshold = FAMILIES[family]
    metrics = train(make_cfg(*FAST, *overrides))
    assert metrics["val/acc"] > threshold
    assert metrics["test/acc"] > threshold
    with open(tmp_path / "csv" / "metrics.csv") as f:
        val_acc = [float(row["val/acc"]) for row in csv.DictReader(f) if row["val/acc"]]
    assert len(val_acc) == 3 and val_acc[-1] > val_acc[0]  # accuracy rises over the epochs


def test_run_folder_holds_config_checkpoints_and_metrics(make_cfg, tmp_path):
    train(make_cfg(*FAST, "tags=[a,b]"))
    config = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert config["tags"] == ["a", "b"] and config["model"]["net"]["in_channels"] == 1
    assert set(config["git"]) - {"untracked_not_listed"} == {"commit", "dirty", "untracked"}
    checkpoints = sorted(p.name for p in (tmp_path / "checkpoints").glob("*.ckpt"))
    assert "last.ckpt" in checkpoints and len(checkpoints) == 2
    for name in checkpoints:  # plain tensors and containers only
        ckpt = torch.load(tmp_path / "checkpoints" / name, map_location="cpu", weights_only=True)
        assert ckpt["run_config"]["model"] == config["model"]
        assert all(not k.startswith("net._orig_mod") for k in ckpt["state_dict"])


def test_eval_reproduces_the_test_accuracy_and_writes_predictions(make_cfg, tmp_path):
    metrics = train(make_cfg(*FAST))
    best = next(p for p in (tmp_path / "checkpoints").glob("epoch_*.ckpt"))
    eval_dir = tmp_path / "eval"
    cfg = compose_config("eval", [f"ckpt_path={best}", "trainer=cpu", "logger=none", "predict=true"], eval_dir)
    evaluated = evaluate(cfg)
    assert evaluated["test/acc"] == pytest.approx(metrics["test/acc"], abs=1e-3)
    with open(eval_dir / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 360 and set(rows[0]) == {"index", "prediction", "confidence", "label"}
    accuracy = sum(r["prediction"] == r["label"] for r in rows) / len(rows)
    assert accuracy == pytest.approx(metrics["test/acc"], abs=1e-3)  # the predictions are the tested ones
    assert all(0.1 <= float(r["confidence"]) <= 1 for r in rows)


@pytest.mark.slow
@pytest.mark.parametrize(
    "data,message",
    [
        ("data=digits", r"data: 10 classes, but .*last.ckpt's network predicts 5: test it on data of at most 5"),
        ("data=synthetic", r"data: inputs of shape \(3, 32, 32\) do not fit .*last.ckpt's network \(Given groups"),
    ],
)
def test_eval_on_other_data_that_does_not_fit_the_network_is_one_line(make_cfg, tmp_path, data, message):
    one_step = ["trainer=cpu", "logger=none", "trainer.max_epochs=1", "trainer.limit_train_batches=1"]
    train(make_cfg(*one_step, "data.classes=[0,1,2,3,4]", "callbacks.test_figures=null"))
    cfg = compose_config("eval", [f"ckpt_path={tmp_path / 'checkpoints' / 'last.ckpt'}", data], tmp_path / "eval")
    with pytest.raises(DataError, match=message):
        evaluate(cfg)


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_bf16_mixed_precision_trains_each_family_on_cpu(make_cfg, family):
    overrides, threshold = FAMILIES[family]
    metrics = train(make_cfg(*FAST, *overrides, "trainer.precision=bf16-mixed"))
    assert metrics["val/acc"] > threshold - 0.05  # bf16 rounding costs a little accuracy in 3 epochs


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["fdr", "limit", "overfit", "profiler"])
def test_debug_modes_run(make_cfg, mode):
    epochs = [] if mode == "overfit" else ["trainer.max_epochs=2"]  # overfit: its own 30 epochs of 3 batches
    metrics = train(make_cfg("trainer=cpu", "logger=csv", f"debug={mode}", *epochs))
    assert "test/acc" in metrics
    if mode == "overfit":
        assert metrics["train/acc"] == 1.0  # the 3 batches memorised


def inspect_wandb_run(run_dir: Path, *flags: str) -> str:
    """`wandb leet inspect <flags> --json` of an offline run: what its .wandb file holds."""
    wandb_cli = Path(sys.executable).with_name("wandb")
    command = [str(wandb_cli), "leet", "inspect", *flags, "--json", str(run_dir)]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


def wandb_summary(run_dir: Path) -> dict:
    """What an offline run recorded: config, summary and tags."""
    return json.loads(inspect_wandb_run(run_dir, "--summary"))


def wandb_run_record(run_dir: Path) -> dict:
    """The run record of an offline run: group, job type, tags, W&B's own git metadata."""
    records = [json.loads(line) for line in inspect_wandb_run(run_dir).splitlines() if line.startswith("{")]
    return next(r["run"] for r in records if r.get("type") == "run")


@pytest.mark.slow
def test_wandb_offline_run_records_config_and_metrics(make_cfg, tmp_path):
    metrics = train(make_cfg(*FAST, "logger=default", "group=g1", "tags=[t1]"))
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    record = wandb_summary(runs[0])
    assert record["state"] == "finished" and record["tags"] == ["t1"]
    assert record["config"]["model"]["net"]["widths"] == [32, 64, 128]  # nested, not flattened
    assert record["config"]["group"] == "g1" and "commit" in record["config"]["git"]
    assert record["summary"]["test/acc"] == pytest.approx(metrics["test/acc"])
    run = wandb_run_record(runs[0])
    assert run["run_group"] == "g1" and run["job_type"] == "train" and run["project"] == "dl-template"
    assert (tmp_path / "csv" / "metrics.csv").exists()  # the default logs locally as well


@pytest.mark.slow
def test_logger_none_writes_nothing_to_wandb(make_cfg, tmp_path):
    train(make_cfg(*FAST, "logger=none"))
    assert not list(tmp_path.rglob("*.wandb")) and not (tmp_path / "wandb").exists()
    assert (tmp_path / "checkpoints" / "last.ckpt").exists()


@pytest.mark.slow
@pytest.mark.parametrize("scheduler", ["warmup_cosine", "onecycle"])
def test_resume_from_last_checkpoint_continues_training(tmp_path, scheduler):
    first = tmp_path / "first"
    train(compose_config("train", [*FAST, f"scheduler={scheduler}", "trainer.max_epochs=2"], first))
    resumed = tmp_path / "resumed"  # a new run folder: the first run's files stay as they were
    overrides = [
        *FAST,
        f"scheduler={scheduler}",
        "trainer.max_epochs=3",
        f"ckpt_path={first / 'checkpoints/last.ckpt'}",
    ]
    metrics = train(compose_config("train", overrides, resumed))
    with open(resumed / "csv" / "metrics.csv") as f:
        epochs = {int(row["epoch"]) for row in csv.DictReader(f) if row["val/acc"]}
    assert epochs == {2}  # only the third epoch was trained again
    assert metrics["val/acc"] > 0.9
    assert (first / "checkpoints" / "last.ckpt").exists()


@pytest.mark.slow
def test_generalisation_gap_is_logged_every_epoch(make_cfg, tmp_path):
    train(make_cfg(*FAST))
    by_epoch: dict[int, dict[str, float]] = {}
    with open(tmp_path / "csv" / "metrics.csv") as f:
        for row in csv.DictReader(f):
            if row["epoch"]:
                by_epoch.setdefault(int(row["epoch"]), {}).update({k: float(v) for k, v in row.items() if v})
    epochs = [by_epoch[e] for e in range(3)]
    for m in epochs:  # train/acc - val/acc, and val/loss - the epoch's mean training loss
        assert m["gap/acc"] == pytest.approx(m["train/acc"] - m["val/acc"], abs=1e-6)
        assert m["gap/loss"] == pytest.approx(m["val/loss"] - m["train/loss_epoch"], abs=1e-6)
    assert epochs[-1]["train/loss_epoch"] < epochs[0]["train/loss_epoch"]


@pytest.mark.slow
def test_early_stopping_watches_val_loss(make_cfg, tmp_path):
    # min_delta larger than any loss: no epoch after the first counts as better, so patience 1 stops at epoch 2
    cfg = make_cfg(*FAST, "callbacks=early_stopping", "trainer.max_epochs=6", "callbacks.early_stopping.patience=1",
                   "callbacks.early_stopping.min_delta=100")  # fmt: skip
    assert cfg.callbacks.early_stopping.monitor == "val/loss" and cfg.callbacks.early_stopping.mode == "min"
    train(cfg)
    with open(tmp_path / "csv" / "metrics.csv") as f:
        epochs = {int(row["epoch"]) for row in csv.DictReader(f) if row["val/loss"]}
    assert epochs == {0, 1}


@pytest.mark.slow
def test_wandb_run_is_named_and_records_parameters_and_hardware(make_cfg, tmp_path):
    train(make_cfg(*FAST, "logger=wandb", "model=rnn"))
    (run_dir,) = (tmp_path / "wandb").glob("offline-run-*")
    config, run = wandb_summary(run_dir)["config"], wandb_run_record(run_dir)
    assert run["display_name"] == f"rnn-digits-{run['run_id']}"
    # LSTM over 8-pixel rows, 128 units: 4 gates x 128 x (8 + 128 + 2 biases); then a 128 -> 10 classifier
    total = 4 * 128 * (8 + 128 + 2) + 128 * 10 + 10
    assert config["params"] == {"total": total, "trainable": total}
    hardware = config["hardware"]
    assert (hardware["accelerator"], hardware["devices"], hardware["precision"]) == ("cpu", 1, "32-true")
    assert hardware["device_name"] and config["choices"]["model"] == "rnn"


@pytest.mark.slow
def test_log_model_records_the_checkpoints_as_wandb_artifacts(make_cfg, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "staging"))  # W&B stages artifact files here
    train(make_cfg(*FAST, "logger=wandb", "logger.wandb.log_model=true"))
    (run_dir,) = (tmp_path / "wandb").glob("offline-run-*")
    records = [json.loads(line) for line in inspect_wandb_run(run_dir).splitlines() if line.startswith("{")]
    artifacts = [r["artifact"] for r in records if r.get("type") == "artifact"]
    assert sorted(sorted(a["aliases"]) for a in artifacts) == [["best", "latest"], ["latest"]]  # best and last.ckpt
    assert {a["type"] for a in artifacts} == {"model"}  # uploaded by `wandb sync` (or at once when online)
