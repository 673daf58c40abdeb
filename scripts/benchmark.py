"""Training throughput: the template's Lightning path against a plain PyTorch loop, across settings.

    python scripts/benchmark.py --quick --out bench/       # cnn, rnn, resnet18 on this CPU in under 2 minutes
    python scripts/benchmark.py --device cpu cuda --precision 32 bf16-mixed --compile off on \\
        --channels-last off on --data dataloader on_device --dataset synthetic --out bench/
    python scripts/benchmark.py --device cuda --devices 1 2 4 --loops lightning --out bench/   # DDP scaling
    python scripts/benchmark.py --gpu-table --out bench/   # ResNet-18 bs 512: fp32, +bf16, +NHWC, +data, +compile

Every combination asked for is trained for `--warmup` + `--steps` steps; each step after the warm-up is
timed (GPU work synchronised at step boundaries) and a run's figure is its median step's samples/s, which
shared machines disturb far less than a total. Each Lightning configuration with one device is paired with
a hand-written loop (same network, data, optimizer, schedule, precision, and the same bookkeeping: running
accuracy, loss read every `log_every_n_steps`), run alternately `--repeats` times; the best of each is kept. Writes
DIR/benchmark.csv and DIR/benchmark.md after each configuration (a run cut short keeps what it measured), and
DIR/speedup.png (speed-up over fp32 on the CPU) at the end.
"""

import argparse
import csv
import functools
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import asdict, dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import lightning.pytorch as pl  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from hydra.utils import instantiate  # noqa: E402
from lightning.pytorch.callbacks import Callback  # noqa: E402
from omegaconf import DictConfig  # noqa: E402
from torchmetrics import Metric, MetricCollection  # noqa: E402
from torchmetrics.classification import MulticlassAccuracy  # noqa: E402

from src.callbacks.throughput import ThroughputMonitor  # noqa: E402
from src.machinery.config.schemas import compose_config  # noqa: E402
from src.machinery.serving.device_batches import DeviceBatches  # noqa: E402
from src.train import build  # noqa: E402

MODELS = {"cnn": ["model=cnn"], "rnn": ["model=rnn"], "resnet": ["model=resnet", "model.net.depth=18"]}
DATASETS = {
    "digits": ["data=digits"],
    "synthetic": ["data=synthetic", "data.num_train=8192", "data.image_size=32", "data.in_channels=3"],
}
AUTOCAST = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}
EXTRA_OVERRIDES: list[str] = []  # --set: train.py overrides for every run (e.g. a smaller network for a dry run)


@dataclass(frozen=True)
class Spec:
    """One measured configuration."""

    model: str
    dataset: str
    device: str
    precision: str
    compile: bool
    channels_last: bool
    data: str  # dataloader | on_device
    devices: int
    batch_size: int


def overrides(spec: Spec, steps: int) -> list[str]:
    """The train.py overrides that configure `spec` for a throughput run (no validation, no W&B)."""
    return [
        *MODELS[spec.model],
        *DATASETS[spec.dataset],
        f"data.batch_size={spec.batch_size}",
        f"data.on_device={spec.data == 'on_device'}",
        f"model.compile={spec.compile}",
        f"model.channels_last={spec.channels_last}",
        f"trainer.accelerator={'gpu' if spec.device == 'cuda' else 'cpu'}",
        f"trainer.devices={spec.devices}",
        f"trainer.precision={spec.precision}",
        f"trainer.max_steps={steps}",
        "trainer.max_epochs=null",
        "trainer.limit_val_batches=0",
        "trainer.num_sanity_val_steps=0",
        "trainer.enable_progress_bar=false",
        "callbacks.progress=null",
        "callbacks.model_summary=null",
        "logger=csv",
        *EXTRA_OVERRIDES,
    ]


def lightning_samples_per_s(spec: Spec, warmup: int, steps: int, extra: list[str] = ()) -> float:
    """The template's own path: train.py's config and build(), timed by a callback."""
    with tempfile.TemporaryDirectory() as out:
        if spec.devices > 1:
            return ddp_samples_per_s(spec, warmup, steps, out)
        cfg = compose_config("train", [*overrides(spec, warmup + steps + 1), *extra], out)
        monitor = ThroughputMonitor(warmup_steps=warmup)
        run = build(cfg, callbacks=[monitor], enable_model_summary=False)
        run.trainer.fit(run.module, datamodule=run.datamodule)
        return monitor.median_samples_per_s


