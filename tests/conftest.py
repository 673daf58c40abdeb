"""Shared fixtures: configs composed with Hydra's compose API, CPU, one thread, outputs in tmp_path."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from src.config import register_schemas

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
SHARED_DATA = ROOT.parent / "shared" / "data"

# One torch thread per process: the 2 cores here are shared, and 2 threads under load ran 34x slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)
# Tests never reach the W&B server, and never prompt for a login.
os.environ["WANDB_MODE"] = "offline"
os.environ.setdefault("WANDB_SILENT", "true")
register_schemas()


def compose_config(config_name: str, overrides: list[str], output_dir: Path, keep_hydra: bool = False) -> DictConfig:
    """Compose conf/<config_name>.yaml as `python <config_name>.py <overrides>` would, writing into output_dir.

    The `hydra` node is dropped, as the app sees it, unless `keep_hydra` (to test launcher settings).
    """
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(output_dir)
        cfg.hydra.runtime.cwd = str(ROOT)
        cfg.hydra.job.num = 0
    HydraConfig.instance().set_config(cfg)
    if not keep_hydra:
        with open_dict(cfg):
            del cfg["hydra"]
    return cfg


# Small and quick: CPU, no W&B, digits, a few epochs.
FAST = ["trainer=cpu", "logger=csv", "trainer.max_epochs=3"]


@pytest.fixture
def make_cfg(tmp_path):
    """`make_cfg(*overrides)` -> a train config writing into tmp_path."""

    def _make(*overrides: str, config_name: str = "train", keep_hydra: bool = False) -> DictConfig:
        return compose_config(config_name, list(overrides), tmp_path, keep_hydra)

    return _make


def run_script(script: str, *overrides: str, cwd: Path = ROOT, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `python <script> <overrides>` as a user would, one torch thread, W&B offline."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline", "HYDRA_FULL_ERROR": "0"}
    return subprocess.run(
        [sys.executable, str(ROOT / script), *overrides],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
