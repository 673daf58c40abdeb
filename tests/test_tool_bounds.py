"""Every read of a run folder by the tools is bounded: crafted config.yaml and metrics.csv files (deep nesting, many
nodes, aliases, a 200 MB CSV, a flood of cells, a FIFO) are refused or skipped in one line, quickly and in little
memory, and the refusal names the file, its value, the bound and the flag that raises it."""

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from src.machinery.tracking.secrets import redact_hydra_records
from tests.conftest import ROOT, run_script

SECONDS, MIB = 30, 1024  # the bounds every crafted input must stay within: 30 s, 1 GB of peak memory


# Runs a script and, at its exit, writes its peak resident memory (VmHWM: this process's own, where getrusage's
# maxrss would include the forking test process's memory) to the file named first.
PEAK = """import atexit, runpy, sys
peak_file, script = sys.argv[1:3]
def report():
    hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM"))
    open(peak_file, "w").write(hwm.split()[1])  # kB
atexit.register(report)
sys.argv = sys.argv[2:]
runpy.run_path(script, run_name="__main__")
"""


def bounded_run(script: str, *args: str, cwd: Path) -> tuple[int, list[str], float, float]:
    """Run `python <script> <args>` and return its exit code, the non-blank lines it printed (stdout and stderr),
    its wall time (s) and its peak resident memory (MiB)."""
    peak = cwd / ".bounded_run.peak"
    start = time.monotonic()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", PEAK, str(peak), script, *args], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=3 * SECONDS,
    )  # fmt: skip
    seconds = time.monotonic() - start
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    megabytes = int(peak.read_text()) / 1024
    peak.unlink()
    return done.returncode, lines, seconds, megabytes


def compare(folder: Path, *flags: str) -> tuple[int, list[str], float, float]:
    return bounded_run(str(ROOT / "scripts" / "compare_runs.py"), str(folder), *flags, cwd=folder)


def run_folder(root: Path, config: str = "a: 1\n", metrics: str = "epoch,step,val/acc\n0,10,0.5\n") -> Path:
    folder = root / "run"
    (folder / "csv").mkdir(parents=True)
    (folder / "config.yaml").write_text(config)
    (folder / "csv" / "metrics.csv").write_text(metrics)
    return folder


def nested(depth: int) -> str:
    return "a: " + "[" * depth + "]" * depth + "\n"


