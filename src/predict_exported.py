"""predict.py with an exported file: name the class of new inputs with onnxruntime, numpy and Pillow alone for an
ONNX file (no torch, Lightning or Hydra), with torch for a torch.export program (`.pt2`). The file's metadata says how
to read an input (image size and mode, or series), its graph does the rest (scaling, normalisation); the CSV files are
the ones the checkpoint path writes.

python predict.py ckpt_path=outputs/train/<date>_<time>/checkpoints/last.onnx input=photos/ [top_k=3] [batch_size=256]
python predict.py ckpt_path=outputs/train/<date>_<time>/checkpoints/last.pt2 input=photos/
"""

import glob
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from src.errors import CheckpointError, ConfigValueError, DataError, exit_on_run_error, first_line
from src.machinery.runs.folder import check_unused_folder_argument, command_line_value, write_csv

log = logging.getLogger(__name__)

SUFFIX = ".onnx"
PROGRAM_SUFFIX = ".pt2"  # a torch.export program: needs torch (still no Lightning or Hydra)
PROGRAM_METADATA = "metadata.json"  # its extra file, as src/export/formats.py writes it
KEYS = {"ckpt_path", "input", "top_k", "batch_size", "hydra.run.dir"}  # what this path takes on the command line
METADATA_KEY = "dl_template"  # as src/export/formats.py writes it


def exported_file(argv: Sequence[str]) -> str | None:
    """The `ckpt_path=` of the command line when it names an exported file (ONNX or a torch.export program), else None
    (a checkpoint: the usual path)."""
    path = command_line_value(argv, "ckpt_path")
    return path if path.lower().endswith((SUFFIX, PROGRAM_SUFFIX)) else None


def input_files(pattern: str) -> list[Path]:
    """The files `input=` names, sorted: one file, every file under a folder, or a glob's matches."""
    found = Path(pattern).rglob("*") if Path(pattern).is_dir() else map(Path, glob.glob(pattern, recursive=True))
    if not (files := sorted(path for path in found if path.is_file())):
        raise DataError(f"input={pattern} matches no file: give a file, a folder or a glob ('photos/*.jpg')")
    return files


def read_image(path: Path, mode: str, size: int) -> np.ndarray:
    """An image file as the data module's `read_input` decodes it, before scaling: RGB (16-bit grey as its top 8 bits),
    then `mode`, the shorter side resized to `size` (bilinear), centre-cropped: (C, size, size) float32 0..255."""
    from PIL import Image

    from src.data.image_file import load_image  # PIL and numpy only

    image = load_image(path)
    if mode == "L":
        image = image.convert("L")
    width, height = image.size  # torchvision's Resize(size) then CenterCrop(size), on a PIL image
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = size, int(size * long / short)
    new = (new_short, new_long) if width <= height else (new_long, new_short)
    if new != image.size:
        image = image.resize(new, Image.BILINEAR)
    left, top = round((new[0] - size) / 2.0), round((new[1] - size) / 2.0)  # as torchvision's CenterCrop
    image = image.crop((left, top, left + size, top + size))
    pixels = np.asarray(image, dtype=np.float32)  # (H, W) or (H, W, C)
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


def read_series(path: Path, dims: int) -> list[np.ndarray]:
    """Every series of a `.ts`/`.tsv` file, missing values filled as the data module fills them: (T_i, D) float32."""
    from src.data.ts_format import read_series_file  # numpy only

    series = read_series_file(path).series
    if not series:
        raise DataError(f"{path} holds no series")
    for number, s in enumerate(series, 1):
        if s.shape[1] != dims:
            raise DataError(f"{path}: series {number} has {s.shape[1]} dimension(s), not the {dims} the model reads")
    return [fill_missing(s).astype(np.float32) for s in series]


def fill_missing(series: np.ndarray) -> np.ndarray:
    """As src/data/ucr.py's: NaNs interpolated along time, the edges the nearest value, an empty dimension 0."""
    if not np.isnan(series).any():
        return series
    filled, steps = series.copy(), np.arange(len(series))
    for column in filled.T:
        known = ~np.isnan(column)
        column[~known] = np.interp(steps[~known], steps[known], column[known]) if known.any() else 0.0
    return filled


