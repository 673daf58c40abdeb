"""Shared fixtures: configs composed with Hydra's compose API, CPU, one thread, outputs in tmp_path."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig

from src.config import ROOT, compose_config

CONF = ROOT / "conf"
SHARED_DATA = ROOT.parent / "shared" / "data"

# One torch thread per process: the 2 cores here are shared, and 2 threads under load ran 34x slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)
# Tests never reach the W&B server, and never prompt for a login.
os.environ["WANDB_MODE"] = "offline"
os.environ.setdefault("WANDB_SILENT", "true")


# Small and quick: CPU, no W&B, digits, a few epochs.
FAST = ["trainer=cpu", "logger=csv", "trainer.max_epochs=3"]


@pytest.fixture
def make_cfg(tmp_path):
    """`make_cfg(*overrides)` -> a train config writing into tmp_path."""

    def _make(*overrides: str, config_name: str = "train", keep_hydra: bool = False) -> DictConfig:
        return compose_config(config_name, list(overrides), tmp_path, keep_hydra)

    return _make


def run_script(
    script: str, *overrides: str, cwd: Path = ROOT, timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run `python <script> <overrides>` as a user would, one torch thread, W&B offline (`env`: more variables)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline", "HYDRA_FULL_ERROR": "0", **(env or {})}
    return subprocess.run(
        [sys.executable, str(ROOT / script), *overrides],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
