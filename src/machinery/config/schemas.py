"""Typed schemas registered in Hydra's ConfigStore, and composition outside a Hydra app. A schema rejects a misspelt
key or a wrong type while composing, and `check_value_ranges` an out-of-range number, both before torch is imported."""

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dotenv import load_dotenv
from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict
from omegaconf.errors import InterpolationKeyError

from src.errors import ConfigValueError
from src.machinery.runs.launch import register_launch_id_resolver

ROOT = Path(__file__).resolve().parents[3]


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
    # A number of batches (int) or a share of them (float): kept as given, since Lightning reads 1 as one batch and
    # 1.0 as all of them. The types are checked by `check_value_ranges`.
    limit_train_batches: Any = None
    limit_val_batches: Any = None
    limit_test_batches: Any = None
    limit_predict_batches: Any = None
    overfit_batches: Any = 0.0
    val_check_interval: Any = None
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
    """Read this machine's settings (data folder, W&B entity, cluster partition) from the git-ignored `.env`;
    variables already set win. Configs read them with `${oc.env:NAME,default}`."""
    load_dotenv(path, override=False)


def register_schemas() -> None:
    """Make `trainer/schema` available to the trainer configs' defaults lists, `${launch_id:}` (the run
    folder's name every rank agrees on) to conf/hydra/default.yaml, and `${count_classes:...}` to data configs."""
    ConfigStore.instance().store(group="trainer", name="schema", node=TrainerConf)
    register_launch_id_resolver()
    if not OmegaConf.has_resolver("count_classes"):  # data configs: `num_classes: ${count_classes:${.classes},10}`
        OmegaConf.register_new_resolver("count_classes", lambda classes, all_of: len(classes) if classes else all_of)


def compose_config(
    config_name: str, overrides: list[str], output_dir: str | Path, keep_hydra: bool = False
) -> DictConfig:
    """Compose conf/<config_name>.yaml as `python <config_name>.py <overrides>` would, writing into output_dir, for
    tests and scripts run in-process; the `hydra` node is dropped, as the app sees it, unless `keep_hydra`."""
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


