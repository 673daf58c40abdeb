"""The GPU check: everything the template claims about GPUs, measured in one command that fits in 8 minutes.

    make gpu-check                                    # on a machine with CUDA GPUs, from the repository root
    make gpu-check WHEELS=wheels/ CIFAR10_DIR=cifar10-jpeg/   # + what is missing there, from a wheel folder
    GPU_CHECK_DRY=1 make gpu-check                    # the same sections with tiny sizes, on a CPU (a slow test)

Needs torch (>= 2.6), torchvision, lightning and torchmetrics already installed; with WHEELS=dir it installs the
packages of that folder that are not installed yet (scripts/gpu_wheels.sh prepares it), into a folder of its own,
and never touches what is installed. W&B is not needed: every run logs to CSV. Sections, cheapest and most
telling first, each in its own process with a time limit:
  1. the `gpu`-marked tests;
  2. host syncs: 50 training steps of the default configuration under `torch.cuda.set_sync_debug_mode("warn")`,
     the synchronising calls per step and where each comes from, the template's and Lightning's
     (scripts/sync_count.py; CUDA-only: a dry run trains the same steps and counts host reads instead);
  3. the benchmark's GPU table: ResNet-18 at 32x32, batch 512, fp32 with a DataLoader, then + bf16,
     + channels_last, + data on the device, + compile, each against the plain PyTorch loop with the same settings;
  4. `experiment=cifar10_fast` on CIFAR-10 from CIFAR10_DIR (a JPEG tree train/<class>/*.jpg + test/, the
     train.tar.gz + test.tar.gz archives of one, or torchvision's cifar-10-batches-py), with its test accuracy and
     the wall time from process start;
  5. with more than one GPU, DDP scaling on 1, 2, 4, ... GPUs.
Each run writes into a new folder, gpu-check/<date>_<time>/ (GPU_CHECK_OUT=dir: under dir), and points the link
gpu-check/latest at it, so a rerun (the one that counts after a fix) starts clean and the earlier figures stay. Every
figure goes to results.csv and results.md there as soon as it is measured, so a run cut short keeps what it
measured; the summary table is printed at the end. GPU_CHECK_BUDGET
sets the seconds shared among the sections (default 480).
"""

import argparse
import csv
import importlib.metadata
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROCESS_START = time.monotonic()
# Never installed from WHEELS: the GPU machine's own builds of these stay as they are.
PREINSTALLED = ("torch", "torchvision", "torchaudio", "triton", "lightning", "pytorch-lightning", "torchmetrics")
MIN_TORCH = (2, 6)
GPU_MARK = "pytest.mark.gpu"


@dataclass
class Row:
    """One measured figure."""

    section: str
    item: str
    value: str
    note: str = ""


