"""Write the exported graph in one format: ONNX (opset of torch's dynamo exporter; metadata in the model's
metadata_props) or a `torch.export` program (`.pt2`; metadata in its extra file `metadata.json`)."""

import json
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from src.errors import RunError, first_line
from src.export.graph import ExportedModel

log = logging.getLogger(__name__)

METADATA_KEY = "dl_template"  # ONNX metadata_props key (and the .pt2's extra file `metadata.json`): JSON
PT2_METADATA = "metadata.json"


class ExportError(RunError):
    """A network that cannot be exported, or an export that does not compute what the checkpoint does."""


def input_names(model: ExportedModel) -> list[str]:
    return ["x", "lengths"] if model.series else ["x"]


def dynamic_shapes(model: ExportedModel, time: bool = True) -> tuple[dict, ...]:
    """A dynamic batch dimension, and for series a dynamic time dimension (`time=False`: a fixed one)."""
    batch = torch.export.Dim("batch", min=1)
    if not model.series:
        return ({0: batch},)
    return ({0: batch, 1: torch.export.Dim("time", min=2)} if time else {0: batch}, {0: batch})


def unsupported(error: Exception, fmt: str) -> ExportError:
    """One line naming the operator the exporter could not take, when its message names one."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))  # the exporter colours its messages
    found = re.search(r"op='(aten\.\w+)'(?:, overload='(\w+)')?", text) or re.search(r"\b(aten\.\w+(?:\.\w+)?)", text)
    if found:
        op = ".".join(part for part in found.groups() if part)
        return ExportError(f"the network cannot be exported to {fmt}: operator {op} is not supported by its exporter")
    first = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    return ExportError(f"the network cannot be exported to {fmt}: {type(error).__name__}: {first}")


def export_onnx(model: ExportedModel, args: tuple, path: Path, metadata: dict[str, Any]) -> int | None:
    """`model` as ONNX at `path`, dynamic batch (and time), its metadata as metadata_props[METADATA_KEY]; the number
    of time steps when they had to be fixed, else None."""
    import onnx

    for name in ("onnx_ir", "onnxscript"):  # their passes log every step at INFO
        logging.getLogger(name).setLevel(logging.WARNING)

    def onnx_program(time: bool) -> Any:
        return torch.onnx.export(
            model,
            args,
            dynamo=True,
            input_names=input_names(model),
            output_names=["probabilities"],
            dynamic_shapes=dynamic_shapes(model, time),
            verbose=False,
        )

    program, fixed_time = with_fixed_time_fallback(model, args, onnx_program, "ONNX")
    metadata = {**metadata, "time_steps": fixed_time}
    try:
        program.save(str(path))
    except Exception as error:
        raise unsupported(error, "ONNX") from None
    proto = onnx.load(str(path))
    proto.metadata_props.add(key=METADATA_KEY, value=json.dumps(metadata))
    onnx.save(proto, str(path))
    return fixed_time


def with_fixed_time_fallback(
    model: ExportedModel, args: tuple, export: Callable[[bool], Any], fmt: str
) -> tuple[Any, int | None]:
    """`export(time=True)`; for series that fails on (an LSTM/GRU in torch.export, a GRU over chunks of steps in the
    ONNX exporter), `export(time=False)` with the time steps fixed at the example's. The exporter's result, and the
    fixed number of steps or None."""
    try:
        try:
            return export(True), None
        except Exception as error:
            if not model.series:
                raise
            log.info("%s: the time dimension is fixed at %d steps (%s)", fmt, args[0].shape[1], first_line(error))
        return export(False), int(args[0].shape[1])
    except Exception as error:  # the exporters' errors have many types (UserError, DispatchError, ...)
        raise unsupported(error, fmt) from None


def export_program(model: ExportedModel, args: tuple, path: Path, metadata: dict[str, Any]) -> int | None:
    """`model` as a `torch.export` program at `path`; the number of time steps when they had to be fixed (an
    LSTM/GRU specialises them), else None."""

    def program(time: bool) -> torch.export.ExportedProgram:
        return torch.export.export(model, args, dynamic_shapes=dynamic_shapes(model, time))

    exported, fixed_time = with_fixed_time_fallback(model, args, program, "torch.export")
    metadata = {**metadata, "time_steps": fixed_time}
    torch.export.save(exported, str(path), extra_files={PT2_METADATA: json.dumps(metadata)})
    return fixed_time


def load_program(path: Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """A saved `.pt2`'s callable module and its metadata."""
    extra = {PT2_METADATA: ""}
    program = torch.export.load(str(path), extra_files=extra)
    return program.module(), json.loads(extra[PT2_METADATA])