def ddp_samples_per_s(spec: Spec, warmup: int, steps: int, out: str) -> float:
    """Several devices: train.py in a subprocess (DDP re-launches the script per rank)."""
    args = [
        *overrides(spec, warmup + steps + 1),
        "trainer.strategy=ddp",
        "+callbacks.throughput._target_=src.callbacks.throughput.ThroughputMonitor",
        f"+callbacks.throughput.warmup_steps={warmup}",
        f"hydra.run.dir={out}",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    done = subprocess.run([sys.executable, str(ROOT / "train.py"), *args], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"DDP run failed:\n{done.stderr[-3000:]}")
    with open(Path(out) / "csv" / "metrics.csv") as f:
        values = [float(row["train/samples_per_s"]) for row in csv.DictReader(f) if row.get("train/samples_per_s")]
    return values[-1]


def pytorch_samples_per_s(spec: Spec, warmup: int, steps: int, extra: list[str] = ()) -> float:
    """A plain loop over the same network, data, optimizer and schedule, written by hand."""
    with tempfile.TemporaryDirectory() as out:
        cfg = compose_config("train", [*overrides(spec, warmup + steps + 1), *extra], out)
    torch.manual_seed(0)
    device = torch.device(spec.device)
    dm = instantiate(cfg.data, on_device=False)
    dm.setup()
    if spec.data == "on_device":
        images, labels = (t.to(device) for t in dm.splits["train"])
        batches = DeviceBatches(images, labels, spec.batch_size, shuffle=True)
    else:
        batches = dm.train_dataloader()
    net = instantiate(cfg.model.net).to(device)
    if spec.channels_last:
        net = net.to(memory_format=torch.channels_last)
    if spec.compile:
        net.compile()
    optimizer = instantiate(cfg.optimizer)(params=net.parameters())
    scheduler = instantiate(cfg.scheduler)(optimizer, total_steps=warmup + steps + 1)
    scaler = torch.amp.GradScaler(device.type, enabled=spec.precision == "16-mixed")
    dtype = AUTOCAST.get(spec.precision)
    net.train()

    def sync() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter()

    # The bookkeeping any real loop does, and the template does too: running train accuracy, and the
    # loss read back (a device sync) every `log_every_n_steps` steps for logging.
    log_every = cfg.trainer.log_every_n_steps
    correct = torch.zeros((), dtype=torch.long, device=device)
    step, rates = 0, []
    while step < warmup + steps + 1:
        last = None  # the first step of each epoch is not timed (as in ThroughputMonitor)
        for x, y in batches:
            x, y = dm.transform((x.to(device, non_blocking=True), y.to(device, non_blocking=True)), train=True)
            if spec.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                logits = net(x)
                loss = F.cross_entropy(logits, y, label_smoothing=cfg.model.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            correct += (logits.detach().argmax(1) == y).sum()
            step += 1
            if step % log_every == 0:
                loss.item()
            if step > warmup:
                now = sync()
                if last is not None:
                    rates.append(len(y) / (now - last))
                last = now
            if step >= warmup + steps + 1:
                break
    return statistics.median(rates)


class DefaultsModule(pl.LightningModule):
    """A LightningModule written the usual way, for comparison: the loss and a torchmetrics accuracy
    (with its default input checks) logged on every step."""

    def __init__(self, net: torch.nn.Module, cfg: DictConfig) -> None:
        super().__init__()
        self.net, self.cfg = net, cfg
        self.train_acc = MulticlassAccuracy(cfg.data.num_classes)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        logits = self.net(x)
        loss = F.cross_entropy(logits, y, label_smoothing=self.cfg.model.label_smoothing)
        self.train_acc(logits, y)
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/acc", self.train_acc, on_step=True, on_epoch=True)
        return loss

    def configure_optimizers(self) -> dict:
        optimizer = instantiate(self.cfg.optimizer)(params=self.parameters())
        scheduler = instantiate(self.cfg.scheduler)(optimizer, total_steps=self.trainer.max_steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def lightning_defaults_samples_per_s(spec: Spec, warmup: int, steps: int, extra: list[str] = ()) -> float:
    """The same network and data in `DefaultsModule` under a Trainer left at Lightning's defaults
    (progress bar, TensorBoard logger every 50 steps, checkpointing, NVML device checks)."""
    with tempfile.TemporaryDirectory() as out:
        cfg = compose_config("train", [*overrides(spec, warmup + steps + 1), *extra], out)
        pl.seed_everything(0)
        monitor = ThroughputMonitor(warmup_steps=warmup)
        trainer = pl.Trainer(
            accelerator=cfg.trainer.accelerator, devices=1, precision=spec.precision, max_steps=warmup + steps + 1,
            limit_val_batches=0, num_sanity_val_steps=0, callbacks=[monitor], default_root_dir=out,
        )  # fmt: skip
        os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] = "1"  # as `import lightning` leaves it
        try:
            with open(os.devnull, "w") as sink, redirect_stdout(sink), redirect_stderr(sink):  # the progress bar
                trainer.fit(DefaultsModule(instantiate(cfg.model.net), cfg), datamodule=instantiate(cfg.data))
        finally:
            os.environ.pop("PYTORCH_NVML_BASED_CUDA_CHECK", None)
        return monitor.median_samples_per_s


# The parts of a training step the plain loop has too; the others are the template's (and Lightning's) own work.
SHARED_PARTS = ("data loading", "forward (the network)", "backward", "optimizer step, zero_grad, LR")
PER_STEP_HOOKS = (
    "on_train_batch_start", "on_train_batch_end", "on_before_backward", "on_after_backward",
    "on_before_optimizer_step", "on_before_zero_grad",
)  # fmt: skip
LIGHTNING_LOOP = "Lightning's loop (the rest)"


class StepProfile(Callback):
    """Where the time of each training step after `warmup_steps` goes, part by part (`--profile`).

    Wrappers around each part read the wall clock as it starts and ends; a part called inside another takes its own
    time out of the outer one (the forward inside `training_step`, the closure inside the optimizer step), so the
    parts add up to the step. What no part takes is Lightning's own loop (its hook calls, its result collection and
    progress-bar values, the closure's bookkeeping). Timed like ThroughputMonitor: from one step's
    `on_train_batch_end` to the next, an epoch's first step left out. The wrappers cost about a microsecond each.
    """

    def __init__(self, warmup_steps: int) -> None:
        self.warmup_steps = warmup_steps
        self.parts: Counter[str] = Counter()  # seconds of each part over the timed steps
        self.seconds = 0.0
        self.steps = 0
        self._pending: Counter[str] = Counter()  # the current step's
        self._stack: list[str] = []
        self._mark = 0.0
        self._start: float | None = None
        self._sync = False
        self._undo: list[Callable[[], None]] = []
        self._timed_classes: set[type] = set()

    def _enter(self, part: str) -> None:
        now = time.perf_counter()
        if self._stack:
            self._pending[self._stack[-1]] += now - self._mark
        self._stack.append(part)
        self._mark = now

    def _leave(self) -> None:
        now = time.perf_counter()
        self._pending[self._stack.pop()] += now - self._mark
        self._mark = now

    def timed(self, part: str, function: Callable) -> Callable:
        @functools.wraps(function)  # and its attributes: torch's LR scheduler marks the optimizer's step
        def timed(*args, **kwargs):
            self._enter(part)
            try:
                return function(*args, **kwargs)
            finally:
                self._leave()

        return timed

    def wrap(self, owner: object, name: str, part: str) -> None:
        """Time `owner.name` (an instance's attribute, or a class's) as `part` until training ends."""
        original, own = getattr(owner, name), name in vars(owner)
        setattr(owner, name, self.timed(part, original))
        self._undo.append((lambda: setattr(owner, name, original)) if own else (lambda: delattr(owner, name)))

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._sync = trainer.strategy.root_device.type == "cuda"  # GPU work is asynchronous: steps end synchronised
        datamodule = trainer.datamodule
        for hook in ("transfer_batch_to_device", "on_after_batch_transfer"):
            self.wrap(datamodule, hook, "data transfer and transform (the template's)")
        self.wrap(pl_module.net, "forward", SHARED_PARTS[1])
        self.wrap(pl_module, "training_step", "training_step (the loss and the rest)")
        self.wrap(pl_module, "backward", SHARED_PARTS[2])
        for module in pl_module.modules():
            if isinstance(module, (Metric, MetricCollection)):
                self.wrap(module, "update", "metrics (torchmetrics updates)")
        for name in ("log", "log_dict"):
            self.wrap(pl_module, name, "logging (self.log, the loggers)")
        for logger in trainer.loggers:
            for name in ("log_metrics", "save"):
                self.wrap(logger, name, "logging (self.log, the loggers)")
        for optimizer in trainer.optimizers:
            self._wrap_step(optimizer)
            self.wrap(type(optimizer), "zero_grad", SHARED_PARTS[3])  # Lightning calls it on its own wrapper class
        for config in trainer.lr_scheduler_configs:
            self.wrap(type(config.scheduler), "step", SHARED_PARTS[3])  # its instance's __dict__ goes in checkpoints
        for callback in trainer.callbacks:
            if callback is self:
                continue
            for hook in PER_STEP_HOOKS:
                if getattr(type(callback), hook) is not getattr(Callback, hook):  # a hook it has: not a no-op
                    self.wrap(callback, hook, f"callback {type(callback).__name__}")

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        # Lightning takes the first epoch's iterator before on_train_start: the loader is caught as it is made.
        make_loader = trainer.datamodule.train_dataloader

        def train_dataloader():
            loader = make_loader()
            self._time_batches(type(loader))
            return loader

        self.wrap(trainer.datamodule, "train_dataloader", SHARED_PARTS[0])  # for its undo; replaced just below
        trainer.datamodule.train_dataloader = train_dataloader

    def _time_batches(self, loader_class: type) -> None:
        """Each batch the training loader's iterators hand out (a DataLoader's, or the batches kept on the device),
        timed from the request to the batch; the class's `__iter__` is restored when training ends."""
        if loader_class in self._timed_classes:
            return
        self._timed_classes.add(loader_class)
        iterate = loader_class.__iter__

        def timed_iter(loader):
            batches = iterate(loader)
            while True:
                self._enter(SHARED_PARTS[0])
                try:
                    batch = next(batches)
                except StopIteration:
                    return
                finally:
                    self._leave()
                yield batch

        loader_class.__iter__ = timed_iter
        self._undo.append(lambda: setattr(loader_class, "__iter__", iterate))

    def _wrap_step(self, optimizer: torch.optim.Optimizer) -> None:
        """The optimizer's step, less the closure it runs (forward, backward and their hooks): the closure's own
        bookkeeping is Lightning's loop."""
        step = optimizer.step

        @functools.wraps(step)
        def step_with_timed_closure(closure=None, **kwargs):
            return step(closure=self.timed(LIGHTNING_LOOP, closure) if closure is not None else None, **kwargs)

        self.wrap(optimizer, "step", SHARED_PARTS[3])  # for its undo; the step itself, replaced just below
        optimizer.step = self.timed(SHARED_PARTS[3], step_with_timed_closure)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if self._sync:  # on a GPU the parts are the host's time, and what the GPU still had to do is a part of its own
            self._enter("waiting for the GPU at the step's end")
            torch.cuda.synchronize()
            self._leave()
        now = time.perf_counter()
        if self._start is not None and trainer.global_step > self.warmup_steps:
            self.parts.update(self._pending)
            self.seconds += now - self._start
            self.steps += 1
        self._pending.clear()
        self._start = now

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = None  # epoch-end work is not a step's

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        while self._undo:
            self._undo.pop()()

    def table(self) -> list[tuple[str, float]]:
        """(part, ms per step) from the largest, Lightning's loop (what no part took) last."""
        per_step = {part: 1000 * seconds / self.steps for part, seconds in self.parts.items()}
        rest = 1000 * self.seconds / self.steps - sum(per_step.values())  # the closure's bookkeeping + the rest
        loop = per_step.pop(LIGHTNING_LOOP, 0.0) + rest
        return [*sorted(per_step.items(), key=lambda kv: -kv[1]), (LIGHTNING_LOOP, loop)]


def profile(spec: Spec, warmup: int, steps: int, repeats: int) -> str:
    """Where the template's time per step goes on `spec`, beside its overhead over the plain loop (both loops
    unprofiled, alternating, in this process)."""
    with tempfile.TemporaryDirectory() as out:
        cfg = compose_config("train", overrides(spec, warmup + steps + 1), out)
        parts = StepProfile(warmup)
        run = build(cfg, callbacks=[parts], enable_model_summary=False)
        run.trainer.fit(run.module, datamodule=run.datamodule)
    template, plain = 0.0, 0.0
    for _ in range(repeats):
        template = max(template, lightning_samples_per_s(spec, warmup, steps))
        plain = max(plain, pytorch_samples_per_s(spec, warmup, steps))
    template_ms, plain_ms = 1000 * spec.batch_size / template, 1000 * spec.batch_size / plain
    profiled_ms = 1000 * parts.seconds / parts.steps
    row = format_row({**asdict(spec), "loop": "lightning", "samples_per_s": template})
    lines = [
        f"Profile of the template's training step: {row}",
        f"{parts.steps} steps timed part by part (mean ms a step; a part called inside another takes its own time "
        "out of it)",
        "",
        "| part | ms a step | share | in the plain loop too |",
        "|---|---|---|---|",
    ]
    for part, ms in parts.table():
        shared = "yes" if part in SHARED_PARTS else ("the loss" if part.startswith("training_step") else "no")
        lines.append(f"| {part} | {ms:.3f} | {ms / profiled_ms:.0%} | {shared} |")
    ours = sum(ms for part, ms in parts.table() if part not in SHARED_PARTS)
    lines += [
        f"| **step, profiled** | {profiled_ms:.3f} | 100% | |",
        "",
        f"Unprofiled, median step, best of {repeats} alternating runs: template {template_ms:.3f} ms, plain loop "
        f"{plain_ms:.3f} ms: overhead {template_ms - plain_ms:+.3f} ms a step ({plain / template:.2f}x the plain "
        f"loop's time); the parts the plain loop does not have take {ours:.3f} ms a step here.",
    ]
    return "\n".join(lines)


LOOPS = {
    "lightning": lightning_samples_per_s,
    "pytorch": pytorch_samples_per_s,
    "lightning_defaults": lightning_defaults_samples_per_s,
}


def valid(spec: Spec) -> bool:
    if spec.device == "cpu" and spec.precision == "16-mixed":
        return False  # float16 autocast is a GPU feature; bf16-mixed is the CPU's mixed precision
    if spec.model == "rnn" and spec.channels_last:
        return False  # no convolutions to reorder
    return not (spec.device == "cuda" and not torch.cuda.is_available())


def measure(
    specs: list[Spec], loops_for: Callable, steps_for: dict, repeats: int, measured: Callable | None = None
) -> list[dict]:
    """Best samples/s of each loop for each spec; the loops alternate so they share the machine's moods.

    `steps_for` maps a model (or "default") to its (warm-up steps, timed steps); `measured(rows)` is called
    after each spec.
    """
    rows = []
    for spec in specs:
        warmup, steps = steps_for.get(spec.model, steps_for["default"])
        loops = [loop for loop in loops_for(spec) if loop == "lightning" or spec.devices == 1]
        best = dict.fromkeys(loops, 0.0)
        for _ in range(repeats):
            for loop in loops:
                best[loop] = max(best[loop], LOOPS[loop](spec, warmup, steps))
        for loop, value in best.items():
            rows.append({**asdict(spec), "loop": loop, "samples_per_s": round(value, 1), "steps": steps})
            print(format_row(rows[-1]), flush=True)
        add_ratios(rows)
        if measured is not None:
            measured(rows)
    return rows


def add_ratios(rows: list[dict]) -> None:
    """lightning/pytorch for each pair; speed-up over the same model in fp32 with a DataLoader on the same device,
    and over the same model on the CPU in fp32."""
    key = lambda r, **kw: tuple({**r, **kw}[k] for k in Spec.__dataclass_fields__)  # noqa: E731
    by_key = {(key(r), r["loop"]): r["samples_per_s"] for r in rows}
    for r in rows:
        plain = by_key.get((key(r), "pytorch"))
        r["lightning_over_pytorch"] = round(r["samples_per_s"] / plain, 3) if r["loop"] != "pytorch" and plain else ""
        # The same pair per step: the median step's time, this loop's minus the plain loop's, in milliseconds.
        r["overhead_ms_per_step"] = (
            round(1000 * r["batch_size"] * (1 / r["samples_per_s"] - 1 / plain), 3)
            if r["loop"] != "pytorch" and plain
            else ""
        )
        plain_fp32 = by_key.get(
            (key(r, precision="32", compile=False, channels_last=False, data="dataloader", devices=1), r["loop"])
        )
        r["speedup_vs_fp32_dataloader"] = round(r["samples_per_s"] / plain_fp32, 2) if plain_fp32 else ""
        base = by_key.get(
            (
                key(r, device="cpu", precision="32", compile=False, channels_last=False, data="dataloader", devices=1),
                r["loop"],
            )
        )
        r["speedup_vs_cpu_fp32"] = round(r["samples_per_s"] / base, 2) if base else ""


def format_row(r: dict) -> str:
    return (
        f"{r['model']:7} {r['dataset']:9} {r['device']:5} {r['precision']:>10} compile={r['compile']!s:5} "
        f"cl={r['channels_last']!s:5} {r['data']:10} dev={r['devices']} bs={r['batch_size']:<4} "
        f"{r['loop']:9} {r['samples_per_s']:>10.1f} samples/s"
    )


COLUMNS = [
    *Spec.__dataclass_fields__,
    "loop",
    "samples_per_s",
    "lightning_over_pytorch",
    "overhead_ms_per_step",
    "speedup_vs_fp32_dataloader",
    "speedup_vs_cpu_fp32",
]


def write_tables(rows: list[dict], out: Path, threads: int) -> str:
    """DIR/benchmark.csv and DIR/benchmark.md; returns the markdown table."""
    out.mkdir(parents=True, exist_ok=True)
    columns = COLUMNS
    with open(out / "benchmark.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[*columns, "steps", "threads"])
        writer.writeheader()
        writer.writerows({**r, "threads": threads} for r in rows)
    lines = [
        f"torch {torch.__version__}, {threads} CPU thread(s), "
        f"{torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU'}",
        "",
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
        *("| " + " | ".join(str(r[c]) for c in columns) + " |" for r in rows),
    ]
    table = "\n".join(lines)
    (out / "benchmark.md").write_text(table + "\n")
    return table


def write_outputs(rows: list[dict], out: Path, threads: int) -> None:
    print("\n" + write_tables(rows, out, threads))
    draw_chart(rows, out / "speedup.png")


def draw_chart(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bars = [r for r in rows if r["loop"] == "lightning" and r["speedup_vs_cpu_fp32"] != ""]
    if not bars:
        return
    labels = [
        f"{r['model']} bs{r['batch_size']} {r['device']} {r['precision']}"
        + (" compile" if r["compile"] else "")
        + (" NHWC" if r["channels_last"] else "")
        + (" on-dev" if r["data"] == "on_device" else "")
        + (f" x{r['devices']}" if r["devices"] > 1 else "")
        for r in bars
    ]
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(bars) + 1.2))
    ax.barh(labels, [r["speedup_vs_cpu_fp32"] for r in bars], color="tab:blue")
    ax.axvline(1.0, color="grey", lw=1)
    ax.invert_yaxis()
    ax.set_xlabel("training throughput relative to fp32 on the CPU (same model and batch size)")
    ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    on_off = {"on": True, "off": False}
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="cnn, rnn, resnet18 on digits, CPU, bs 64/256 (< 2 min)")
    p.add_argument(
        "--gpu-table", action="store_true",
        help="ResNet-18 at 32x32, batch 512, on --device: fp32 + DataLoader, then + bf16, + channels_last, "
        "+ data on the device, + compile (with --batch-sizes, --warmup, --steps, --repeats, --set as given)",
    )  # fmt: skip
    p.add_argument(
        "--profile", action="store_true",
        help="where the template's time per step goes (Lightning's loop, each callback, logging, metrics, forward, "
        "backward, optimizer, data) for each configuration of the grid, beside its overhead over the plain loop; "
        "e.g. --profile --models rnn --dataset digits --batch-sizes 64",
    )  # fmt: skip
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="train.py overrides for every run")
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--dataset", default="synthetic", choices=list(DATASETS))
    p.add_argument("--device", nargs="+", default=["cpu"], choices=["cpu", "cuda"])
    p.add_argument("--precision", nargs="+", default=["32"], choices=["32", "bf16-mixed", "16-mixed"])
    p.add_argument("--compile", nargs="+", default=["off"], choices=list(on_off))
    p.add_argument("--channels-last", nargs="+", default=["off"], choices=list(on_off))
    p.add_argument("--data", nargs="+", default=["dataloader"], choices=["dataloader", "on_device"])
    p.add_argument("--devices", nargs="+", type=int, default=[1])
    p.add_argument("--batch-sizes", nargs="+", type=int, default=None, help="default: 256 (512: --gpu-table)")
    p.add_argument(
        "--loops", nargs="+", default=["lightning", "pytorch"], choices=["lightning", "pytorch", "lightning_defaults"]
    )
    p.add_argument("--warmup", type=int, default=10, help="untimed steps first")
    p.add_argument("--steps", type=int, default=50, help="timed steps")
    p.add_argument("--repeats", type=int, default=3, help="alternating runs per loop; the best is kept")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (pinned, reported)")
    p.add_argument("--out", type=Path, default=Path("bench"))
    args = p.parse_args(argv)
    args.compile = [on_off[v] for v in args.compile]
    args.channels_last = [on_off[v] for v in args.channels_last]
    return args


