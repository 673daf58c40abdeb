"""What every run writes about itself: the resolved config and the code's git state."""

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from src.machinery.git import git_state
from src.machinery.hardware import describe_hardware
from src.machinery.run_folder import write_text
from src.machinery.secrets import redact, secret_values


def run_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as plain containers (for W&B, checkpoints and YAML), plus `git`.

    Credentials (secret-named keys, and secret values from the environment or command line) are redacted.
    """
    plain = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    cwd = HydraConfig.get().runtime.cwd if HydraConfig.initialized() else "."
    plain["git"] = git_state(cwd)
    plain["choices"] = config_choices()
    return redact(plain, secret_values(plain))


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
