"""The benchmark script runs end to end on a tiny grid and writes its CSV, table and chart."""

import csv
import sys
from dataclasses import replace

import pytest

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import benchmark

pytestmark = pytest.mark.slow  # end-to-end runs: `make test-all` (CI) runs them

COLUMNS = {"model", "device", "precision", "compile", "channels_last", "data", "devices", "batch_size", "loop"}


def run_benchmark(tmp_path, *args: str) -> list[dict]:
    """A few steps of each configuration on digits; the CSV rows it wrote."""
    benchmark.main(["--dataset", "digits", "--warmup", "1", "--repeats", "1", "--out", str(tmp_path), *args])
    with open(tmp_path / "benchmark.csv") as f:
        return list(csv.DictReader(f))


def test_benchmark_writes_one_row_per_configuration_and_loop(tmp_path):
    args = ["--models", "cnn", "rnn", "--data", "dataloader", "on_device", "--batch-sizes", "32", "--steps", "4"]
    rows = run_benchmark(tmp_path, *args)
    assert COLUMNS | {"samples_per_s"} <= set(rows[0])
    assert len(rows) == 2 * 2 * 2  # models x data paths x {lightning, pytorch}
    assert {r["loop"] for r in rows} == {"lightning", "pytorch"}
    assert all(float(r["samples_per_s"]) > 0 for r in rows)
    ratios = [float(r["lightning_over_pytorch"]) for r in rows if r["loop"] == "lightning"]
    assert len(ratios) == 4 and all(x > 0 for x in ratios)
    # the template's time per step minus the plain loop's, from the same pair of measurements
    plain = {(r["model"], r["data"]): float(r["samples_per_s"]) for r in rows if r["loop"] == "pytorch"}
    for r in (r for r in rows if r["loop"] == "lightning"):
        step_ms = 1000 * 32 / float(r["samples_per_s"]) - 1000 * 32 / plain[r["model"], r["data"]]
        assert float(r["overhead_ms_per_step"]) == pytest.approx(step_ms, abs=2e-3)
    assert all(r["overhead_ms_per_step"] == "" for r in rows if r["loop"] == "pytorch")
    assert (tmp_path / "speedup.png").stat().st_size > 1000 and (tmp_path / "benchmark.md").exists()


def test_benchmark_compares_with_lightning_defaults(tmp_path):
    args = ["--models", "cnn", "--batch-sizes", "16", "--steps", "3", "--loops", "lightning", "pytorch"]
    rows = {r["loop"]: r for r in run_benchmark(tmp_path, *args, "lightning_defaults")}
    assert set(rows) == {"lightning", "pytorch", "lightning_defaults"}
    assert float(rows["lightning_defaults"]["lightning_over_pytorch"]) > 0


def test_benchmark_skips_combinations_that_do_not_exist():
    spec = benchmark.Spec("rnn", "digits", "cpu", "32", False, True, "dataloader", 1, 64)
    assert not benchmark.valid(spec)  # channels_last without convolutions
    assert not benchmark.valid(replace(spec, channels_last=False, precision="16-mixed"))  # fp16 autocast: GPU only
    assert benchmark.valid(replace(spec, channels_last=False, precision="bf16-mixed"))


def test_profile_says_where_the_templates_step_time_goes(tmp_path):
    args = ["--profile", "--models", "cnn", "--dataset", "digits", "--batch-sizes", "16", "--warmup", "1"]
    # 12 timed steps: the step loss is logged every 10 (trainer.log_every_n_steps), the metric objects once an epoch
    benchmark.main([*args, "--steps", "12", "--repeats", "1", "--out", str(tmp_path)])
    text = (tmp_path / "profile.md").read_text()
    print(text)
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines() if line.startswith("| ")]
    ms = {row[0]: float(row[1]) for row in cells if row[0] not in ("part", "**step, profiled**")}
    parts = {"forward (the network)", "backward", "optimizer step, zero_grad, LR", "data loading"}
    parts |= {"metrics (torchmetrics updates)", "logging (self.log, the loggers)", benchmark.LIGHTNING_LOOP}
    parts |= {"callback FiniteLoss", "callback LastCheckpoint", "callback Preemption"}
    assert parts <= set(ms)
    # Lightning's loop is the step's time that no part took: above zero, the parts never count a moment twice
    assert all(value > 0 for value in ms.values()), ms
    assert "overhead" in text and "plain loop" in text
