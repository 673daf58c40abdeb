"""Every option of every config group, and every experiment, composes and instantiates; every network runs on every
data set whose inputs it takes (the data module's own sample batch)."""

import importlib.util

import pytest
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.callbacks import Callback, LearningRateMonitor
from omegaconf.errors import InterpolationKeyError

from src.errors import ConfigValueError
from src.machinery.config.instantiate import instantiate_callbacks, instantiate_loggers, instantiate_trainer
from src.machinery.config.schemas import check_value_ranges
from tests.conftest import CONF


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def test_every_group_has_its_options():
    # subsets: a fork adds its own options (the tests below pick them up) without editing this test
    assert {"cnn", "resnet", "rnn"} <= set(options("model"))
    assert {"cifar10", "cifar10_jpeg", "digits", "imagefolder", "mnist", "synthetic"} <= set(options("data"))
    assert {"cpu", "ddp", "default", "gpu"} <= set(options("trainer"))
    assert {"csv", "default", "none", "tensorboard", "wandb", "mlflow"} <= set(options("logger"))
    assert {"fdr", "limit", "overfit", "profiler"} <= set(options("debug"))


def build_module(cfg) -> LightningModule:
    return instantiate(cfg.model, optimizer=cfg.optimizer, scheduler=cfg.get("scheduler"))


@pytest.mark.parametrize("model", options("model"))
@pytest.mark.parametrize("data", options("data"))
def test_model_and_data_compose_and_instantiate(make_cfg, model, data):
    cfg = make_cfg(f"model={model}", f"data={data}", "model.net.width=8" if model == "resnet" else "seed=0")
    datamodule = instantiate(cfg.data)
    assert isinstance(datamodule, LightningDataModule)
    try:
        module = build_module(cfg)
    except InterpolationKeyError as error:  # a network reads what its inputs need: an image network, data.in_channels
        pytest.skip(f"model={model} takes inputs data={data} does not give ({str(error).splitlines()[0]})")
    except InstantiationException as error:  # or refuses, naming data.input_shape: the RNN on a table's rows
        if "data.input_shape" not in str(error):
            raise
        pytest.skip(f"model={model} does not take data={data}'s inputs ({str(error).splitlines()[-1]})")
    if not callable(sample_batch := getattr(datamodule, "sample_batch", None)):
        pytest.skip(f"data={data} ({type(datamodule).__name__}) has no sample_batch(batch_size) to run the network on")
    x, y, *extras = sample_batch(2)  # as the data module's loaders give them, after its on-device transform
    assert module(x, *extras).shape == (2, cfg.data.num_classes) and y.shape == (2,)


@pytest.mark.parametrize("optimizer", options("optimizer"))
@pytest.mark.parametrize("scheduler", options("scheduler"))
def test_optimizer_and_scheduler_build(make_cfg, optimizer, scheduler):
    cfg = make_cfg(f"optimizer={optimizer}", f"scheduler={scheduler}")
    params = [torch.nn.Parameter(torch.zeros(3))]
    opt = instantiate(cfg.optimizer)(params=params)
    assert opt.param_groups[0]["lr"] == cfg.optimizer.lr
    if cfg.scheduler is None:
        return
    sched = instantiate(cfg.scheduler)(opt, total_steps=100)
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step(), sched.step()
    assert max(lrs) == pytest.approx(cfg.optimizer.lr, rel=0.05)  # peaks at the configured lr
    assert lrs[0] < max(lrs) and lrs[-1] < 0.1 * max(lrs)  # warms up, then decays


@pytest.mark.parametrize("trainer", options("trainer"))
def test_trainer_options_instantiate(make_cfg, trainer):
    overrides = [f"trainer={trainer}"]
    if trainer == "gpu" and not torch.cuda.is_available():
        cfg = make_cfg(*overrides)
        assert cfg.trainer.accelerator == "gpu" and cfg.trainer.precision == "mixed"
        # no GPU here: the rest of the config still has to build, with the precision it resolves to
        overrides += ["trainer.accelerator=cpu", "trainer.precision=bf16-mixed"]
    if trainer == "ddp":
        overrides.append("trainer.accelerator=cpu")
    cfg = make_cfg(*overrides)
    assert isinstance(instantiate(cfg.trainer), Trainer)


