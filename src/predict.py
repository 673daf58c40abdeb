"""predict(cfg): name the class of new inputs (image files, or whatever the run's data module reads) with a training
run's checkpoint. The data module reads each file (`read_input(path)`, or `read_inputs(path)` for a file of several
inputs), as the network takes it, with the state the checkpoint stored for it (e.g. its normalisation)."""

import glob
import logging
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

from src.errors import CheckpointError, ConfigValueError, DataError
from src.eval import load_module, stored_class_names
from src.machinery.checkpoints.bounds import lift_bounds
from src.machinery.checkpoints.files import restore_data_state
from src.machinery.config.instantiate import instantiate_group, instantiate_node, instantiate_trainer
from src.machinery.runs.folder import write_csv
from src.machinery.tracking.console import tidy_console
from src.machinery.tracking.secrets import redact_hydra_records, secret_values

log = logging.getLogger(__name__)
tidy_console()


def input_files(pattern: str) -> list[Path]:
    """The files `input=` names, sorted: one file, every file under a folder, or a glob's matches."""
    found = Path(pattern).rglob("*") if Path(pattern).is_dir() else map(Path, glob.glob(pattern, recursive=True))
    if not (files := sorted(path for path in found if path.is_file())):
        raise DataError(f"input={pattern} matches no file: give a file, a folder or a glob ('photos/*.jpg')")
    for path in files:  # predictions.csv names each file: a name that is not text cannot be written there
        try:
            str(path).encode()
        except UnicodeEncodeError:
            shown = str(path).encode(errors="surrogateescape").decode(errors="backslashreplace")
            raise DataError(f"input: the file name {shown} is not UTF-8: rename it (or leave it out)") from None
    return files


def stack_inputs(inputs: list[torch.Tensor]) -> tuple[torch.Tensor, None]:
    """Inputs of one shape as a batch with no labels: ((N, ...), None)."""
    return torch.stack(inputs), None


def predict(cfg: DictConfig) -> Path:
    """Write `predictions.csv` for every readable input `cfg.input` names (`unreadable.csv`: the files skipped)."""
    lift_bounds(cfg.get("trust_checkpoint", False))  # the user's own switch, for a file they trust
    redact_hydra_records(cfg.paths.output_dir, secret_values(OmegaConf.to_container(cfg, resolve=True)))
    files = input_files(str(cfg.input))
    trained, module, checkpoint = load_module(cfg.ckpt_path, cfg.get("data_dir"))
    # The run's data module knows its inputs (images: size, channels, scale and normalisation); it reads no data.
    datamodule = instantiate_node(trained.data)
    restore_data_state(datamodule, checkpoint, cfg.ckpt_path)  # what Lightning saved of it: its normalisation
    read_inputs = getattr(datamodule, "read_inputs", None)  # a file of several inputs (a .ts file of series)
    if not callable(read_inputs) and not callable(read_input := getattr(datamodule, "read_input", None)):
        raise DataError(
            f"{type(datamodule).__name__} (the data of {cfg.ckpt_path}) has no read_input(path): predict.py cannot "
            "read new inputs for it; give the data module one (docs/extending.md)"
        )
    if not callable(read_inputs):
        read_inputs = lambda path: [read_input(path)]  # noqa: E731 - one input a file
    names = stored_class_names(checkpoint, datamodule, cfg.ckpt_path)
    if len(names) != datamodule.num_classes:
        raise CheckpointError(f"checkpoint {cfg.ckpt_path}: class_names is not a list of {datamodule.num_classes}")
    if not isinstance(cfg.top_k, int) or cfg.top_k < 1:
        raise ConfigValueError(f"top_k={cfg.top_k} is not valid: use a whole number of at least 1")
    k = min(cfg.top_k, len(names))  # a run of 2 classes lists 2
    read, inputs, unreadable = [], [], []  # read: (file, index in the file) of each input
    for path in files:
        try:
            found = read_inputs(path)  # inputs as the network takes them, e.g. (C, H, W) normalised
            inputs += found
            read += [(path, index) for index in range(len(found))]
        except DataError as error:
            log.warning("Skipped: %s", error)
            unreadable.append([str(path), str(error)])
    (output_dir := Path(cfg.paths.output_dir)).mkdir(parents=True, exist_ok=True)
    if unreadable:
        skipped = write_csv(output_dir / "unreadable.csv", ["file", "error"], unreadable)
        log.warning("Skipped %d unreadable file(s), listed in %s", len(unreadable), skipped)
    if not read:
        raise DataError(f"input={cfg.input}: none of its {len(files)} file(s) is a readable input")
    # Batches as the data module's loaders give them, with no labels: (x, None, *extras); inputs of one shape are
    # stacked, a data module whose inputs differ in shape (sequences of any length) collates them itself.
    collate = getattr(datamodule, "collate_inputs", None) or stack_inputs
    loader = DataLoader(inputs, batch_size=cfg.batch_size, collate_fn=collate)
    trainer = instantiate_trainer(cfg.trainer, logger=False, callbacks=instantiate_group(cfg.get("callbacks")))
    batches = trainer.predict(module, dataloaders=loader)
    top = torch.cat([b["probabilities"] for b in batches]).float().topk(k, dim=1)  # (N, k) each
    several = len(read) > len({path for path, _ in read})  # a file held several inputs: rows say which one
    header = ["file", *(["index"] if several else []), "prediction", "confidence"]
    header += [f"top{i}{part}" for i in range(1, k + 1) for part in ("", "_probability")]
    rows = []
    for (path, index), classes, probabilities in zip(read, top.indices.tolist(), top.values.tolist(), strict=True):
        pairs = [item for c, p in zip(classes, probabilities, strict=True) for item in (names[c], p)]
        rows.append([str(path), *([index] if several else []), names[classes[0]], probabilities[0], *pairs])
    written = write_csv(output_dir / "predictions.csv", header, rows)
    log.info("Wrote %d predictions to %s", len(rows), written)
    return written
