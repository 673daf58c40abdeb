"""evaluate(cfg): rebuild a training run from its checkpoint and test it."""

import logging
from pathlib import Path

import lightning.pytorch as pl
import torch
from omegaconf import DictConfig, OmegaConf

from src.errors import CheckpointError, DataError, first_line
from src.machinery.checkpoints.bounds import MAX_CLASS_NAME, TRUST_HINT, bounds_lifted, lift_bounds
from src.machinery.checkpoints.files import check_state_dict_fits, check_tensor_mapping, read_checkpoint
from src.machinery.config.instantiate import (
    instantiate_group,
    instantiate_loggers,
    instantiate_node,
    instantiate_trainer,
)
from src.machinery.resume.stored_config import rebuild_run_config
from src.machinery.runs.folder import write_csv
from src.machinery.tracking.console import tidy_console
from src.machinery.tracking.loggers import finish_tracking
from src.machinery.tracking.redacted_hparams import redact_logged_hyperparameters
from src.machinery.tracking.secrets import redact_hydra_records, secret_values

log = logging.getLogger(__name__)
tidy_console()


def load_checkpoint(ckpt_path: str | Path, data_dir: str | None = None) -> tuple[DictConfig, dict]:
    """The training config and contents of a checkpoint (verified, loaded with `weights_only=True`, bounded); the
    config is rebuilt from this repository's conf/ with the checkpoint's recorded choices, so nothing in the file
    chooses code, and with this machine's data location (`data_dir`, else conf/'s) and workers."""
    checkpoint = read_checkpoint(ckpt_path)
    if "run_config" not in checkpoint:
        raise CheckpointError(
            f"checkpoint {ckpt_path} holds no run_config, which eval.py and predict.py rebuild the run from: it was "
            "written by a run with callbacks.run_config=null (train again with it) or not by this template's train.py"
        )
    return rebuild_run_config(checkpoint["run_config"], ckpt_path, data_dir=data_dir), checkpoint