REFUSED = {  # a crafted file, what it holds, and the words its refusal must have (the value and the bound or flag)
    "deep_yaml": ("config.yaml", nested(100_000), ["nested over 64 levels", "--max-yaml-depth"]),
    "many_nodes": ("config.yaml", "a: [" + "0, " * 2_000_000 + "0]\n", ["over 100,000 YAML nodes", "--max-yaml-nodes"]),
    "aliases": ("config.yaml", "a: &a [x, x]\nb: [*a, *a]\n", ["YAML alias (*a)"]),
    "big_config": ("config.yaml", None, ["over the bound of 16,777,216 bytes", "--max-mib"]),
    "big_metrics": ("csv/metrics.csv", None, ["over the bound of 16 MiB", "--max-mib"]),
    "many_cells": ("csv/metrics.csv", "a,b,c,d\n" + "0,1,2,3\n" * 1_500_001, ["over 5,000,000 cells", "--max-cells"]),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_compare_runs_refuses_unbounded_files_in_one_line_quickly(tmp_path, case):
    name, content, words = REFUSED[case]
    folder = run_folder(tmp_path)
    path = folder / name
    if content is None:  # 200 MB, written in no time: a sparse file (its size is all that is looked at)
        with open(path, "wb") as f:
            f.truncate(200 << 20)
    else:
        path.write_text(content)
    code, lines, seconds, peak = compare(tmp_path)
    assert code == 1 and len(lines) == 1, lines[-5:]
    assert lines[0].startswith(f"Error: {path}: ") and "refused" in lines[0] and "Traceback" not in lines[0]
    assert all(word in lines[0] for word in words), lines[0]
    assert seconds < SECONDS and peak < MIB, (seconds, peak)


def test_the_flags_raise_the_bounds_for_a_trusted_folder(tmp_path):
    folder = run_folder(tmp_path, config=nested(80) + "lr: 0.1\n", metrics="step,val/acc\n" + "1,0.5\n" * 100)
    code, lines, _, _ = compare(tmp_path)
    assert code == 1 and "nested over 64 levels" in lines[0]
    code, lines, _, _ = compare(tmp_path, "--max-yaml-depth", "100", "--max-cells", "150")
    assert code == 1 and "over 150 cells" in lines[0] and str(folder / "csv" / "metrics.csv") in lines[0]
    code, lines, _, _ = compare(tmp_path, "--max-yaml-depth", "100", "--metrics", "val/acc")
    assert code == 0 and str(folder) in "\n".join(lines) and "0.5000" in lines[-1], lines
    code, lines, _, _ = compare(tmp_path, "--max-yaml-depth", "1000")  # past what the parser's recursion allows
    assert code == 2 and "--max-yaml-depth" in lines[-1] and "Traceback" not in "\n".join(lines)


def test_a_fifo_metrics_csv_is_skipped_with_one_warning(tmp_path):
    folder = run_folder(tmp_path, config="lr: 0.1\n")
    (folder / "csv" / "metrics.csv").unlink()
    os.mkfifo(folder / "csv" / "metrics.csv")  # opening it for reading would wait for a writer for ever
    code, lines, seconds, _ = compare(tmp_path, "--keys", "lr")
    assert code == 0 and seconds < SECONDS
    warnings = [line for line in lines if line.startswith("Warning")]
    assert warnings == [f"Warning: {folder / 'csv' / 'metrics.csv'} is not a regular file (a FIFO, socket or device)"
                        ": skipped"]  # fmt: skip
    assert any(line.startswith(str(folder)) for line in lines)  # the run is still in the table


@pytest.mark.parametrize("planted", ["deep", "aliases", "many_nodes"])
def test_hydra_records_of_a_resumed_folder_are_redacted_without_expanding_them(tmp_path, planted):
    """A copied run folder's `.hydra/` (and the sweep's `multirun.yaml` beside it) are rewritten to redact secrets:
    files planted there are read within the bounds (as text when they are not plain YAML), with no traceback."""
    run = tmp_path / "sweep" / "0"
    (run / ".hydra").mkdir(parents=True)
    content = {"deep": nested(50_000), "aliases": "a: &a [x, x, x]\nb: &b [*a, *a, *a]\nc: [*b, *b, *b]\n",
               "many_nodes": "a: [" + "0, " * 1_000_000 + "0]\n"}[planted]  # fmt: skip
    secret = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
    (run / ".hydra" / "overrides.yaml").write_text(content + f"token_like: {secret}\n")
    (run.parent / "multirun.yaml").write_text(content + "password: hunter2-long\n")
    start = time.monotonic()
    resource_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    changed = redact_hydra_records(run, [])
    assert time.monotonic() - start < SECONDS
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - resource_before) / 1024 < MIB
    assert set(changed) == {run / ".hydra" / "overrides.yaml", run.parent / "multirun.yaml"}
    assert secret not in (run / ".hydra" / "overrides.yaml").read_text()
    assert "hunter2-long" not in (run.parent / "multirun.yaml").read_text()


def test_redacted_yaml_stays_plain_yaml(tmp_path):
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text(
        yaml.safe_dump(["+notes.a=hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfGh"])
    )
    redact_hydra_records(run, [])
    assert yaml.safe_load((run / ".hydra" / "overrides.yaml").read_text()) == ["+notes.a=<redacted>"]


def test_a_hydra_record_over_its_bound_is_left_unread(tmp_path):
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    with open(run / ".hydra" / "planted.yaml", "wb") as f:  # 200 MB in no time: a sparse file
        f.truncate(200 << 20)
    (run / ".hydra" / "overrides.yaml").write_text("- +db.password=hunter2-long\n")
    start = time.monotonic()
    assert redact_hydra_records(run, []) == [run / ".hydra" / "overrides.yaml"]
    assert time.monotonic() - start < SECONDS and (run / ".hydra" / "planted.yaml").stat().st_size == 200 << 20


@pytest.mark.slow
def test_resuming_a_folder_with_planted_yaml_records_is_not_a_traceback(tmp_path):
    """A copied run folder whose `.hydra/` holds a deeply nested record and whose parent holds an alias bomb as
    `multirun.yaml`: `resume=true` redacts Hydra's records without expanding either, and trains on."""
    run = tmp_path / "runs" / "run"
    common = ["trainer=cpu", "logger=csv", "trainer.limit_train_batches=2", f"hydra.run.dir={run}"]
    done = run_script("train.py", *common, "trainer.max_epochs=1")
    assert done.returncode == 0, done.stderr[-3000:]
    (run / ".hydra" / "planted.yaml").write_text(nested(100_000))
    bomb = ["l0: &l0 [lol]"] + [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 10)]
    (run.parent / "multirun.yaml").write_text("\n".join(bomb) + "\n")
    start = time.monotonic()
    done = run_script("train.py", *common, "trainer.max_epochs=2", "resume=true")
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert time.monotonic() - start < 120  # a training run of 2 batches: the records cost nothing noticeable
    assert (run / ".hydra" / "planted.yaml").read_text() == nested(100_000)  # no secret in it: left as it was