@pytest.mark.parametrize("logger", options("logger"))
def test_logger_options_instantiate(make_cfg, logger, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")  # not the repository's mlruns/
    cfg = make_cfg(f"logger={logger}")
    loggers = instantiate_loggers(cfg.get("logger"))
    expected = {"csv": 1, "default": 2, "none": 0, "tensorboard": 1, "wandb": 1, "mlflow": 1}[logger]
    assert len(loggers) == expected


@pytest.mark.parametrize("callbacks", options("callbacks"))
def test_callback_options_instantiate(make_cfg, callbacks):
    cfg = make_cfg(f"callbacks={callbacks}")
    built = instantiate_callbacks(cfg.get("callbacks"), has_logger=True)
    # each entry of the group became one Lightning callback
    entries = [node for node in (cfg.get("callbacks") or {}).values() if node is not None]
    assert len(built) == len(entries) and all(isinstance(c, Callback) for c in built)
    Trainer(callbacks=built, logger=False, accelerator="cpu")


def test_lr_monitor_is_left_out_without_a_logger(make_cfg):
    cfg = make_cfg("logger=none")
    with_logger = instantiate_callbacks(cfg.callbacks, has_logger=True)
    without = instantiate_callbacks(cfg.callbacks, has_logger=False)
    assert [type(c) for c in with_logger if not isinstance(c, LearningRateMonitor)] == [type(c) for c in without]
    assert any(isinstance(c, LearningRateMonitor) for c in with_logger)


@pytest.mark.parametrize("name", options("experiment") + options("debug") + options("hparams_search"))
def test_experiments_debug_modes_and_searches_compose(make_cfg, name):
    group = next(g for g in ("experiment", "debug", "hparams_search") if (CONF / g / f"{name}.yaml").exists())
    cfg = make_cfg(f"{group}={name}")
    datamodule = instantiate(cfg.data)
    assert isinstance(datamodule, LightningDataModule)
    x, _, *extras = datamodule.sample_batch(2)  # a recipe's network takes its data's inputs
    assert build_module(cfg)(x, *extras).shape == (2, cfg.data.num_classes)
    if cfg.trainer.accelerator == "gpu" and not torch.cuda.is_available():
        return
    assert isinstance(instantiate(cfg.trainer), Trainer)


def test_paths_and_eval_compose(make_cfg, tmp_path):
    cfg = make_cfg()
    assert cfg.paths.output_dir == str(tmp_path)
    cfg = make_cfg("ckpt_path=some.ckpt", config_name="eval")
    assert cfg.ckpt_path == "some.ckpt" and cfg.get("data") is None
    assert isinstance(instantiate(cfg.trainer), Trainer)


def test_a_recipe_runs_on_the_jpeg_copy_of_cifar10(make_cfg):
    cfg = make_cfg("experiment=cifar10_fast", "data=cifar10_jpeg")
    assert cfg.data._target_.endswith("ImageFolderDataModule") and cfg.data.in_memory
    assert cfg.data.on_device and cfg.data.batch_size == 512  # the recipe's settings still apply


def test_shapes_reach_the_model_from_the_data_config(make_cfg):
    cfg = make_cfg("model=rnn", "data=cifar10")
    assert (list(cfg.model.net.input_shape), cfg.model.net.num_classes) == ([3, 32, 32], 10)
    cfg = make_cfg("model=cnn", "data=mnist", "data.image_size=20")
    assert (cfg.model.net.in_channels, list(cfg.data.input_shape)) == (1, [1, 20, 20])


@pytest.mark.parametrize(
    "key,value",
    [("limit_train_batches", 1), ("limit_val_batches", 1), ("overfit_batches", 1), ("val_check_interval", 1)],
)
def test_a_whole_number_of_batches_stays_a_number_of_batches(make_cfg, key, value):
    # Lightning reads int 1 as one batch and float 1.0 as every batch: the schema must not turn one into the other.
    cfg = make_cfg(f"trainer.{key}={value}")
    assert type(cfg.trainer[key]) is int
    assert type(getattr(instantiate(cfg.trainer), key)) is int


@pytest.mark.parametrize(
    "override,message",
    [
        (
            "trainer.max_steps=-5",
            "`max_steps` must be a non-negative integer or -1 (infinite steps). You passed in -5.",
        ),
        ("trainer.devices=0", "`Trainer(devices=0)` value is not a valid input using cpu accelerator."),
        pytest.param(
            "trainer.accelerator=tpu",
            "Requirement 'torch_xla>=1.13' not met.",
            marks=pytest.mark.skipif(importlib.util.find_spec("torch_xla") is not None, reason="torch_xla is here"),
        ),
    ],
)
def test_a_value_the_trainer_refuses_is_one_line(make_cfg, override, message):
    """Lightning's refusal as a ConfigValueError (`Error: <its message>`), not Hydra's three-line instantiate error."""
    with pytest.raises(ConfigValueError) as error:
        instantiate_trainer(make_cfg("trainer=cpu", override).trainer)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_a_network_the_data_does_not_feed_is_one_line_naming_the_key(make_cfg):
    cfg = make_cfg("model=cnn", "~data.in_channels", "data.input_shape=[13]")  # a table's rows: no image channels
    with pytest.raises(ConfigValueError, match=r"reads data.in_channels, which data=.* does not give: .*\[13\]"):
        check_value_ranges(cfg)
