"""What a run cost: energy (measured where the hardware counts it, estimated otherwise), device-hours, dollars. GPU
energy from NVML (Volta and newer), CPU from Linux's RAPL (also on AMD), where readable; otherwise configured power x
time, and each figure says which. Nothing here touches the network."""

import json
import logging
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback

log = logging.getLogger(__name__)

JOULES_PER_KWH = 3.6e6
RAPL_ROOT = Path("/sys/class/powercap")


class CounterMeter:
    """Energy from hardware counters that only grow (and may wrap): polled, differences summed.

    Args:
        read: returns the current value of each counter, e.g. one per GPU or per CPU package.
        joules_per_unit: 1e-3 for NVML's millijoules, 1e-6 for RAPL's microjoules.
        wrap_at: each counter's range; a smaller reading than the last means it wrapped once.
        source: how the figure was measured, for the report ("NVML", "RAPL").
    """

    def __init__(
        self,
        read: Callable[[], list[int]],
        joules_per_unit: float,
        source: str,
        wrap_at: list[int] | None = None,
    ) -> None:
        self.read, self.joules_per_unit, self.source, self.wrap_at = read, joules_per_unit, source, wrap_at
        self.last = read()
        self.units = 0

    def poll(self) -> None:
        """Add what each counter advanced since the last poll (poll at least once per wrap period)."""
        now = self.read()
        for i, (before, after) in enumerate(zip(self.last, now, strict=True)):
            step = after - before
            if step < 0 and self.wrap_at:
                step += self.wrap_at[i]
            self.units += max(step, 0)
        self.last = now

    def joules(self) -> float:
        self.poll()
        return self.units * self.joules_per_unit


class EstimateMeter:
    """Energy estimated as a constant power draw over the elapsed time."""

    def __init__(self, watts: float) -> None:
        self.watts, self.start = watts, time.monotonic()
        self.source = f"estimated: {watts:g} W x time"

    def poll(self) -> None:
        pass

    def joules(self) -> float:
        return self.watts * (time.monotonic() - self.start)


def nvml_meter(cuda_index: int, nvml: Any = None) -> CounterMeter | None:
    """NVML's total-energy counter of one CUDA device (found by UUID, so CUDA_VISIBLE_DEVICES is respected), or None
    where NVML, the device or the counter is missing (pre-Volta GPUs, no driver)."""
    if nvml is None:
        import pynvml as nvml  # nvidia-ml-py: ctypes bindings, the driver's own library; no network
    try:
        nvml.nvmlInit()
        uuid = str(torch.cuda.get_device_properties(cuda_index).uuid)
        handle = nvml.nvmlDeviceGetHandleByUUID(uuid if uuid.startswith("GPU-") else f"GPU-{uuid}")
        meter = CounterMeter(
            lambda: [nvml.nvmlDeviceGetTotalEnergyConsumption(handle)], joules_per_unit=1e-3, source="measured: NVML"
        )
    except (nvml.NVMLError, OSError, AttributeError, RuntimeError) as err:
        log.info("No NVML energy counter for cuda:%d (%s): GPU energy will be estimated", cuda_index, err)
        return None
    return meter


def rapl_meter(root: Path = RAPL_ROOT) -> CounterMeter | None:
    """The CPU packages' RAPL energy counters (`intel-rapl:N`, microjoules); None where none is readable."""
    zones = [z for z in sorted(root.glob("intel-rapl:*")) if re.fullmatch(r"intel-rapl:\d+", z.name)]
    try:
        wrap_at = [int((z / "max_energy_range_uj").read_text()) for z in zones]
        meter = CounterMeter(
            lambda: [int((z / "energy_uj").read_text()) for z in zones],
            joules_per_unit=1e-6,
            source="measured: RAPL",
            wrap_at=wrap_at,
        )
    except (OSError, ValueError):  # energy_uj is root-only on most kernels since 2020
        return None
    return meter if zones else None


