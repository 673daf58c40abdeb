"""`make gpu-check`, the check a GPU machine runs, in its dry run on the CPU (so it cannot rot between GPU
sessions), and its parts: installing missing wheels beside a preinstalled torch, finding CIFAR-10."""

import csv
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from src.machinery.config.schemas import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import gpu_check

# Hides wandb from every process it reaches (through PYTHONPATH): a GPU machine need not have it.
NO_WANDB = """
import sys
class HideWandb:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "wandb":
            raise ModuleNotFoundError(f"No module named {name!r}")
sys.meta_path.insert(0, HideWandb())
"""
SECTIONS = [
    "1. gpu-marked tests",
    "2. host syncs",
    "3. benchmark",
    "4. cifar10_fast",
    "5. DDP scaling",
    "GPU check summary",
]


def check_dry_run(done: subprocess.CompletedProcess, out: Path) -> None:
    """One dry run passed with every section, in order, and wrote every figure into `out`."""
    print(done.stdout[-6000:])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    positions = [done.stdout.find(section) for section in SECTIONS]
    assert -1 not in positions and positions == sorted(positions)  # every section, in order
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    by_section = {section: [r for r in rows if r["section"] == section] for section in {r["section"] for r in rows}}
    assert {"versions", "gpu tests", "host syncs", "benchmark", "cifar10_fast", "ddp", "total"} <= set(by_section)
    # the sync count is CUDA-only: not measured here, but the 50 steps ran, and counted the CPU's host reads
    syncs = {r["item"]: r for r in by_section["host syncs"]}
    assert syncs["CUDA syncs per training step (50 steps, default config)"]["value"] == "not measured"
    assert "CUDA-only" in syncs["CUDA syncs per training step (50 steps, default config)"]["note"]
    assert syncs["50 training steps"]["note"] == "ok"
    assert float(syncs["host reads per training step (CPU count)"]["value"]) <= 0.1  # once per logging interval
    assert any(item.startswith("template: ") for item in syncs)  # each source named
    # the gpu tests are found (and skip on a CPU); the ladder has both loops for all five settings
    assert any(r["item"].startswith("test_") for r in by_section["gpu tests"])
    ladder = [r for r in by_section["benchmark"] if "samples/s" in r["value"]]
    assert len(ladder) == 10 and all(float(r["value"].split()[0]) > 0 for r in ladder)
    assert sum("of the plain loop" in r["note"] for r in ladder) == 5
    assert any("compile" in r["item"] for r in ladder)
    accuracy = next(r for r in by_section["cifar10_fast"] if r["item"].startswith("test/acc"))
    assert 0.0 <= float(accuracy["value"]) <= 1.0
    assert [re.search(r"(\d+) dev", r["item"])[1] for r in by_section["ddp"] if "samples/s" in r["value"]] == ["1", "2"]
    assert (out / "results.md").read_text().count("\n") == len(rows) + 2


@pytest.mark.slow
def test_dry_run_twice_in_one_checkout_passes_both_times_with_every_section(tmp_path):
    # The rerun after a fix is the run that counts on a lent GPU: it must not trip over the first run's folders.
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(NO_WANDB)
    root = tmp_path / "gpu-check"
    env = {**os.environ, "GPU_CHECK_DRY": "1", "GPU_CHECK_OUT": str(root), "GPU_CHECK_BUDGET": "1800"}
    env["PYTHONPATH"] = str(tmp_path / "site")
    folders = []
    for _ in range(2):
        done = subprocess.run(
            ["make", "gpu-check", f"GPU_PYTHON={sys.executable}"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800,
        )  # fmt: skip
        latest = (root / "latest").resolve()
        check_dry_run(done, latest)
        folders.append(latest)
    assert folders[0] != folders[1] and folders[0].parent == folders[1].parent == root.resolve()
    assert (folders[0] / "results.csv").is_file()  # the first run's figures are kept


def test_each_run_gets_a_new_folder_and_latest_points_at_it(tmp_path):
    first = gpu_check.new_run_folder(tmp_path)
    (first / "results.csv").write_text("kept")
    second = gpu_check.new_run_folder(tmp_path)  # same second: a suffix
    assert first != second and list(second.iterdir()) == []
    assert (tmp_path / "latest").resolve() == second.resolve()
    assert (first / "results.csv").read_text() == "kept"


def write_wheel(folder: Path, name: str, version: str = "1.0") -> Path:
    """A minimal pure-Python wheel of a package `name` holding one module."""
    module = name.replace("-", "_")
    path = folder / f"{module}-{version}-py3-none-any.whl"
    info = f"{module}-{version}.dist-info"
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr(f"{module}.py", "VALUE = 42\n")
        wheel.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        wheel.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        wheel.writestr(f"{info}/RECORD", "")
    return path


def test_wheels_install_only_what_is_missing_and_never_torch(tmp_path):
    wheels, site = tmp_path / "wheels", tmp_path / "site"
    wheels.mkdir()
    write_wheel(wheels, "gpu-check-demo")
    write_wheel(wheels, "torch", "0.0.1")  # a stand-in torch: must never replace the GPU machine's build
    write_wheel(wheels, "pytest", "0.0.1")  # already installed here: left as it is
    installed = gpu_check.install_wheels(wheels, site)
    assert installed == ["gpu_check_demo-1.0-py3-none-any.whl"]
    assert (site / "gpu_check_demo.py").is_file()
    assert not (site / "torch.py").exists() and not (site / "pytest.py").exists()


def test_cifar10_is_found_in_each_layout(tmp_path):
    tree = tmp_path / "tree"
    for split in ("train", "test"):
        (tree / split / "cat").mkdir(parents=True)
    assert gpu_check.cifar10_overrides(tree, tmp_path)[:2] == ["data=cifar10_jpeg", f"data.data_dir={tree}"]

    archives, scratch = tmp_path / "archives", tmp_path / "scratch"
    archives.mkdir()
    scratch.mkdir()
    for split in ("train", "test"):
        with tarfile.open(archives / f"{split}.tar.gz", "w:gz") as archive:
            archive.add(tree / split, arcname=split)
    assert gpu_check.cifar10_overrides(archives, scratch)[:2] == ["data=cifar10_jpeg", f"data.data_dir={scratch}"]
    assert (scratch / "train" / "cat").is_dir()

    torchvision_root = tmp_path / "tv"
    (torchvision_root / "cifar-10-batches-py").mkdir(parents=True)
    expected = ["data=cifar10", f"data.data_dir={torchvision_root}"]
    assert gpu_check.cifar10_overrides(torchvision_root, tmp_path) == expected
    assert gpu_check.cifar10_overrides(torchvision_root / "cifar-10-batches-py", tmp_path) == expected

    with pytest.raises(SystemExit, match=r"CIFAR10_DIR=.*empty holds no CIFAR-10: expected train/ and test/"):
        gpu_check.cifar10_overrides(tmp_path / "empty", tmp_path)