def quick_plan() -> tuple[list[Spec], Callable, dict]:
    """The CPU table: fp32 with both data paths, and bf16-mixed, for each family at batch 64 and 256;
    Lightning's defaults too where steps are short enough for per-step overhead to show."""
    base = [Spec(m, "digits", "cpu", "32", False, False, "dataloader", 1, bs) for m in MODELS for bs in (64, 256)]
    specs = base + [replace(s, data="on_device") for s in base]
    specs += [replace(s, precision="bf16-mixed") for s in base if s.batch_size == 256]

    def loops_for(spec: Spec) -> list[str]:
        with_defaults = spec in base and spec.model != "resnet"
        return ["lightning", "pytorch"] + (["lightning_defaults"] if with_defaults else [])

    return specs, loops_for, {"default": (3, 20), "rnn": (3, 50), "resnet": (2, 4)}


def gpu_table_plan(device: str, batch_size: int) -> list[Spec]:
    """ResNet-18 on 32x32 images, each setting added to the ones before it: fp32 with a DataLoader, bf16 mixed
    precision, channels_last, the data set kept on the device, torch.compile."""
    fp32 = Spec("resnet", "synthetic", device, "32", False, False, "dataloader", 1, batch_size)
    bf16 = replace(fp32, precision="bf16-mixed")
    nhwc = replace(bf16, channels_last=True)
    on_device = replace(nhwc, data="on_device")
    return [fp32, bf16, nhwc, on_device, replace(on_device, compile=True)]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    EXTRA_OVERRIDES[:] = args.set
    if args.gpu_table:
        specs = gpu_table_plan(args.device[0], (args.batch_sizes or [512])[0])
        steps_for = {"default": (args.warmup, args.steps)}

        def loops_for(spec: Spec) -> list[str]:
            return args.loops

    elif args.quick:
        specs, loops_for, steps_for = quick_plan()
        args.repeats = 2
    else:
        grid = itertools.product(
            args.models, [args.dataset], args.device, args.precision, args.compile, args.channels_last,
            args.data, args.devices, args.batch_sizes or [256],
        )  # fmt: skip
        specs = [s for s in (Spec(*combo) for combo in grid) if valid(s)]
        steps_for = {"default": (args.warmup, args.steps)}

        def loops_for(spec: Spec) -> list[str]:
            return args.loops

    if args.profile:
        reports = [profile(spec, args.warmup, args.steps, args.repeats) for spec in specs]
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "profile.md").write_text("\n\n".join(reports) + "\n")
        print("\n\n".join(reports) + f"\n\nwrote {args.out}/profile.md")
        return
    start = time.perf_counter()
    rows = measure(specs, loops_for, steps_for, args.repeats, lambda rows: write_tables(rows, args.out, args.threads))
    write_outputs(rows, args.out, args.threads)
    print(f"\n{len(rows)} measurements in {time.perf_counter() - start:.0f} s; wrote {args.out}/benchmark.csv")


if __name__ == "__main__":
    # Lightning's INFO lines (GPU available, ...) for every configuration would bury the table.
    import logging

    logging.getLogger("lightning").setLevel(logging.WARNING)
    os.environ.setdefault("WANDB_MODE", "disabled")
    main()