class EnergyCost(Callback):
    """Logs `energy/kwh` (GPU + CPU), `energy/device_hours` and, with prices, `cost/usd`, over fit and test together;
    `energy.json` in the run folder says which parts were measured.

    Args:
        out_dir: where `energy.json` goes (the run folder).
        gpu_watts: assumed draw per GPU where NVML cannot measure it.
        cpu_watts: assumed draw of the CPU (per machine) where RAPL cannot be read.
        usd_per_kwh: electricity price; null leaves energy out of the cost.
        usd_per_device_hour: rental price per device (GPU, or CPU process) and hour; null leaves it out.
        poll_seconds: how often counters are read during training (RAPL counters wrap, about hourly).
    """

    def __init__(
        self,
        out_dir: str | None = None,
        gpu_watts: float = 300.0,
        cpu_watts: float = 65.0,
        usd_per_kwh: float | None = None,
        usd_per_device_hour: float | None = None,
        poll_seconds: float = 60.0,
    ) -> None:
        self.out_dir = Path(out_dir) if out_dir else None
        self.gpu_watts, self.cpu_watts = gpu_watts, cpu_watts
        self.usd_per_kwh, self.usd_per_device_hour = usd_per_kwh, usd_per_device_hour
        self.poll_seconds = poll_seconds
        self.meters: dict[str, CounterMeter | EstimateMeter] = {}
        self.seconds = 0.0
        self.metrics: dict[str, float] = {}
        self.sources: dict[str, str] = {}

    def _start(self, trainer: pl.Trainer) -> None:
        """Meters start at fit start and run until the test ends: the whole run, checkpoint loading included."""
        if not self.meters:
            self.meters = self._meters(trainer)
            self.sources = {part: meter.source for part, meter in self.meters.items()}
            self._started = self._last_poll = time.monotonic()

    def _meters(self, trainer: pl.Trainer) -> dict[str, CounterMeter | EstimateMeter]:
        """This process's GPU (if any) and, on each machine's first process only, the CPU."""
        meters: dict[str, CounterMeter | EstimateMeter] = {}
        device = trainer.strategy.root_device
        if device.type == "cuda":
            meters["gpu"] = nvml_meter(device.index or 0) or EstimateMeter(self.gpu_watts)
        if trainer.local_rank == 0:  # RAPL counts the whole package: once per machine
            meters["cpu"] = rapl_meter() or EstimateMeter(self.cpu_watts)
        return meters

    def _stop(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.seconds = time.monotonic() - self._started
        local = [self.meters[p].joules() if p in self.meters else 0.0 for p in ("gpu", "cpu")]
        # (world_size, 2) summed over processes: every GPU, and every machine's CPU once.
        # all_gather puts the pair on the module's device itself (NCCL gathers only CUDA tensors).
        gpu_joules, cpu_joules = (float(j) for j in pl_module.all_gather(torch.tensor(local)).reshape(-1, 2).sum(0))
        self.metrics = self._report(gpu_joules, cpu_joules, trainer.num_devices * trainer.num_nodes)
        for logger in trainer.loggers:
            logger.log_metrics(self.metrics, step=trainer.global_step)
            logger.log_hyperparams({"energy_source": self.sources})
        if trainer.is_global_zero and self.out_dir:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / "energy.json").write_text(json.dumps({**self.metrics, "source": self.sources}, indent=2))

    def _report(self, gpu_joules: float, cpu_joules: float, devices: int) -> dict[str, float]:
        """kWh (total, GPU, CPU), device-hours, whether all of it was measured, and the cost where priced."""
        kwh = (gpu_joules + cpu_joules) / JOULES_PER_KWH
        device_hours = devices * self.seconds / 3600
        report = {
            "energy/kwh": kwh,
            "energy/gpu_kwh": gpu_joules / JOULES_PER_KWH,
            "energy/cpu_kwh": cpu_joules / JOULES_PER_KWH,
            "energy/device_hours": device_hours,
            "energy/measured": float(all(s.startswith("measured") for s in self.sources.values())),
        }
        if self.usd_per_kwh is not None or self.usd_per_device_hour is not None:
            report["cost/usd"] = kwh * (self.usd_per_kwh or 0.0) + device_hours * (self.usd_per_device_hour or 0.0)
        return report

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        now = time.monotonic()
        if now - self._last_poll >= self.poll_seconds:  # one clock read a step otherwise
            self._last_poll = now
            for meter in self.meters.values():
                meter.poll()

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start(trainer)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._stop(trainer, pl_module)

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start(trainer)

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._stop(trainer, pl_module)

    def summary(self) -> str:
        """One line for the end-of-run log, e.g. `0.00021 kWh (cpu estimated: 65 W x time), 0.0033 device-hours`."""
        if not self.metrics:
            return ""
        sources = ", ".join(f"{part} {source}" for part, source in self.sources.items())
        line = (
            f"{self.metrics['energy/kwh']:.3g} kWh ({sources}), {self.metrics['energy/device_hours']:.3g} device-hours"
        )
        if "cost/usd" in self.metrics:
            line += f", ${self.metrics['cost/usd']:.4g}"
        return line


def energy_summary(trainer: pl.Trainer) -> str:
    """The energy callback's summary line, or "" when the run has none."""
    return next((cb.summary() for cb in trainer.callbacks if isinstance(cb, EnergyCost)), "")
