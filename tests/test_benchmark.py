"""The benchmark script runs end to end on a tiny grid and writes its CSV, table and chart."""

import csv
import sys
from dataclasses import replace

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import benchmark

COLUMNS = {"model", "device", "precision", "compile", "channels_last", "data", "devices", "batch_size", "loop"}


def test_benchmark_writes_one_row_per_configuration_and_loop(tmp_path):
    benchmark.main(
        ["--models", "cnn", "rnn", "--dataset", "digits", "--data", "dataloader", "on_device", "--batch-sizes", "32",
         "--steps", "4", "--warmup", "1", "--repeats", "1", "--out", str(tmp_path)]
    )  # fmt: skip
    with open(tmp_path / "benchmark.csv") as f:
        rows = list(csv.DictReader(f))
    assert COLUMNS | {"samples_per_s"} <= set(rows[0])
    assert len(rows) == 2 * 2 * 2  # models x data paths x {lightning, pytorch}
    assert {r["loop"] for r in rows} == {"lightning", "pytorch"}
    assert all(float(r["samples_per_s"]) > 0 for r in rows)
    ratios = [float(r["lightning_over_pytorch"]) for r in rows if r["loop"] == "lightning"]
    assert len(ratios) == 4 and all(x > 0 for x in ratios)
    assert (tmp_path / "speedup.png").stat().st_size > 1000 and (tmp_path / "benchmark.md").exists()


def test_benchmark_compares_with_lightning_defaults(tmp_path):
    benchmark.main(
        ["--models", "cnn", "--dataset", "digits", "--batch-sizes", "16", "--steps", "3", "--warmup", "1",
         "--repeats", "1", "--loops", "lightning", "pytorch", "lightning_defaults", "--out", str(tmp_path)]
    )  # fmt: skip
    with open(tmp_path / "benchmark.csv") as f:
        rows = {r["loop"]: r for r in csv.DictReader(f)}
    assert set(rows) == {"lightning", "pytorch", "lightning_defaults"}
    assert float(rows["lightning_defaults"]["lightning_over_pytorch"]) > 0


def test_benchmark_skips_combinations_that_do_not_exist():
    spec = benchmark.Spec("rnn", "digits", "cpu", "32", False, True, "dataloader", 1, 64)
    assert not benchmark.valid(spec)  # channels_last without convolutions
    assert not benchmark.valid(replace(spec, channels_last=False, precision="16-mixed"))  # fp16 autocast: GPU only
    assert benchmark.valid(replace(spec, channels_last=False, precision="bf16-mixed"))