class Results:
    """The figures so far, rewritten to OUT/results.csv and OUT/results.md after each one."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.rows: list[Row] = []
        out.mkdir(parents=True, exist_ok=True)

    def add(self, section: str, item: str, value: object, note: str = "") -> None:
        self.rows.append(Row(section, item, str(value), note))
        print(f"  {section:12} {item:52} {value!s:>14}  {note}", flush=True)
        self.write()

    def write(self) -> None:
        with open(self.out / "results.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["section", "item", "value", "note"])
            writer.writerows([r.section, r.item, r.value, r.note] for r in self.rows)
        (self.out / "results.md").write_text(self.table() + "\n")

    def table(self) -> str:
        lines = ["| section | item | value | note |", "|---|---|---|---|"]
        lines += [f"| {r.section} | {r.item} | {r.value} | {r.note} |" for r in self.rows]
        return "\n".join(lines)


def new_run_folder(root: Path) -> Path:
    """A new, empty folder for this run's figures under `root` (`<date>_<time>`, `_2`, ... when taken), with
    `root/latest` pointing at it; the folders of earlier runs are left as they are."""
    root.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    for n in range(1, 1000):
        folder = root / (stamp if n == 1 else f"{stamp}_{n}")
        try:
            folder.mkdir()
            break
        except FileExistsError:
            continue
    else:
        raise SystemExit(f"GPU check: no free run folder name under {root} for {stamp}")
    latest = root / "latest"
    if latest.is_symlink() or not latest.exists():
        latest.unlink(missing_ok=True)
        latest.symlink_to(folder.name, target_is_directory=True)
    return folder


def install_wheels(folder: Path, site: Path) -> list[str]:
    """Install into `site` the wheels of `folder` whose package is not installed here; never torch & co."""
    missing = []
    for wheel in sorted(folder.glob("*.whl")):
        name = wheel.name.split("-")[0].replace("_", "-").lower()
        if name in PREINSTALLED or name.startswith("nvidia-"):
            continue
        try:
            importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(wheel)
    if missing:
        command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", "--no-compile"]
        subprocess.run([*command, "--target", str(site), *map(str, missing)], check=True)
    return [w.name for w in missing]


def versions() -> dict[str, str]:
    """The versions the figures were measured with (a package that is missing shows as '-')."""
    import torch  # the preinstalled one: imported only now, after any wheels went in beside it

    found = {"python": sys.version.split()[0], "torch": torch.__version__, "cuda": str(torch.version.cuda)}
    found["cudnn"] = str(torch.backends.cudnn.version()) if torch.backends.cudnn.is_available() else "-"
    for name in ("torchvision", "lightning", "torchmetrics", "hydra-core", "omegaconf"):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "-"
    if torch.cuda.is_available():
        found["gpu"] = f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
        smi = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True, text=True
        )
        found["driver"] = smi.stdout.split("\n")[0].strip() if smi.returncode == 0 else "-"
    else:
        found["gpu"] = "none (CPU)"
    return found


def run(command: list[str], timeout: float, log: Path, env: dict[str, str]) -> tuple[int | None, float]:
    """Run `command` in the repository root with its output in `log`; (exit code or None on timeout, seconds)."""
    start = time.monotonic()
    with open(log, "w") as f:
        try:
            done = subprocess.run(command, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT, timeout=timeout)
            code: int | None = done.returncode
        except subprocess.TimeoutExpired:
            code = None
    return code, time.monotonic() - start


def outcome(code: int | None, seconds: float, log: Path) -> str:
    if code is None:
        return f"timed out after {seconds:.0f} s (see {log.name})"
    return "ok" if code == 0 else f"exit {code} (see {log.name})"


def gpu_tests(results: Results, out: Path, env: dict[str, str], timeout: float) -> None:
    """Section 1: the `gpu`-marked tests, one row per test."""
    report = out / "gpu_tests.xml"
    # Only the files that hold gpu tests: the others import packages a GPU machine need not have (W&B, Optuna).
    files = [str(p.relative_to(ROOT)) for p in sorted((ROOT / "tests").glob("test_*.py")) if GPU_MARK in p.read_text()]
    command = [sys.executable, "-m", "pytest", *files, "-m", "gpu", "-q", "-p", "no:cacheprovider"]
    command.append(f"--junitxml={report}")
    code, seconds = run(command, timeout, out / "gpu_tests.log", env)
    cases = ET.parse(report).getroot().iter("testcase") if report.is_file() else []
    for case in cases:
        state = "passed"
        for tag in ("failure", "error", "skipped"):
            if (found := case.find(tag)) is not None:
                state = {"failure": "FAILED", "error": "ERROR"}.get(tag, "skipped")
                state += f": {(found.get('message') or '').splitlines()[0][:120]}" if found.get("message") else ""
        results.add("gpu tests", case.get("name", "?"), f"{float(case.get('time', 0)):.1f} s", state)
    results.add("gpu tests", "all", f"{seconds:.0f} s", outcome(code, seconds, out / "gpu_tests.log"))


SYNC_STEPS = 50


def host_syncs(results: Results, out: Path, env: dict[str, str], timeout: float, dry: bool) -> None:
    """Section 2: the synchronising calls of 50 training steps of the default configuration, per step, by source."""
    folder = out / "syncs"
    command = [sys.executable, "scripts/sync_count.py", "--steps", str(SYNC_STEPS), "--out", str(folder), "logger=csv"]
    code, seconds = run(command, timeout, out / "syncs.log", env)
    report = folder / "syncs_rank0.json"
    record = json.loads(report.read_text()) if report.is_file() else None
    item = f"CUDA syncs per training step ({SYNC_STEPS} steps, default config)"
    if record is not None and record["counts"].startswith("CUDA"):
        kind = "sync"
        per_step = record["per_step"]
        note = f"template {per_step['template']:.2f}, Lightning's loop {per_step['lightning']:.2f}, other "
        note += f"{per_step['other']:.2f}; steps with a sync by the template: {len(record['steps_with']['template'])}"
        results.add("host syncs", item, f"{sum(per_step.values()):.2f}", note)
    else:  # a dry run on the CPU: nothing waits there; the same steps count the reads that would be syncs
        kind = "read"
        results.add("host syncs", item, "not measured", "CUDA-only (set_sync_debug_mode): a dry run on the CPU")
        if record is not None:
            per_step = record["per_step"]
            note = f"template {per_step['template']:.2f}, Lightning's loop {per_step['lightning']:.2f}, tensors kept "
            note += f"on the host on a GPU too (the optimizer's step counts: no sync there) {per_step['host']:.2f}"
            results.add("host syncs", "host reads per training step (CPU count)", f"{per_step['template']:.2f}", note)
    for whose, calls in (record or {}).get("calls", {}).items():
        for where, n in calls.items():
            results.add("host syncs", f"{whose}: {where}", f"{n / record['steps']:.2f} a step", f"{n} {kind}s")
    note = outcome(code, seconds, out / "syncs.log")
    results.add("host syncs", f"{SYNC_STEPS} training steps", f"{seconds:.0f} s", note)


def benchmark_rows(results: Results, section: str, table: Path) -> None:
    """One row per measured configuration of a benchmark.csv."""
    if not table.is_file():
        return
    with open(table) as f:
        for r in csv.DictReader(f):
            settings = [r["precision"], "NHWC" if r["channels_last"] == "True" else "", r["data"]]
            settings += ["compile" if r["compile"] == "True" else "", f"{r['devices']} dev", f"bs {r['batch_size']}"]
            item = f"{r['model']} {' '.join(s for s in settings if s)} {r['loop']}"
            note = []
            if r["lightning_over_pytorch"]:
                note.append(f"{r['lightning_over_pytorch']} of the plain loop")
            if r.get("overhead_ms_per_step"):
                note.append(f"{float(r['overhead_ms_per_step']):+.2f} ms a step")
            if r["speedup_vs_fp32_dataloader"]:
                note.append(f"{r['speedup_vs_fp32_dataloader']}x fp32+DataLoader")
            results.add(section, item, f"{r['samples_per_s']} samples/s", ", ".join(note))


def gpu_table(results: Results, out: Path, env: dict[str, str], timeout: float, dry: bool) -> None:
    """Section 3: the benchmark's GPU table, both loops side by side in one process."""
    folder = out / "benchmark"
    sizes = ["--warmup", "10", "--steps", "30", "--repeats", "2"]
    if dry:  # a CPU, a narrow network, a few steps
        sizes = ["--device", "cpu", "--batch-sizes", "16", "--warmup", "1", "--steps", "2", "--repeats", "1"]
        sizes += ["--set", "model.net.width=8", "data.num_train=128"]
    else:
        sizes += ["--device", "cuda", "--threads", str(min(os.cpu_count() or 1, 8))]
    command = [sys.executable, "scripts/benchmark.py", "--gpu-table", *sizes, "--out", str(folder)]
    code, seconds = run(command, timeout, out / "benchmark.log", env)
    benchmark_rows(results, "benchmark", folder / "benchmark.csv")
    results.add("benchmark", "GPU table", f"{seconds:.0f} s", outcome(code, seconds, out / "benchmark.log"))


