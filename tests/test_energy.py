"""Energy and cost: measured from NVML and RAPL counters where present, estimated (and labelled so) otherwise."""

import csv
import json
from types import SimpleNamespace

import pytest

from src.callbacks.energy import JOULES_PER_KWH, EnergyCost, EstimateMeter, nvml_meter, rapl_meter
from src.train import train
from tests.conftest import FAST


class FakeNvml:
    """Stands in for nvidia-ml-py: one GPU whose energy counter (millijoules) advances by `steps`."""

    class NVMLError(Exception):
        pass

    def __init__(self, readings: list[int]) -> None:
        self.readings = iter(readings)
        self.uuid = None

    def nvmlInit(self) -> None:
        pass

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> str:
        self.uuid = uuid
        return "handle-0"

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: str) -> int:
        assert handle == "handle-0"
        return next(self.readings)


def test_nvml_meter_turns_the_millijoule_counter_into_joules(monkeypatch):
    props = SimpleNamespace(uuid="5f3e0c1a-0000-1111-2222-333344445555")
    monkeypatch.setattr("torch.cuda.get_device_properties", lambda index: props)
    nvml = FakeNvml([10_000_000, 10_500_000, 13_600_000])  # start, a poll, the end: 3,600 J in all
    meter = nvml_meter(0, nvml=nvml)
    assert nvml.uuid == "GPU-5f3e0c1a-0000-1111-2222-333344445555"  # found by UUID, as NVML names it
    meter.poll()
    assert meter.joules() == pytest.approx(3600.0) and meter.source == "measured: NVML"  # 0.001 kWh


def test_nvml_meter_is_none_without_a_counter(monkeypatch):
    monkeypatch.setattr("torch.cuda.get_device_properties", lambda index: SimpleNamespace(uuid="GPU-x"))
    nvml = FakeNvml([])

    def unsupported(handle):
        raise FakeNvml.NVMLError("Not Supported")

    nvml.nvmlDeviceGetTotalEnergyConsumption = unsupported
    assert nvml_meter(0, nvml=nvml) is None


def test_rapl_meter_sums_packages_and_survives_a_wrap(tmp_path):
    for zone, (start, wrap) in {"intel-rapl:0": (900, 1000), "intel-rapl:1": (100, 1000)}.items():
        (tmp_path / zone).mkdir()
        (tmp_path / zone / "energy_uj").write_text(f"{start}\n")
        (tmp_path / zone / "max_energy_range_uj").write_text(f"{wrap}\n")
    (tmp_path / "intel-rapl:0:0").mkdir()  # a sub-zone (core): inside package 0, not counted again
    meter = rapl_meter(tmp_path)
    (tmp_path / "intel-rapl:0" / "energy_uj").write_text("200\n")  # wrapped: 900 -> 1000 -> 200, 300 uJ
    (tmp_path / "intel-rapl:1" / "energy_uj").write_text("600\n")  # 500 uJ
    assert meter.joules() == pytest.approx(800e-6) and meter.source == "measured: RAPL"
    assert rapl_meter(tmp_path / "absent") is None


def test_report_adds_energy_and_device_time_prices():
    callback = EnergyCost(usd_per_kwh=0.2, usd_per_device_hour=3.0)
    callback.seconds, callback.sources = 1800.0, {"gpu": "measured: NVML", "cpu": "estimated: 65 W x time"}
    report = callback._report(gpu_joules=2 * JOULES_PER_KWH, cpu_joules=0.5 * JOULES_PER_KWH, devices=4)
    assert report["energy/kwh"] == pytest.approx(2.5) and report["energy/device_hours"] == pytest.approx(2.0)
    assert report["cost/usd"] == pytest.approx(2.5 * 0.2 + 2.0 * 3.0) and report["energy/measured"] == 0.0
    assert "cost/usd" not in EnergyCost()._report(1.0, 1.0, devices=1)  # no prices: no made-up cost
    assert EstimateMeter(100.0).joules() >= 0


@pytest.mark.slow
def test_a_cpu_run_logs_estimated_energy_cost_and_device_hours(make_cfg, tmp_path):
    prices = ["cost.usd_per_kwh=0.3", "cost.usd_per_device_hour=1.5", "cost.cpu_watts=50"]
    train(make_cfg(*FAST, *prices))
    with open(tmp_path / "csv" / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["energy/kwh"]]
    assert len(rows) == 2  # after fit, then for the whole run after test
    final = {k: float(v) for k, v in rows[-1].items() if k.startswith(("energy/", "cost/")) and v}
    hours = final["energy/device_hours"]  # one CPU process: the run's wall time in hours
    assert 0 < hours < 0.05
    assert final["energy/kwh"] == pytest.approx(50 * hours * 3600 / JOULES_PER_KWH, rel=1e-3)  # no RAPL here
    assert final["cost/usd"] == pytest.approx(final["energy/kwh"] * 0.3 + hours * 1.5)
    assert final["energy/measured"] == 0.0 and final["energy/gpu_kwh"] == 0.0
    report = json.loads((tmp_path / "energy.json").read_text())
    assert report["source"] == {"cpu": "estimated: 50 W x time"} and report["cost/usd"] == final["cost/usd"]
    assert "estimated" in (tmp_path / "csv" / "hparams.yaml").read_text()  # the label reaches the loggers
