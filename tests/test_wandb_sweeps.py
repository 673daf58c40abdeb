"""W&B sweep definitions (sweeps/*.yaml): every command line the agent would run composes as a training config.

The agent turns each run's parameters into a command with wandb's own functions (`create_sweep_command`,
`create_sweep_command_args`) and the macro expansion of `wandb_agent.Agent._command_run`, repeated here.
"""

import itertools
import math
import random
from pathlib import Path
from typing import Any

import pytest
import yaml
from omegaconf import OmegaConf
from wandb.sdk.launch.sweeps.utils import create_sweep_command, create_sweep_command_args

from src.machinery.config.schemas import ROOT
from tests.conftest import compose_config

SWEEPS = sorted((ROOT / "sweeps").glob("*.yaml"))
SAMPLES = 4  # runs drawn from a random or bayes sweep's distributions


def agent_command(sweep: dict, params: dict[str, Any], sweep_id: str, monkeypatch) -> list[str]:
    """The command line `wandb agent` runs for one set of parameters (as in Agent._command_run)."""
    monkeypatch.setenv("WANDB_SWEEP_ID", sweep_id)
    command = create_sweep_command(list(sweep["command"]))  # ${envvar:...} filled in
    sweep_vars = create_sweep_command_args({"args": {k: {"value": v} for k, v in params.items()}})
    sweep_vars |= {"interpreter": ["python"], "program": [sweep["program"]], "env": ["/usr/bin/env"]}
    expanded = []
    for chunk in map(str, command):
        if chunk.startswith("${") and chunk.endswith("}"):
            expanded += sweep_vars.get(chunk[2:-1]) or []
        else:
            expanded.append(chunk)
    return expanded


def draw(spec: dict, rng: random.Random) -> Any:
    """One value of a parameter, as the sweep's distribution gives it."""
    if "values" in spec:
        return rng.choice(spec["values"])
    if "value" in spec:
        return spec["value"]
    kind, low, high = spec["distribution"], spec["min"], spec["max"]
    if kind == "uniform":
        return rng.uniform(low, high)
    if kind == "int_uniform":
        return rng.randint(low, high)
    if kind == "log_uniform_values":
        return math.exp(rng.uniform(math.log(low), math.log(high)))
    raise ValueError(f"distribution {kind!r} is not drawn by this test: add it to draw()")


def parameter_sets(sweep: dict) -> list[dict[str, Any]]:
    """A grid sweep's every combination; a random or bayes sweep's first few draws."""
    parameters = sweep["parameters"]
    if sweep["method"] == "grid":
        names = list(parameters)
        grid = itertools.product(*(parameters[n]["values"] for n in names))
        return [dict(zip(names, combo, strict=True)) for combo in grid]
    rng = random.Random(0)
    return [{name: draw(spec, rng) for name, spec in parameters.items()} for _ in range(SAMPLES)]


def test_there_are_grid_random_and_bayes_examples():
    assert {yaml.safe_load(p.read_text())["method"] for p in SWEEPS} == {"grid", "random", "bayes"}


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.stem)
def test_every_agent_command_composes_with_its_parameters(path: Path, tmp_path, monkeypatch):
    sweep = yaml.safe_load(path.read_text())
    assert sweep["metric"]["name"] in {"val/acc_best", "val/acc", "val/loss"}  # a metric the runs log
    runs = parameter_sets(sweep)
    if sweep["method"] == "grid":
        assert len(runs) == math.prod(len(spec["values"]) for spec in sweep["parameters"].values())
    for params in runs:
        command = agent_command(sweep, params, "abc123", monkeypatch)
        assert command[:3] == ["/usr/bin/env", "python", "train.py"]
        overrides = command[3:]
        assert overrides[0] == "group=sweep_abc123"  # every run of the sweep in one W&B group
        cfg = compose_config("train", overrides, tmp_path, keep_hydra=True)
        assert cfg.group == "sweep_abc123"
        choices = cfg.hydra.runtime.choices
        for name, value in params.items():  # a config group's option (model=rnn), or a value
            got = choices[name] if name in choices else OmegaConf.select(cfg, name)
            assert got == pytest.approx(value) if isinstance(value, float) else got == value, name