def cifar10_overrides(folder: Path, scratch: Path) -> list[str]:
    """The `data=...` overrides that read CIFAR-10 from `folder`, in any of the layouts the check accepts."""
    if (folder / "train").is_dir() and (folder / "test").is_dir():
        workers = min(8, os.cpu_count() or 1)  # 60,000 JPEGs are decoded once, in parallel
        return ["data=cifar10_jpeg", f"data.data_dir={folder.resolve()}", f"data.num_workers={workers}"]
    if (folder / "train.tar.gz").is_file() and (folder / "test.tar.gz").is_file():
        for split in ("train", "test"):
            with tarfile.open(folder / f"{split}.tar.gz") as archive:
                archive.extractall(scratch, filter="data")
        return cifar10_overrides(scratch, scratch)
    if (folder / "cifar-10-batches-py").is_dir():
        return ["data=cifar10", f"data.data_dir={folder.resolve()}"]
    if folder.name == "cifar-10-batches-py" and folder.is_dir():
        return ["data=cifar10", f"data.data_dir={folder.resolve().parent}"]
    raise SystemExit(
        f"CIFAR10_DIR={folder} holds no CIFAR-10: expected train/ and test/ JPEG trees, train.tar.gz and "
        "test.tar.gz, or torchvision's cifar-10-batches-py"
    )