@dataclass(frozen=True)
class Range:
    """A number's valid range, for a config key that the type schema cannot bound."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False  # True: low itself is out of range
    high_open: bool = False
    optional: bool = True  # null allowed
    integer: bool = False  # a whole number only

    def contains(self, value: float) -> bool:
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return not (self.high is not None and (value > self.high or (self.high_open and value == self.high)))

    def __str__(self) -> str:
        left = "(" if self.low_open else "["
        right = ")" if self.high_open else "]"
        low = "-inf" if self.low is None else f"{self.low:{'d' if self.integer else 'g'}}"
        high = "inf" if self.high is None else f"{self.high:{'d' if self.integer else 'g'}}"
        return f"{'a whole' if self.integer else 'a'} number in {left}{low}, {high}{right}"


# Keys absent from a config (another optimizer, data set or scheduler) are skipped.
VALUE_RANGES: dict[str, Range] = {
    "seed": Range(0, 2**32 - 1, integer=True),  # null: a random seed; numpy's seeds are 32-bit
    "optimizer.lr": Range(0, low_open=True, optional=False),
    "optimizer.weight_decay": Range(0),
    "optimizer.momentum": Range(0, 1),
    "scheduler.max_lr": Range(0, low_open=True),
    "scheduler.warmup_fraction": Range(0, 1, high_open=True),
    "scheduler.final_lr_fraction": Range(0, 1),
    "scheduler.pct_start": Range(0, 1, low_open=True, high_open=True),
    "model.label_smoothing": Range(0, 1, high_open=True),
    "model.net.dropout": Range(0, 1, high_open=True),
    "data.batch_size": Range(1, optional=False),
    "data.eval_batch_size": Range(1),
    "data.num_workers": Range(0),
    "data.train_fraction": Range(0, 1, low_open=True),
    "data.val_fraction": Range(0, 1, low_open=True, high_open=True),
    "data.test_fraction": Range(0, 1, low_open=True, high_open=True),
    "data.num_folds": Range(2, integer=True),
    "data.fold": Range(0, optional=False, integer=True),  # below num_folds: checked by the data module
    "trainer.max_epochs": Range(-1),  # -1: no limit
    "trainer.limit_train_batches": Range(0),
    "trainer.limit_val_batches": Range(0),
    "trainer.limit_test_batches": Range(0),
    "trainer.limit_predict_batches": Range(0),
    "trainer.overfit_batches": Range(0),
    "trainer.val_check_interval": Range(0, low_open=True),
    "trainer.accumulate_grad_batches": Range(1),
    "trainer.gradient_clip_val": Range(0),
    "trainer.strategy.timeout_s": Range(0, low_open=True),
    "callbacks.last_checkpoint.every_n_train_steps": Range(1),
    "batch_size": Range(1, optional=False, integer=True),  # predict.py's images per forward pass
}


def check_model_takes_the_data(cfg: DictConfig) -> None:
    """A network reads from the data config what its inputs need (an image network `data.in_channels`): a data set
    that does not give it is one line naming both choices, not an interpolation traceback when the run starts."""
    if not isinstance(cfg.get("model"), DictConfig) or not isinstance(cfg.get("data"), DictConfig):
        return
    try:
        OmegaConf.to_container(cfg.model, resolve=True)
    except InterpolationKeyError as error:
        missing = re.search(r"Interpolation key '([^']+)' not found", str(error))
        key = missing.group(1) if missing else str(error).splitlines()[0]
        choices = HydraConfig.get().runtime.choices if HydraConfig.initialized() else {}
        model, data = choices.get("model", "the model"), choices.get("data", "the data")
        raise ConfigValueError(
            f"model={model} reads {key}, which data={data} does not give: that network takes other inputs than "
            f"data.input_shape={OmegaConf.select(cfg, 'data.input_shape')}; pick a model that reads what the data "
            "gives (docs/extending.md: a task that is not images)"
        ) from None


def check_value_ranges(cfg: DictConfig, ranges: dict[str, Range] = VALUE_RANGES) -> None:
    """Raise `ConfigValueError` naming the first key whose value is outside its valid range (no torch import)."""
    for key, valid in ranges.items():
        value = OmegaConf.select(cfg, key, default=_ABSENT)
        if value is _ABSENT or (value is None and valid.optional):
            continue
        number = int if valid.integer else int | float
        if isinstance(value, bool) or not isinstance(value, number) or not valid.contains(value):
            raise ConfigValueError(f"{key}={value} is out of range: it must be {valid}")
    unbounded = OmegaConf.select(cfg, "trainer.max_epochs") == -1 and OmegaConf.select(cfg, "trainer.max_steps") == -1
    if unbounded and cfg.get("scheduler") is not None:  # the schedule is spread over the run's steps
        raise ConfigValueError(
            "trainer.max_epochs=-1 (no limit) leaves the learning-rate schedule no number of steps: "
            "set trainer.max_steps=<steps> or scheduler=none"
        )
    for switch in ("resume", "predict", "trust_checkpoint"):  # predict: eval.py's; a string "no" would read as true
        if not isinstance(cfg.get(switch, False), bool):
            raise ConfigValueError(f"{switch}={cfg[switch]} is not valid: use {switch}=true or {switch}=false")
    classes = OmegaConf.select(cfg, "data.classes")  # count_classes would fail on a number, the data set on a name
    labels = list(classes) if isinstance(classes, ListConfig) else None
    if classes is not None and (labels is None or not all(type(label) is int for label in labels)):
        raise ConfigValueError(
            f"data.classes={classes} is not valid: use null (every class) or a list of class labels, e.g. [0,1,2]"
        )
    if repeated := sorted({label for label in labels or [] if labels.count(label) > 1}):
        raise ConfigValueError(f"data.classes={classes} names {repeated} more than once: list each class once")
    if cfg.get("resume") and cfg.get("ckpt_path") not in (None, "last"):
        raise ConfigValueError(
            f"resume=true and ckpt_path={cfg.ckpt_path} both given: resume=true continues this run folder's "
            "checkpoints/last.ckpt; ckpt_path=<file> starts from another run's checkpoint"
        )
    check_model_takes_the_data(cfg)  # last: it resolves the model's config, which the checks above make safe


_ABSENT = object()
