"""Shared fixtures: configs composed with Hydra's compose API, CPU, one thread, outputs in tmp_path."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig

from src.machinery.config.schemas import ROOT, compose_config

CONF = ROOT / "conf"
SHARED_DATA = ROOT.parent / "shared" / "data"

# One torch thread per process: the 2 cores here are shared, and 2 threads under load ran 34x slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)
# Tests never reach the W&B server, and never prompt for a login.
os.environ["WANDB_MODE"] = "offline"
os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture(autouse=True)
def own_wandb_service():
    """W&B runs made in this process close their service after each test: processes a later test starts must not
    inherit its WANDB_SERVICE (a run killed there would leave its stream open in it, and the resumed run's id would
    be "in use")."""
    yield
    if "wandb" in sys.modules and os.environ.get("WANDB_SERVICE"):
        sys.modules["wandb"].teardown()


# Small and quick: CPU, no W&B, digits, a few epochs.
FAST = ["trainer=cpu", "logger=csv", "trainer.max_epochs=3"]


@pytest.fixture
def make_cfg(tmp_path):
    """`make_cfg(*overrides)` -> a train config writing into tmp_path."""

    def _make(*overrides: str, config_name: str = "train", keep_hydra: bool = False) -> DictConfig:
        return compose_config(config_name, list(overrides), tmp_path, keep_hydra)

    return _make


def run_script(
    script: str,
    *overrides: str,
    cwd: Path = ROOT,
    repo: Path = ROOT,
    timeout: float = 300,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """Run `python <repo>/<script> <overrides>` in `cwd` as a user would, one torch thread, W&B offline
    (`env`: more variables)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline", "HYDRA_FULL_ERROR": "0", **(env or {})}
    env.pop("WANDB_SERVICE", None)  # a W&B service of its own, not this process's
    return subprocess.run(
        [sys.executable, str(repo / script), *overrides],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def repo_files() -> list[str]:
    """The repository's own files: tracked, plus new ones git does not ignore (no venv, outputs or caches)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return [name for name in listed.stdout.splitlines() if (ROOT / name).is_file()]


def copy_repository(copy: Path) -> Path:
    """`copy`, made a copy of the repository's own files (repo_files), as a fresh clone has them."""
    for name in repo_files():
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, copy / name)
    return copy


@pytest.fixture
def repo_copy(tmp_path) -> Path:
    """A copy of the repository as a fresh clone has it, to change and run in without touching this one."""
    return copy_repository(tmp_path / "repo")


def pytest_collection_modifyitems(config, items):
    """Tests marked `gpu` skip (with the reason shown) where no CUDA device is present."""
    if torch.cuda.is_available():
        return
    no_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(no_gpu)
