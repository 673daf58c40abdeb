"""What every run writes about itself: resolved config, git state and diff, command line, host, package versions."""

import os
import platform
import shlex
import sys
from contextlib import suppress
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from socket import gethostname
from typing import Any

import lightning.pytorch as pl
import torch
import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from src.machinery.launching.hardware import describe_hardware
from src.machinery.runs.folder import write_text
from src.machinery.tracking.git import git_diff, git_state
from src.machinery.tracking.secrets import redact, redact_text, secret_values

PACKAGES = ("lightning", "torchmetrics", "hydra-core", "wandb", "mlflow", "mlflow-skinny", "numpy")


def run_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as plain containers (for W&B, checkpoints and YAML), plus `git`, choices, launch and
    versions; credentials (by key name, or values from the environment or command line) redacted."""
    plain = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    cwd = HydraConfig.get().runtime.cwd if HydraConfig.initialized() else "."
    plain["git"] = git_state(cwd)
    plain["choices"] = config_choices()
    plain["launch"] = {
        "command": shlex.join(["python", *sys.argv]),
        "host": gethostname(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),  # its GPUs, if set
    }
    plain["versions"] = package_versions()
    return redact(plain, secret_values(plain))


def package_versions() -> dict[str, str | None]:
    """Python, torch, CUDA and cuDNN, and each of `PACKAGES` that is installed."""
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    found = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda}
    found["cudnn"] = cudnn and str(cudnn)
    for name in PACKAGES:  # each looked up by name: scanning every installed package takes longer
        with suppress(PackageNotFoundError):
            found[name] = version(name)
    return found


def config_choices() -> dict[str, str | None]:
    """The option picked in each config group (`{"model": "rnn", "data": "digits", ...}`): runs group by these."""
    if not HydraConfig.initialized():
        return {}
    choices = HydraConfig.get().runtime.choices
    return {group: option for group, option in choices.items() if not group.startswith("hydra")}


def sweep_group() -> str | None:
    """In a multirun, the sweep folder's name (`2026-11-25_20-41-07`), shared by all its jobs; else None."""
    if not HydraConfig.initialized():
        return None
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return None
    return Path(hydra_cfg.sweep.dir).name


def set_default_group(cfg: DictConfig) -> None:
    """`group: null` becomes the sweep's group in a multirun, so W&B and compare_runs.py see one group per sweep."""
    if cfg.get("group") is None and (group := sweep_group()):
        cfg.group = group


def describe_run(module: pl.LightningModule, trainer: pl.Trainer) -> dict[str, Any]:
    """Parameter counts and hardware, added to the run record once the model and Trainer exist."""
    params = list(module.parameters())
    return {
        "params": {
            "total": sum(p.numel() for p in params),
            "trainable": sum(p.numel() for p in params if p.requires_grad),
        },
        "hardware": describe_hardware(trainer),
    }


@rank_zero_only
def save_run_config(config: dict[str, Any], output_dir: str | Path) -> Path:
    """Write `config.yaml` (resolved, with git state) into the run directory."""
    path = Path(output_dir) / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, yaml.safe_dump(config, sort_keys=False))  # never through a link planted in the folder
    return path


@rank_zero_only
def save_git_diff(config: dict[str, Any], output_dir: str | Path) -> Path | None:
    """When the tree was dirty, write its changes as `git.diff` in the run folder (credentials redacted): `git diff
    HEAD`, and the untracked files in the code folders as new files (`src.machinery.tracking.git.git_diff`)."""
    if not config.get("git", {}).get("dirty") or (diff := git_diff(config["paths"]["root_dir"])) is None:
        return None
    path = Path(output_dir) / "git.diff"
    write_text(path, redact_text(diff, secret_values(config)))
    return path
