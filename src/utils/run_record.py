"""What every run writes about itself: the resolved config and the code's git state."""

from pathlib import Path
from typing import Any

import yaml
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from src.utils.git import git_state


def run_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as plain containers (for W&B, checkpoints and YAML), plus `git`."""
    plain = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    cwd = HydraConfig.get().runtime.cwd if HydraConfig.initialized() else "."
    plain["git"] = git_state(cwd)
    return plain


@rank_zero_only
def save_run_config(config: dict[str, Any], output_dir: str | Path) -> Path:
    """Write `config.yaml` (resolved, with git state) into the run directory."""
    path = Path(output_dir) / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
