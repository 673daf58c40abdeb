"""Progress output picks its form from the terminal; throughput is timed after the warm-up."""

import io

from lightning.pytorch.callbacks import RichProgressBar

from src.callbacks.progress import LineProgress, auto_progress_bar
from src.callbacks.throughput import ThroughputMonitor
from src.train import build, train
from tests.conftest import FAST


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_rich_bar_in_a_terminal_plain_lines_elsewhere(monkeypatch):
    monkeypatch.setattr("sys.stdout", Terminal())
    assert isinstance(auto_progress_bar(), RichProgressBar)
    monkeypatch.setattr("sys.stdout", io.StringIO())
    assert isinstance(auto_progress_bar(every_n_seconds=5), LineProgress)


def test_throughput_is_logged_per_epoch(make_cfg):
    cfg = make_cfg(*FAST, "+callbacks.throughput._target_=src.callbacks.throughput.ThroughputMonitor")
    metrics = train(cfg)
    assert metrics["train/samples_per_s"] > 0


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