def last_metrics(metrics_csv: Path) -> dict[str, float]:
    """The last value of every metric in a CSV logger's metrics.csv."""
    values: dict[str, float] = {}
    if metrics_csv.is_file():
        with open(metrics_csv) as f:
            for row in csv.DictReader(f):
                values.update({k: float(v) for k, v in row.items() if v not in ("", None)})
    return values


def cifar10_fast(results: Results, out: Path, env: dict, timeout: float, data: list[str], dry: bool) -> None:
    """Section 4: the cifar10_fast recipe as a user runs it, timed from process start to exit."""
    run_dir = out / "cifar10_fast"
    overrides = ["experiment=cifar10_fast", "logger=csv", f"hydra.run.dir={run_dir}", *data]
    if dry:  # the recipe's code paths on a CPU, with tiny sizes
        overrides += ["trainer=cpu", "trainer.precision=32", "model.compile=false", "model.net.width=8"]
        overrides += ["trainer.max_epochs=1", "trainer.check_val_every_n_epoch=1", "data.batch_size=32"]
        overrides += ["trainer.limit_train_batches=4", "trainer.limit_val_batches=2", "trainer.limit_test_batches=2"]
    code, seconds = run([sys.executable, "train.py", *overrides], timeout, out / "cifar10_fast.log", env)
    metrics = last_metrics(run_dir / "csv" / "metrics.csv")
    source = next((o.split("=", 1)[1] for o in data if o.startswith("data=")), "cifar10")
    if "test/acc" in metrics:
        results.add("cifar10_fast", f"test/acc (data={source})", f"{metrics['test/acc']:.4f}")
    if "val/acc_best" in metrics:
        results.add("cifar10_fast", "val/acc_best", f"{metrics['val/acc_best']:.4f}")
    note = outcome(code, seconds, out / "cifar10_fast.log")
    results.add("cifar10_fast", "wall time from process start", f"{seconds:.1f} s", note)


