"""Rebuild a training run's config from conf/ and a checkpoint's `run_config`, which is data, not code: its choices
pick conf/ files, its plain values fill them in, a stored `_target_` that differs is refused, and no stored `${...}`
is ever resolved (docs/reliability.md, 'What is trusted')."""

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from src.errors import CheckpointError
from src.machinery.checkpoints.bounds import TRUST_HINT, bounds_lifted
from src.machinery.config.schemas import ROOT, Range, register_schemas

# The groups that rebuild a run's model and data (the trainer, loggers and callbacks are the caller's own).
REBUILT_GROUPS = ("model", "data", "optimizer", "scheduler")
# Groups chosen without a config key of their own (`module` fills `model`), and the option of checkpoints older
# than the group.
CHOSEN_GROUPS = {"module": "classification"}
# Keys that make Hydra's `instantiate` choose or call code.
RESERVED_KEYS = frozenset({"_target_", "_partial_", "_args_", "_recursive_", "_convert_"})
CHOICE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*")
# Where the data is and how it is served are this machine's: conf/'s values (paths.data_dir, DATA_DIR in .env) or the
# caller's `data_dir=`, never the checkpoint's (a stored data_dir would choose where eval.py creates and downloads);
# so is any stored data string that names a path (`is_machine_value`).
MACHINE_KEYS = ("data_dir", "num_workers", "pin_memory")
# Stored values that size what a rebuilt run allocates before its weights are loaded, each in a sane range (a stored
# width or depth is checked by the weights themselves: the network is first built on the meta device).
STORED_RANGES: dict[str, Range] = {
    "data.image_size": Range(1, 4096, integer=True),
    "data.in_channels": Range(1, 1024, integer=True),
    "data.input_shape": Range(1, 1 << 20, integer=True),  # each dimension; null (any length) too
    "data.num_classes": Range(1, 100_000, integer=True),
    "model.num_classes": Range(1, 100_000, integer=True),
    "data.batch_size": Range(1, 1 << 16, integer=True),
    "data.eval_batch_size": Range(1, 1 << 16, integer=True),
    "data.crop_padding": Range(0, 1024, integer=True),
    "model.net.max_steps": Range(1, 1 << 20, integer=True),
}
MAX_INPUT_ELEMENTS = 1 << 24  # one input's elements (the product of data.input_shape)
TRUSTED_HINT = (
    "a checkpoint's config may pick files in conf/ and set plain values, never name code; if you trust this file, "
    "add the config it needs under conf/ (docs/reliability.md: 'What is trusted')"
)


def literal(text: str) -> str:
    """`text` escaped so that OmegaConf reads it back unchanged, `${...}` never resolved: OmegaConf reads 2n backslashes
    before `${` as n and an interpolation, so each run of n becomes 2n + 1."""
    return re.sub(r"(\\*)\$\{", lambda m: "\\" * (2 * len(m.group(1)) + 1) + "${", text)


def rebuild_run_config(
    stored: Any, source: str | Path, conf_dir: Path = ROOT / "conf", data_dir: str | Path | None = None
) -> DictConfig:
    """The train config composed from conf/ with the checkpoint's group choices, its REBUILT_GROUPS overlaid with the
    stored plain values but MACHINE_KEYS (conf/'s, `data_dir` when given); `CheckpointError` (one line) names a stored
    key that would choose code or a value out of STORED_RANGES."""
    if not isinstance(stored, Mapping):
        raise CheckpointError(f"checkpoint {source} refused: its run_config is not a mapping")
    choices = group_choices(stored, source, conf_dir)
    composed = _compose(conf_dir, [f"{group}={option}" for group, option in choices.items()])
    with open_dict(composed):
        for group in REBUILT_GROUPS:
            if (values := stored.get(group)) is None:
                continue
            if group == "data" and isinstance(values, Mapping):  # this machine's locations and workers, not the file's
                values = {key: value for key, value in values.items() if not is_machine_value(key, value)}
            base = OmegaConf.to_container(composed[group], resolve=False) if group in composed else None
            where = f"conf/{group}/{choices[group]}.yaml"
            composed[group] = overlay(base, values, group, source, where)
        if data_dir is not None:
            composed.data.data_dir = str(data_dir)
    if not bounds_lifted():
        check_stored_values(composed, source)
    return composed


def is_machine_value(key: str, value: Any) -> bool:
    """A data value that is this machine's, never a checkpoint's: MACHINE_KEYS, and any path (a string naming a
    folder or file: `path: /data/my_data.npz`), which conf/ (or `data_dir=`) gives instead."""
    return key in MACHINE_KEYS or (isinstance(value, str) and ("/" in value or "\\" in value or value in (".", "..")))