class ProgramSession:
    """A torch.export program behind onnxruntime's `session.run(None, feeds)`, so both formats predict alike."""

    def __init__(self, module: Any) -> None:
        self.module = module

    def run(self, outputs: None, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        import torch

        with torch.no_grad():  # inputs in the exported order: x, then lengths for series
            probabilities = self.module(*(torch.from_numpy(feeds[name]) for name in ("x", "lengths") if name in feeds))
        return [probabilities.numpy()]


def load_program(path: str) -> tuple[ProgramSession, dict[str, Any]]:
    """A torch.export program (`.pt2`) and the metadata export.py saved beside its graph."""
    import torch

    extra = {PROGRAM_METADATA: ""}
    torch_export_log = logging.getLogger("torch.export")  # logs a damaged file's traceback before it raises
    level = torch_export_log.level
    torch_export_log.setLevel(logging.ERROR)
    try:
        program = torch.export.load(path, extra_files=extra)
    except Exception as error:  # torch reports a damaged archive with several exception types
        raise CheckpointError(
            f"exported file {path} is not a readable torch.export program ({first_line(error)})"
        ) from None
    finally:
        torch_export_log.setLevel(level)
    if not extra[PROGRAM_METADATA]:
        raise CheckpointError(f"exported file {path} has no {PROGRAM_METADATA}: export it with export.py")
    return ProgramSession(program.module()), json.loads(extra[PROGRAM_METADATA])


def load_session(path: str) -> tuple[Any, dict[str, Any]]:
    """An onnxruntime session of the file (or a torch.export program's, `.pt2`) and the metadata export.py wrote."""
    if not Path(path).is_file():
        raise CheckpointError(f"exported file {path} does not exist")
    if path.lower().endswith(PROGRAM_SUFFIX):
        return load_program(path)
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime reports a damaged file with its own exception types
        raise CheckpointError(f"exported file {path} is not a readable ONNX model ({first_line(error)})") from None
    text = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
    if text is None:
        raise CheckpointError(f"exported file {path} has no {METADATA_KEY} metadata: export it with export.py")
    return session, json.loads(text)


def parse_arguments(argv: Sequence[str]) -> dict[str, str]:
    """`key=value` arguments; any other key is an error naming the valid ones."""
    values = {}
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep or key not in KEYS:
            raise ConfigValueError(f"{arg}: predict.py with an exported file takes {sorted(KEYS)}")
        values[key] = value.strip("'\"")
    if not values.get("input"):
        raise ConfigValueError("predict.py needs ckpt_path=<a .onnx or .pt2 file> and input=<file, folder or glob>")
    for key, default in (("top_k", "3"), ("batch_size", "256")):
        if not values.setdefault(key, default).isdigit() or int(values[key]) < 1:
            raise ConfigValueError(f"{key}={values[key]} is not valid: use a whole number of at least 1")
    return values


def predict_exported(argv: Sequence[str]) -> Path:
    """Write `predictions.csv` (and `unreadable.csv`) in a new run folder, outputs/predict/<date>_<time>/."""
    values = parse_arguments(argv)
    check_unused_folder_argument(argv)
    output_dir = Path(values.get("hydra.run.dir") or f"outputs/predict/{time.strftime('%Y-%m-%d_%H-%M-%S')}")
    session, metadata = load_session(values["ckpt_path"])  # the model first, as the checkpoint path checks it first
    files = input_files(values["input"])
    names, prep = metadata["class_names"], metadata["preprocessing"]
    k, batch_size = min(int(values["top_k"]), len(names)), int(values["batch_size"])
    series = prep["kind"] == "series"
    dims = metadata["inputs"][0]["shape"][-1]
    read, inputs, unreadable = [], [], []
    for path in files:
        try:
            found = read_series(path, dims) if series else [read_image(path, prep["mode"], prep["size"])]
            inputs += found
            read += [(path, index) for index in range(len(found))]
        except DataError as error:
            log.warning("Skipped: %s", error)
            unreadable.append([str(path), str(error)])
    output_dir.mkdir(parents=True, exist_ok=True)
    if unreadable:
        skipped = write_csv(output_dir / "unreadable.csv", ["file", "error"], unreadable)
        log.warning("Skipped %d unreadable file(s), listed in %s", len(unreadable), skipped)
    if not read:
        raise DataError(f"input={values['input']}: none of its {len(files)} file(s) is a readable input")
    probabilities = np.concatenate(
        [run_batch(session, inputs[i : i + batch_size], series, metadata) for i in range(0, len(inputs), batch_size)]
    )
    top = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]  # (N, k) class indices, most probable first
    several = len(read) > len({path for path, _ in read})
    header = ["file", *(["index"] if several else []), "prediction", "confidence"]
    header += [f"top{i}{part}" for i in range(1, k + 1) for part in ("", "_probability")]
    rows = []
    for (path, index), classes, row in zip(read, top.tolist(), probabilities.tolist(), strict=True):
        pairs = [item for c in classes for item in (names[c], row[c])]
        rows.append([str(path), *([index] if several else []), names[classes[0]], row[classes[0]], *pairs])
    written = write_csv(output_dir / "predictions.csv", header, rows)
    log.info("Wrote %d predictions to %s", len(rows), written)
    return written


def run_batch(session: Any, inputs: list[np.ndarray], series: bool, metadata: dict[str, Any]) -> np.ndarray:
    """Probabilities (B, K) of a batch: images stacked, series zero-padded with their lengths."""
    if not series:
        return session.run(None, {"x": np.stack(inputs)})[0]
    lengths = np.array([len(s) for s in inputs], dtype=np.int64)
    steps = metadata.get("time_steps") or int(lengths.max())  # exported with a fixed time dimension: padded to it
    if lengths.max() > steps:
        raise DataError(f"a series of {lengths.max()} steps: this file was exported for at most {steps} (time_steps)")
    x = np.zeros((len(inputs), steps, inputs[0].shape[1]), dtype=np.float32)
    for row, s in zip(x, inputs, strict=True):
        row[: len(s)] = s
    return session.run(None, {"x": x, "lengths": lengths})[0]


def main_exported(argv: Sequence[str]) -> None:
    """predict.py's entry for an exported file: log to the console, one `Error:` line and exit 1 on bad input."""
    import sys

    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    with exit_on_run_error():
        predict_exported(argv)
    sys.exit(0)
