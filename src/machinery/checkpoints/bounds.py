"""Bounds on the work a checkpoint can cause: the uncompressed size of its zip entries (checked before torch
decompresses any), and the nodes, depth, text and tensor elements of what it unpickles (checked right after loading,
before anything walks, converts or writes it: a pickle's memo shares one list any number of times, at no cost to the
file). `trust_checkpoint=true`, the user's own switch, lifts them for a file the user trusts."""

import io
import zipfile
from pathlib import Path
from typing import Any

import torch

from src.errors import CheckpointError

MAX_NODES = 2_000_000  # values reached, a shared one each time (a run's checkpoint: a few thousand)
MAX_DEPTH = 100  # containers inside containers (a run's checkpoint: under 10)
MAX_TEXT = 16 << 20  # characters of str and bytes reached, a shared one each time
ELEMENTS_PER_BYTE = 4  # tensor elements reached per byte of the file (at least 1 byte each, saved once; tied weights)
MAX_RATIO = 4  # an entry's, and all entries', uncompressed size per byte of the file (torch.save stores, 1:1)
SLACK_BYTES = 1 << 20  # on top of the ratio, for small files
MAX_CLASS_NAME = 1000  # characters of one class name (a folder's name: at most 255 bytes)
MAX_UNCOMPRESSED = 64 << 30  # uncompressed bytes of all entries, whatever the file's size
TRUST_HINT = "if you trust this file, rerun with trust_checkpoint=true (docs/reliability.md: 'What is trusted')"

_lifted = False


def lift_bounds(lifted: bool) -> None:
    """`trust_checkpoint=true` from the user's command line or config: no bound on what checkpoints load (they still
    load with `weights_only=True`, and a stored config still names no code)."""
    global _lifted
    _lifted = bool(lifted)


def bounds_lifted() -> bool:
    return _lifted


def _refuse(path: str | Path, what: str) -> CheckpointError:
    return CheckpointError(f"checkpoint {path} refused: {what}; {TRUST_HINT}")


def check_zip_entries(source: bytes | Path, path: str | Path) -> None:
    """Refuse a checkpoint whose zip entries declare more uncompressed bytes than MAX_RATIO times the file's size (each,
    and together) or MAX_UNCOMPRESSED: torch allocates what an entry declares before it inflates it. Reads only the
    zip's central directory."""
    if _lifted:
        return
    size = len(source) if isinstance(source, bytes) else Path(source).stat().st_size
    try:
        with zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as error:
        raise CheckpointError(
            f"checkpoint {path} is not a readable PyTorch checkpoint (truncated or corrupted: no zip central "
            f"directory, {error}); a file saved by torch before 1.6 (not a zip) loads with trust_checkpoint=true"
        ) from None
    bound = min(MAX_RATIO * size + SLACK_BYTES, MAX_UNCOMPRESSED)
    total = 0
    for entry in entries:
        total += entry.file_size
        if entry.file_size > bound or total > bound:
            over = entry.file_size > bound
            which = f"entry {entry.filename[:100]!r}" if over else "its entries together"
            raise _refuse(
                path,
                f"{which} would inflate to {entry.file_size if over else total} bytes, over the bound of {bound} bytes "
                f"({MAX_RATIO}x the file's {size} bytes + {SLACK_BYTES}, at most {MAX_UNCOMPRESSED})",
            )


def check_structure(loaded: Any, path: str | Path, file_size: int) -> None:
    """Refuse what a checkpoint unpickled when walking it would exceed MAX_NODES values, MAX_DEPTH levels, MAX_TEXT
    characters or ELEMENTS_PER_BYTE tensor elements per byte of the file; a value reached twice counts twice, and the
    walk stops at the first bound, so it costs at most MAX_NODES steps."""
    if _lifted:
        return
    max_elements = ELEMENTS_PER_BYTE * file_size + SLACK_BYTES
    nodes, text, elements = 1, 0, 0
    stack: list[tuple[Any, int]] = [(loaded, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str | bytes | bytearray):
            text += len(value)
            if text > MAX_TEXT:
                raise _refuse(path, f"its contents reach over {MAX_TEXT} characters of text (a shared one each time)")
            continue
        if isinstance(value, torch.Tensor):
            elements += value.numel()
            if elements > max_elements:
                raise _refuse(
                    path,
                    f"its tensors reach over {max_elements} elements ({ELEMENTS_PER_BYTE} per byte of the file's "
                    f"{file_size}, + {SLACK_BYTES}; a shared or expanded one counted each time)",
                )
            continue
        if not isinstance(value, dict | list | tuple | set | frozenset):
            continue
        nodes += 2 * len(value) if isinstance(value, dict) else len(value)  # counted before stacked: bounded work
        if nodes > MAX_NODES:
            raise _refuse(path, f"its contents reach over {MAX_NODES} values (a shared one counted each time)")
        if depth >= MAX_DEPTH:
            raise _refuse(path, f"its contents nest over {MAX_DEPTH} levels deep")
        items = (item for pair in value.items() for item in pair) if isinstance(value, dict) else value
        stack.extend((item, depth + 1) for item in items)