def check_stored_values(composed: DictConfig, source: str | Path) -> None:
    """Refuse (one line naming the file, the value and the bound) a stored value outside STORED_RANGES or an input of
    over MAX_INPUT_ELEMENTS elements."""
    for key, valid in STORED_RANGES.items():
        value = OmegaConf.select(composed, key, default=None)
        values = list(value) if isinstance(value, ListConfig) else [value]
        for item in values:
            if item is None and valid.optional:  # null: conf/'s meaning (any length, the default)
                continue
            if isinstance(item, bool) or not isinstance(item, int) or not valid.contains(item):
                raise CheckpointError(
                    f"checkpoint {source} refused: its stored {key}={_short(value)} is out of range: it must be "
                    f"{valid}; {TRUST_HINT}"
                )
    shape = OmegaConf.select(composed, "data.input_shape", default=None)
    if isinstance(shape, ListConfig) and math.prod(d or 1 for d in shape) > MAX_INPUT_ELEMENTS:
        raise CheckpointError(
            f"checkpoint {source} refused: its stored data.input_shape={_short(list(shape))} makes inputs of over "
            f"{MAX_INPUT_ELEMENTS} elements; {TRUST_HINT}"
        )


def group_choices(stored: Mapping, source: str | Path, conf_dir: Path) -> dict[str, str]:
    """The option of each group in REBUILT_GROUPS that the checkpoint recorded, each an existing conf/ file."""
    recorded = stored.get("choices")
    if not isinstance(recorded, Mapping):
        raise CheckpointError(
            f"checkpoint {source} refused: its run_config records no config choices (model, data, ...) to rebuild "
            "the run from this repository's conf/"
        )
    choices = {}
    for group in (*CHOSEN_GROUPS, *REBUILT_GROUPS):
        option = recorded.get(group, CHOSEN_GROUPS.get(group))
        if (
            not isinstance(option, str)
            or not CHOICE.fullmatch(option)
            or not (conf_dir / group / f"{option}.yaml").is_file()
        ):
            valid = sorted(p.stem for p in (conf_dir / group).glob("*.yaml"))
            raise CheckpointError(
                f"checkpoint {source} refused: it was trained with {group}={str(option)[:80]!r}, which is not a "
                f"config in this repository's conf/{group}/ (one of {valid}); {TRUSTED_HINT}"
            )
        choices[group] = option
    return choices


def overlay(base: Any, stored: Any, key: str, source: str | Path, where: str) -> Any:
    """`base` (a conf/ node as plain containers) with `stored`'s plain values laid over it; a reserved key (`_target_`,
    ...) in `stored` must equal `base`'s at the same place, and strings become literals."""
    if isinstance(stored, Mapping):
        node = dict(base) if isinstance(base, dict) else {}
        for name, value in stored.items():
            if not isinstance(name, str):
                raise CheckpointError(f"checkpoint {source} refused: its stored config has a key {name!r} under {key}")
            path = f"{key}.{name}"
            if name in RESERVED_KEYS:
                if name not in node or node[name] != value:
                    raise CheckpointError(
                        f"checkpoint {source} refused: its stored config sets {path}={_short(value)}, which "
                        f"{where} does not; {TRUSTED_HINT}"
                    )
                continue
            node[name] = overlay(node.get(name), value, path, source, where)
        return node
    if isinstance(stored, list | tuple):
        items = base if isinstance(base, list) else []
        return [
            overlay(items[i] if i < len(items) else None, value, f"{key}[{i}]", source, where)
            for i, value in enumerate(stored)
        ]
    if isinstance(stored, str):
        if stored == "???":  # OmegaConf's "missing value" marker, never in a resolved config
            raise CheckpointError(f"checkpoint {source} refused: its stored config leaves {key} missing ('???')")
        return literal(stored)
    if stored is None or isinstance(stored, bool | int | float):
        return stored
    raise CheckpointError(f"checkpoint {source} refused: {key} holds a {type(stored).__name__}, not a plain value")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _compose(conf_dir: Path, overrides: list[str]) -> DictConfig:
    """conf/train.yaml with `overrides`, composed beside a running Hydra app (whose state is restored after)."""
    register_schemas()
    running = GlobalHydra.instance().hydra if GlobalHydra.instance().is_initialized() else None
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
            cfg = compose(config_name="train", overrides=overrides)
    finally:
        GlobalHydra.instance().hydra = running
    OmegaConf.set_struct(cfg, False)
    return cfg