def ddp_scaling(results: Results, out: Path, env: dict[str, str], timeout: float, dry: bool) -> None:
    """Section 5: samples/s on 1, 2, 4, ... GPUs (ResNet-18, bf16, channels_last, data on each device)."""
    import torch

    gpus = torch.cuda.device_count()
    if not dry and gpus < 2:
        results.add("ddp", "scaling", "skipped", f"{gpus} GPU visible: needs 2 or more")
        return
    folder = out / "ddp"
    if dry:  # two CPU processes
        counts, sizes = [1, 2], ["--device", "cpu", "--precision", "32", "--batch-sizes", "16", "--warmup", "1"]
        sizes += ["--steps", "2", "--set", "model.net.width=8", "data.num_train=128"]
    else:
        counts = [n for n in (1, 2, 4, 8, 16) if n <= gpus]
        sizes = ["--device", "cuda", "--precision", "bf16-mixed", "--channels-last", "on", "--batch-sizes", "512"]
        sizes += ["--warmup", "10", "--steps", "30"]
    command = [sys.executable, "scripts/benchmark.py", "--models", "resnet", "--data", "on_device"]
    command += ["--loops", "lightning", "--repeats", "1", "--devices", *map(str, counts), *sizes, "--out", str(folder)]
    code, seconds = run(command, timeout, out / "ddp.log", env)
    benchmark_rows(results, "ddp", folder / "benchmark.csv")
    results.add("ddp", "scaling", f"{seconds:.0f} s", outcome(code, seconds, out / "ddp.log"))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--wheels", type=Path, help="a folder of wheels for what is missing here (WHEELS=...)")
    p.add_argument("--cifar10", type=Path, help="CIFAR-10 (CIFAR10_DIR=...); without it, a dry run uses synthetic")
    default_out = Path(os.environ.get("GPU_CHECK_OUT", ROOT / "gpu-check"))
    p.add_argument("--out", type=Path, default=default_out, help="each run writes into a new folder under it")
    p.add_argument("--dry", action="store_true", default=os.environ.get("GPU_CHECK_DRY", "") not in ("", "0"))
    p.add_argument(
        "--budget", type=float, default=float(os.environ.get("GPU_CHECK_BUDGET", 8 * 60)),
        help="seconds for the whole check (GPU_CHECK_BUDGET; default 8 minutes)",
    )  # fmt: skip
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out = new_run_folder(args.out)
    results = Results(args.out)
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1", "HYDRA_FULL_ERROR": "1"}
    if args.dry:
        env["CUDA_VISIBLE_DEVICES"] = ""  # a dry run is the CPU's, even on a GPU machine
        env["OMP_NUM_THREADS"] = "1"
    if args.wheels:
        site = Path(tempfile.mkdtemp(prefix="gpu-check-site-"))
        installed = install_wheels(args.wheels, site)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), env.get("PYTHONPATH", "")) if p)
        sys.path.insert(0, str(site))
        results.add("setup", f"installed from {args.wheels}", len(installed), " ".join(installed))

    print(f"GPU check{' (dry run: CPU, tiny sizes)' if args.dry else ''}: writing {args.out}/", flush=True)
    found = versions()
    for name, version in found.items():
        results.add("versions", name, version)
    torch_version = tuple(int(x) for x in re.findall(r"\d+", found["torch"])[:2])
    if torch_version < MIN_TORCH:
        results.add("versions", "torch too old", found["torch"], "the template needs torch >= 2.6")
        return 1
    if not args.dry and found["gpu"] == "none (CPU)":
        print("No CUDA GPU is visible: run it on a GPU machine, or GPU_CHECK_DRY=1 for the dry run", file=sys.stderr)
        return 1
    scratch = Path(tempfile.mkdtemp(prefix="gpu-check-data-"))
    if args.cifar10:
        data = cifar10_overrides(args.cifar10, scratch)
    elif args.dry:
        data = ["data=synthetic", "data.num_train=256", "data.num_val=64", "data.num_test=64"]
    else:
        raise SystemExit("CIFAR10_DIR=<folder> is needed for the cifar10_fast section (see scripts/gpu_check.py)")

    # Each section's share of the budget; a section that runs over is stopped, and the next one starts.
    def left(share: float) -> float:
        return max(30.0, min(share * args.budget, args.budget - (time.monotonic() - PROCESS_START) - 10))

    print("1. gpu-marked tests", flush=True)
    gpu_tests(results, args.out, env, left(0.25))
    print(f"2. host syncs: {SYNC_STEPS} training steps of the default configuration", flush=True)
    host_syncs(results, args.out, env, left(0.08), args.dry)
    print("3. benchmark: ResNet-18, 32x32, batch 512", flush=True)
    gpu_table(results, args.out, env, left(0.35), args.dry)
    print("4. cifar10_fast", flush=True)
    cifar10_fast(results, args.out, env, left(0.3), data, args.dry)
    print("5. DDP scaling", flush=True)
    ddp_scaling(results, args.out, env, left(0.1), args.dry)
    results.add("total", "wall time", f"{time.monotonic() - PROCESS_START:.0f} s")

    print(f"\nGPU check summary ({args.out}/results.md):\n\n{results.table()}")
    failed = [r for r in results.rows if r.note.startswith(("FAILED", "ERROR", "exit", "timed out"))]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