def load_module(ckpt_path: str | Path, data_dir: str | None = None) -> tuple[DictConfig, pl.LightningModule, dict]:
    """The training config, the trained module and the checkpoint's contents (class names, ...)."""
    trained, checkpoint = load_checkpoint(ckpt_path, data_dir)
    if "weights" in trained.model.net:  # pretrained weights (a download, a file) are replaced by the checkpoint's
        trained.model.net.weights = None
    check_tensor_mapping(checkpoint["state_dict"], ckpt_path)
    # Built first on the meta device (no memory): a stored width or depth that does not fit the weights in the file
    # is refused before a real network of that size is allocated. Evaluation never compiles: a compiled run's weights
    # load unchanged into the plain network.
    try:
        with torch.device("meta"):
            shapes = instantiate_node(trained.model, optimizer=trained.optimizer, compile=False).state_dict()
    except (NotImplementedError, RuntimeError) as error:  # a network whose __init__ reads tensor values
        log.info("The network cannot be built on the meta device (%s): its shapes are checked once built", error)
    else:
        check_state_dict_fits(shapes, checkpoint["state_dict"], source=ckpt_path)
    module: pl.LightningModule = instantiate_node(trained.model, optimizer=trained.optimizer, compile=False)
    check_state_dict_fits(module.state_dict(), checkpoint["state_dict"], source=ckpt_path)
    module.load_state_dict(checkpoint["state_dict"])
    return trained, module, checkpoint


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Test `cfg.ckpt_path` on the training run's data (or on `data=...` when given)."""
    if not cfg.get("ckpt_path"):
        raise CheckpointError("eval.py needs ckpt_path=<path to a .ckpt file>")
    ckpt_path = Path(cfg.ckpt_path)
    lift_bounds(cfg.get("trust_checkpoint", False))  # the user's own switch, for a file they trust
    # Hydra recorded the command line (a key given there included) before this ran: redact its records.
    secrets = secret_values(OmegaConf.to_container(cfg, resolve=True))
    redact_hydra_records(cfg.paths.output_dir, secrets)
    trained, module, checkpoint = load_module(ckpt_path, cfg.get("data_dir"))
    data_cfg = cfg.data if cfg.get("data") else trained.data
    datamodule: pl.LightningDataModule = instantiate_node(data_cfg)
    if cfg.get("data"):  # other data than the run's: its inputs and labels must fit the trained network
        check_data_fits(module, datamodule, ckpt_path)
    no_predict_loader = type(datamodule).predict_dataloader is pl.LightningDataModule.predict_dataloader
    if cfg.get("predict") and no_predict_loader:
        raise DataError(
            f"eval.py predict=true: {type(datamodule).__name__} has no predict_dataloader; give it one (the test "
            "split, in order: return self.test_dataloader())"
        )
    loggers = instantiate_loggers(cfg.get("logger"))
    redact_logged_hyperparameters(loggers, secrets)  # Lightning logs the module's own hyperparameters
    callbacks = instantiate_group(cfg.get("callbacks"))
    trainer = instantiate_trainer(cfg.trainer, logger=loggers or False, callbacks=callbacks)
    try:
        results = trainer.test(module, datamodule=datamodule)
    finally:
        finish_tracking(loggers)
    metrics = {k: float(v) for k, v in results[0].items()} if results else {}
    if trainer.is_global_zero:
        log.info("Test metrics of %s: %s", ckpt_path, ", ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items())))
    if cfg.get("predict"):
        names = stored_class_names(checkpoint, datamodule, ckpt_path)
        batches = trainer.predict(module, datamodule=datamodule)
        write_predictions(batches, names, Path(cfg.paths.output_dir))
    return metrics


def stored_class_names(checkpoint: dict, datamodule: pl.LightningDataModule, ckpt_path: str | Path) -> list[str]:
    """The checkpoint's class names, each of a bounded length (older checkpoints: the data module's)."""
    names = checkpoint.get("class_names")
    if names is None:
        return [str(name) for name in datamodule.class_names]
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise CheckpointError(f"checkpoint {ckpt_path}: class_names is not a list of names (str)")
    if not bounds_lifted() and (longest := max(map(len, names), default=0)) > MAX_CLASS_NAME:
        raise CheckpointError(
            f"checkpoint {ckpt_path} refused: a class name of {longest} characters, over the bound of "
            f"{MAX_CLASS_NAME}; {TRUST_HINT}"
        )
    return names


def check_data_fits(module: pl.LightningModule, datamodule: pl.LightningDataModule, ckpt_path: Path) -> None:
    """Other data than the run's (`data=...`): its inputs must go through the trained network and its classes be
    among the network's outputs. Checked on the data module's `sample_batch`; one without it is checked by testing."""
    if callable(sample := getattr(datamodule, "sample_batch", None)):
        x, _, *extras = sample(2)
        try:
            with torch.no_grad():
                num_outputs = module.eval()(x, *extras).shape[1]
        except RuntimeError as error:
            raise DataError(
                f"data: inputs of shape {tuple(x.shape[1:])} do not fit {ckpt_path}'s network ({first_line(error)})"
            ) from None
        if datamodule.num_classes > num_outputs:
            raise DataError(
                f"data: {datamodule.num_classes} classes, but {ckpt_path}'s network predicts "
                f"{num_outputs}: test it on data of at most {num_outputs} classes (data.classes=[...])"
            )


def write_predictions(batches: list[dict[str, torch.Tensor]], class_names: list[str], output_dir: Path) -> Path:
    """`predictions.csv`: one row per test example, in the data set's order; classes by name."""
    columns = {key: torch.cat([b[key] for b in batches]).tolist() for key in batches[0] if key != "probabilities"}
    for key in ("prediction", "label"):
        if key in columns:
            columns[key] = [class_names[index] if 0 <= index < len(class_names) else index for index in columns[key]]
    output_dir.mkdir(parents=True, exist_ok=True)
    rows = [[i, *row] for i, row in enumerate(zip(*columns.values(), strict=True))]
    path = write_csv(output_dir / "predictions.csv", ["index", *columns], rows)
    log.info("Wrote %d predictions to %s", len(columns["prediction"]), path)
    return path
