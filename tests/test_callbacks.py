"""Progress output picks its form from the terminal; throughput is timed after the warm-up; test pictures."""

import csv
import io
import logging
from types import SimpleNamespace

import pytest
import torch
from lightning.pytorch.callbacks import RichProgressBar

from src.callbacks.test_figures import TestFigures
from src.callbacks.throughput import ThroughputMonitor
from src.machinery.tracking.progress import LatestTrainLoss, LineProgress, RichBar, auto_progress_bar
from src.train import build, train
from tests.conftest import FAST
from tests.test_train import wandb_summary


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_rich_bar_in_a_terminal_plain_lines_elsewhere(monkeypatch):
    monkeypatch.setattr("sys.stdout", Terminal())
    assert isinstance(auto_progress_bar(), RichBar) and isinstance(auto_progress_bar(), RichProgressBar)
    monkeypatch.setattr("sys.stdout", io.StringIO())
    assert isinstance(auto_progress_bar(every_n_seconds=5), LineProgress)


@pytest.mark.slow
def test_each_epoch_line_shows_that_epochs_metrics(make_cfg, tmp_path, capsys):
    train(make_cfg(*FAST))  # stdout is not a terminal here: LineProgress
    lines = [line for line in capsys.readouterr().out.splitlines() if "] epoch " in line and " step " in line]
    rows = csv.DictReader((tmp_path / "csv" / "metrics.csv").read_text().splitlines())
    logged = [row for row in rows if row["train/acc"]]
    assert len(lines) == len(logged) == 3
    for line, row in zip(lines, logged, strict=True):
        assert f"train/acc {float(row['train/acc']):.4f}" in line, (line, row)


class CountedReads(torch.Tensor):
    reads = 0

    def __float__(self) -> float:
        CountedReads.reads += 1
        return super().__float__()


def test_the_bars_read_the_step_loss_once_per_logged_value(monkeypatch):
    """`train/loss` is not a progress-bar value (Lightning would read it at every step): the bars read it from the
    callback metrics, only when a new one is there, and at most once a second."""
    clock = [100.0]
    monkeypatch.setattr("src.machinery.tracking.progress.time.monotonic", lambda: clock[0])
    latest, trainer = LatestTrainLoss(), SimpleNamespace(callback_metrics={})
    assert latest(trainer) == {}  # nothing logged yet
    first, second = torch.tensor(0.5).as_subclass(CountedReads), torch.tensor(0.25).as_subclass(CountedReads)
    shown = []
    for step, loss in enumerate([first] * 10 + [second] * 10):  # logged at two steps, the bar refreshed at 20
        clock[0] = 100.0 + 0.2 * step
        trainer.callback_metrics["train/loss"] = loss
        shown.append(latest(trainer)["train/loss"])
    assert shown == [0.5] * 10 + [0.25] * 10 and CountedReads.reads == 2
    # As Lightning hands them over: a new tensor object at every step, 0.01 s apart; read once a second
    CountedReads.reads = 0
    for step in range(300):
        clock[0] = 200.0 + 0.01 * step
        trainer.callback_metrics["train/loss"] = torch.tensor(float(step)).as_subclass(CountedReads)
        shown.append(latest(trainer)["train/loss"])
    assert CountedReads.reads == 3 and shown[-1] == 200.0  # read at steps 0, 100 and 200


def test_line_progress_counts_from_its_own_start_outside_training(capsys):
    LineProgress().on_test_end(SimpleNamespace(callback_metrics={"test/acc": 0.5}), None)
    out = capsys.readouterr().out  # e.g. "[    0.0s] test  test/acc 0.5000"
    assert float(out.split("s]")[0].strip("[ ")) < 60 and "test/acc 0.5000" in out


@pytest.mark.slow
def test_throughput_is_logged_per_epoch(make_cfg):
    cfg = make_cfg(*FAST, "+callbacks.throughput._target_=src.callbacks.throughput.ThroughputMonitor")
    metrics = train(cfg)
    assert metrics["train/samples_per_s"] > 0


