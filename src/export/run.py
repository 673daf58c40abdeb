"""export(cfg): write a run's network with its preprocessing into one file beside the checkpoint, verify it on the
test split, measure it, and record the report in export.json beside it. Nothing is left half written: the file is
written under a temporary name and renamed only once it has passed."""

import json
import logging
import os
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from src.errors import ConfigValueError, RunError, first_line
from src.export import FORMATS
from src.export.build import build_exported, class_names, example_inputs, load_run
from src.export.formats import ExportError, export_onnx, export_program, load_program
from src.export.verify import TOLERANCE, TestSplit, compare, latency, onnx_runner, program_runner
from src.machinery.checkpoints.files import write_atomically
from src.machinery.checkpoints.precheck import file_digest
from src.machinery.config.schemas import ROOT
from src.machinery.tracking.git import git_state

log = logging.getLogger(__name__)


def exported_path(ckpt_path: Path, fmt: str) -> Path:
    return ckpt_path.with_suffix(FORMATS[fmt])


def export(cfg: DictConfig) -> dict[str, Any]:
    """Export `cfg.ckpt_path` as `cfg.format`; the report (also in export.json beside the file)."""
    if cfg.format not in FORMATS:
        raise ConfigValueError(f"format={cfg.format} does not exist; valid formats: {list(FORMATS)}")
    if not isinstance(cfg.threads, int) or cfg.threads < 1:
        raise ConfigValueError(f"threads={cfg.threads} is not valid: use a whole number of at least 1")
    if not isinstance(cfg.latency_seconds, (int, float)) or cfg.latency_seconds <= 0:
        raise ConfigValueError(f"latency_seconds={cfg.latency_seconds} is not valid: use a number of seconds over 0")
    torch.set_num_threads(cfg.threads)
    ckpt_path = Path(cfg.ckpt_path)
    path = Path(cfg.output) if cfg.get("output") else exported_path(ckpt_path, cfg.format)
    _, module, datamodule, checkpoint = load_run(ckpt_path, cfg.get("data_dir"))
    model, preprocessing = build_exported(module, datamodule)
    split = TestSplit(datamodule)
    input_shape = tuple(datamodule.input_shape)
    if model.series and input_shape[0] is None:  # any length: trace with the test split's longest
        input_shape = (int(split.raw[0][0].shape[1]), input_shape[1])
    metadata = {
        "format": cfg.format,
        "class_names": class_names(checkpoint, datamodule),
        "inputs": input_spec(model.series, tuple(datamodule.input_shape)),
        "output": {"name": "probabilities", "shape": ["batch", len(class_names(checkpoint, datamodule))]},
        "preprocessing": preprocessing,
        "model": f"{type(module.net).__module__}.{type(module.net).__qualname__}",
        "source_checkpoint": str(ckpt_path),
        "source_sha256": file_digest(ckpt_path),
        "git_commit": git_state(ROOT)["commit"],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")  # the suffix torch.export wants
    try:
        with torch.no_grad():
            args = example_inputs(model, input_shape)
        write = export_onnx if cfg.format == "onnx" else export_program
        if steps := write(model, args, temp, metadata):  # a fixed time dimension: series padded to it
            split.padded_to(steps)
        metadata["time_steps"] = steps
        run = onnx_runner(temp, cfg.threads) if cfg.format == "onnx" else program_runner(load_program(temp)[0])
        checked = compare(module, run, split)
        if checked["disagreements"] or not checked["max_probability_difference"] <= TOLERANCE:
            raise ExportError(
                f"{path.name} fails verification on the test split: {checked['disagreements']} of "
                f"{checked['test_examples']} predictions differ from the checkpoint's, largest probability difference "
                f"{checked['max_probability_difference']:.3g} (at most {TOLERANCE:g} allowed); nothing written"
            )
        eager, _ = build_exported(module, datamodule, padded_rnn=False)  # the network as trained (packed RNNs)
        report = {
            "file": str(path),
            "format": cfg.format,
            "size_bytes": temp.stat().st_size,
            **checked,
            "tolerance": TOLERANCE,
            "threads": cfg.threads,
            "latency_ms": latency(eager, run, split, float(cfg.latency_seconds)),
            "metadata": metadata,
        }
        os.replace(temp, path)
    except BaseException as error:  # an interrupt too: no half-written file stays
        temp.unlink(missing_ok=True)
        if isinstance(error, RunError) or not isinstance(error, Exception):
            raise
        raise ExportError(
            f"exporting {ckpt_path} as {cfg.format} failed: {type(error).__name__}: {first_line(error)}"
        ) from None
    record(report, path.parent / "export.json")
    print_table(report)
    return report


def input_spec(series: bool, input_shape: tuple) -> list[dict[str, Any]]:
    if series:
        return [
            {"name": "x", "shape": ["batch", "time", input_shape[1]], "dtype": "float32", "layout": "(B, T, D)"},
            {"name": "lengths", "shape": ["batch"], "dtype": "int64"},
        ]
    return [{"name": "x", "shape": ["batch", *input_shape], "dtype": "float32", "layout": "NCHW, pixels 0..255"}]


def record(report: dict[str, Any], json_path: Path) -> None:
    """Add the report to export.json (one entry per exported file), written atomically."""
    try:
        reports = json.loads(json_path.read_text()) if json_path.is_file() else {}
    except (OSError, ValueError):
        reports = {}
    reports[Path(report["file"]).name] = report
    write_atomically(json_path, (json.dumps(reports, indent=2) + "\n").encode())
    log.info("Report saved in %s", json_path)


def print_table(report: dict[str, Any]) -> None:
    lines = [
        f"Exported {report['file']} ({report['format']}, {report['size_bytes'] / 1e6:.2f} MB)",
        f"Test split: {report['test_examples']} examples, agreement {report['agreement']:.4f} "
        f"({report['disagreements']} differ), max probability difference {report['max_probability_difference']:.2e}",
        f"{'batch':>6} {'eager ms':>10} {'exported ms':>12} {'speed-up':>9}   ({report['threads']} thread(s))",
    ]
    for name, times in report["latency_ms"].items():
        eager, exported = times["eager_ms"], times["exported_ms"]
        lines.append(f"{name.split('_')[1]:>6} {eager:>10.3f} {exported:>12.3f} {eager / exported:>8.2f}x")
    print("\n".join(lines), flush=True)
