"""Typed schemas registered in Hydra's ConfigStore, and composition outside a Hydra app.

A schema makes Hydra reject a misspelt key (`trainer.devicez=2`) or a wrong type
(`trainer.max_epochs=abc`) while composing, before torch is imported.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dotenv import load_dotenv
from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class TrainerConf:
    """The `lightning.pytorch.Trainer` arguments this template sets from config."""

    _target_: str = "lightning.pytorch.Trainer"
    accelerator: str = "auto"
    strategy: Any = "auto"
    devices: Any = 1  # int, "auto", or a list such as [0, 1]
    num_nodes: int = 1
    precision: Any = 32  # 32, "16-mixed", "bf16-mixed", ...
    max_epochs: int | None = None
    min_epochs: int | None = None
    max_steps: int = -1
    max_time: str | None = None
    fast_dev_run: Any = False  # bool or a number of batches
    limit_train_batches: float | None = None
    limit_val_batches: float | None = None
    limit_test_batches: float | None = None
    limit_predict_batches: float | None = None
    overfit_batches: float = 0.0
    val_check_interval: float | None = None
    check_val_every_n_epoch: int | None = 1
    num_sanity_val_steps: int | None = None
    log_every_n_steps: int | None = None
    enable_checkpointing: bool | None = None
    enable_progress_bar: bool | None = None
    enable_model_summary: bool | None = None
    accumulate_grad_batches: int = 1
    gradient_clip_val: float | None = None
    gradient_clip_algorithm: str | None = None
    deterministic: Any = None  # bool or "warn"
    benchmark: bool | None = None
    inference_mode: bool = True
    use_distributed_sampler: bool = True
    profiler: str | None = None
    detect_anomaly: bool = False
    sync_batchnorm: bool = False
    reload_dataloaders_every_n_epochs: int = 0
    default_root_dir: str | None = None
    enable_autolog_hparams: bool = True


def load_machine_env(path: Path = ROOT / ".env") -> None:
    """Read this machine's settings (data folder, W&B entity, cluster partition) from the git-ignored `.env`.

    Variables already set in the environment win; configs read them with `${oc.env:NAME,default}`.
    """
    load_dotenv(path, override=False)


def register_schemas() -> None:
    """Make `trainer/schema` available to the trainer configs' defaults lists."""
    ConfigStore.instance().store(group="trainer", name="schema", node=TrainerConf)


def check_train_fraction(cfg: DictConfig) -> None:
    """`data.train_fraction` must be a number in (0, 1]: checked in the entry point, before torch is imported."""
    fraction = OmegaConf.select(cfg, "data.train_fraction")
    valid = isinstance(fraction, (int, float)) and not isinstance(fraction, bool) and 0 < fraction <= 1
    if fraction is not None and not valid:
        raise ValueError(f"data.train_fraction={fraction!r} is not valid: use a number in (0, 1], e.g. 0.25")


def compose_config(
    config_name: str, overrides: list[str], output_dir: str | Path, keep_hydra: bool = False
) -> DictConfig:
    """Compose conf/<config_name>.yaml as `python <config_name>.py <overrides>` would, writing into
    output_dir (for tests and scripts that run the template in-process).

    The `hydra` node is dropped, as the app sees it, unless `keep_hydra` (to read launcher settings).
    """
    register_schemas()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(output_dir)
        cfg.hydra.runtime.cwd = str(ROOT)
        cfg.hydra.job.num = 0
    HydraConfig.instance().set_config(cfg)  # so ${hydra:...} in paths resolves
    if not keep_hydra:
        with open_dict(cfg):
            del cfg["hydra"]
    return cfg