@pytest.mark.slow
def test_throughput_monitor_times_steps_after_the_warm_up_within_epochs(make_cfg):
    # digits: 1,077 training images = 16 batches of 64 and one of 53 per epoch; 3 epochs, 51 steps.
    monitor = ThroughputMonitor(warmup_steps=5)
    run = build(make_cfg(*FAST), callbacks=[monitor])
    run.trainer.fit(run.module, datamodule=run.datamodule)
    # Timed: each step after the one ending at step 5 in epoch 0 (steps 6-17), and every step but the
    # first of epochs 1 and 2 (whose start includes validation and checkpointing).
    assert monitor.steps == 12 + 16 + 16
    assert monitor.samples == (11 * 64 + 53) + 2 * (15 * 64 + 53)
    assert len(monitor.step_rates) == monitor.steps and monitor.median_samples_per_s > 0


@pytest.mark.slow
def test_test_pictures_are_saved_and_logged_to_wandb(make_cfg, tmp_path):
    train(make_cfg(*FAST, "logger=default"))
    for name in ("confusion_matrix.png", "misclassified.png"):
        assert (tmp_path / name).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    (run_dir,) = (tmp_path / "wandb").glob("offline-run-*")
    summary = wandb_summary(run_dir)["summary"]
    for key in ("test/confusion_matrix", "test/misclassified"):
        assert summary[key]["_type"] == "images/separated" and summary[key]["format"] == "png"
        (filename,) = summary[key]["filenames"]
        assert (run_dir / "files" / filename).read_bytes().startswith(b"\x89PNG")


def test_confusion_matrix_counts_and_misclassified_examples(tmp_path):
    figures = TestFigures(out_dir=str(tmp_path), max_examples=1)
    module = SimpleNamespace(hparams=SimpleNamespace(num_classes=3), all_gather=lambda t: t, device="cpu")
    drawn = []
    datamodule = SimpleNamespace(draw_input=lambda ax, x: drawn.append(x.shape) or ax.imshow(x[0]))
    trainer = SimpleNamespace(is_global_zero=True, loggers=[], datamodule=datamodule)
    figures.on_test_epoch_start(trainer, module)
    images, labels = torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 2])
    figures.on_test_batch_end(trainer, module, {"preds": torch.tensor([0, 2, 2, 1])}, (images, labels), 0)
    figures.on_test_batch_end(trainer, module, {"preds": torch.tensor([0, 1])}, (images[:2], labels[:2]), 1)
    figures.on_test_epoch_end(trainer, module)
    assert figures.confusion.tolist() == [[2, 0, 0], [0, 1, 1], [0, 1, 1]]  # rows: true class
    assert [(label, pred) for _, label, pred in figures.wrong] == [(1, 2)]  # max_examples=1
    assert (tmp_path / "confusion_matrix.png").exists() and (tmp_path / "misclassified.png").exists()
    assert drawn == [(1, 8, 8)]  # the data module drew its one misclassified input


def test_data_that_cannot_draw_its_inputs_gets_the_confusion_matrix_and_one_log_line(tmp_path, caplog):
    figures = TestFigures(out_dir=str(tmp_path), max_examples=8)
    module = SimpleNamespace(hparams=SimpleNamespace(num_classes=2), all_gather=lambda t: t, device="cpu")
    trainer = SimpleNamespace(is_global_zero=True, loggers=[], datamodule=SimpleNamespace())  # no draw_input
    with caplog.at_level(logging.INFO):
        figures.on_test_epoch_start(trainer, module)
        features, labels = torch.randn(3, 13), torch.tensor([0, 1, 1])  # (B, F): a table's rows
        figures.on_test_batch_end(trainer, module, {"preds": torch.tensor([1, 1, 0])}, (features, labels), 0)
        figures.on_test_epoch_end(trainer, module)
    assert figures.confusion.tolist() == [[0, 1], [1, 1]] and figures.wrong == []
    assert (tmp_path / "confusion_matrix.png").exists() and not (tmp_path / "misclassified.png").exists()
    notes = [r.getMessage() for r in caplog.records if "draw_input" in r.getMessage()]
    assert len(notes) == 1 and "misclassified examples are not drawn" in notes[0]
