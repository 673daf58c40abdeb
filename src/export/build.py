"""Rebuild a run from its checkpoint (the way eval.py and predict.py do: verified, `weights_only`, the config rebuilt
from conf/) and put together what is exported: the preprocessing of its data, its network, a softmax."""

import logging
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from omegaconf import DictConfig

from src.data.tensor_data import TensorDataModule
from src.errors import DataError
from src.eval import load_checkpoint
from src.export.graph import ExportedModel, ImageInputs, PaddedRNN, SeriesInputs
from src.machinery.checkpoints.files import check_state_dict_fits, restore_data_state
from src.machinery.config.instantiate import instantiate_node
from src.models.rnn import RNNClassifier
from src.module import takes_extras

try:  # the bundled time-series examples: a project started without them (docs/forking.md) has no src/data/ucr.py
    from src.data.ucr import UCRDataModule
except ImportError:
    UCRDataModule = None

log = logging.getLogger(__name__)

COMPILED_PREFIX = "_orig_mod."  # what a compiled wrapper assigned in place of the network adds to every key


def load_run(
    ckpt_path: str | Path, data_dir: str | None = None
) -> tuple[DictConfig, pl.LightningModule, pl.LightningDataModule, dict]:
    """The training config, the trained module (eval mode, not compiled) and its data module, with the state the
    checkpoint stored for it (class names, normalisation), and the checkpoint's contents. The data is read from
    `data_dir` (else conf/'s location on this machine), never from where the checkpoint says."""
    trained, checkpoint = load_checkpoint(ckpt_path, data_dir)
    if "weights" in trained.model.net:  # pretrained weights (a download) are replaced by the checkpoint's
        trained.model.net.weights = None
    module: pl.LightningModule = instantiate_node(trained.model, optimizer=trained.optimizer, compile=False)
    # A run that compiled by assigning torch.compile's wrapper saved keys with `_orig_mod.`: the weights are the same.
    state = {key.replace(COMPILED_PREFIX, ""): value for key, value in checkpoint["state_dict"].items()}
    check_state_dict_fits(module.state_dict(), state, source=ckpt_path)
    module.load_state_dict(state)
    module.configure_model()  # channels_last as trained (compile is off)
    datamodule = instantiate_node(trained.data)
    restore_data_state(datamodule, checkpoint, ckpt_path)
    return trained, module.eval(), datamodule, checkpoint


def class_names(checkpoint: dict, datamodule: pl.LightningDataModule) -> list[str]:
    names = checkpoint.get("class_names")
    if isinstance(names, list) and all(isinstance(name, str) for name in names):
        return names
    return [str(name) for name in datamodule.class_names]  # older checkpoints: the data module's


def image_preprocessing(datamodule: TensorDataModule) -> dict[str, Any]:
    """What a reader does before the graph, and the constants the graph holds (metadata)."""
    channels, size, _ = datamodule.input_shape
    return {
        "kind": "image",
        "reader": f"decode to RGB ({'then grey, L' if channels == 1 else 'RGB'}), resize the shorter side to {size} "
        f"(bilinear), centre-crop {size}x{size}, (C, H, W) float32 pixels 0..255",
        "mode": "L" if channels == 1 else "RGB",
        "size": size,
        "in_graph": "x * max_value / 255, rounded when max_value > 1, / max_value, (x - mean) / std",
        "max_value": float(datamodule.max_value),
        "mean": [float(v) for v in datamodule.mean.flatten()],
        "std": [float(v) for v in datamodule.std.flatten()],
    }


def series_preprocessing(datamodule: pl.LightningDataModule) -> dict[str, Any]:
    stats = {
        k: None if v is None else [float(x) for x in v] for k, v in (("mean", datamodule.mean), ("std", datamodule.std))
    }
    return {
        "kind": "series",
        "reader": "a .ts/.tsv file's series, missing values filled by linear interpolation along time (the edges by "
        "the nearest value, an empty dimension by 0), zero-padded to (B, T_max, D) float32, lengths (B,) int64",
        "in_graph": f"normalise={datamodule.normalise} over each series' valid steps, padding zeroed",
        "normalise": datamodule.normalise,
        **stats,
    }


def build_exported(
    module: pl.LightningModule, datamodule: pl.LightningDataModule, padded_rnn: bool = True
) -> tuple[ExportedModel, dict[str, Any]]:
    """The module's network behind its data's preprocessing, and that preprocessing's description (metadata).
    `padded_rnn`: an RNNClassifier over series runs without packing (what exports); False: the network as trained."""
    net, flip_tta = module.net, bool(module.hparams.get("flip_tta", False))
    if isinstance(datamodule, TensorDataModule):
        inputs = ImageInputs(datamodule.max_value, datamodule.mean, datamodule.std)
        return ExportedModel(inputs, net, False, flip_tta).eval(), image_preprocessing(datamodule)
    if UCRDataModule is not None and isinstance(datamodule, UCRDataModule):
        if datamodule.normalise == "dataset" and datamodule.mean is None:
            datamodule.setup()  # an older checkpoint without the statistics: from the training split
        if padded_rnn and isinstance(net, RNNClassifier):
            net = PaddedRNN(net)
        inputs = SeriesInputs(datamodule.normalise, datamodule.mean, datamodule.std)
        return ExportedModel(inputs, net, takes_extras(module.net)).eval(), series_preprocessing(datamodule)
    raise DataError(
        f"export.py knows the preprocessing of image data (TensorDataModule) and UCR series (UCRDataModule), not of "
        f"{type(datamodule).__name__}: give it one of those bases"
    )


def example_inputs(model: ExportedModel, input_shape: tuple) -> tuple[torch.Tensor, ...]:
    """Inputs of batch 2 (a batch of 1 would be specialised) to trace the export with."""
    if not model.series:
        return (torch.rand(2, *input_shape) * 255,)
    steps, dims = input_shape
    steps = steps or 16
    return torch.randn(2, steps, dims), torch.tensor([steps, max(1, steps - 3)])
