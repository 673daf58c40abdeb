"""Torch-free checks of a checkpoint path given on the command line, so a typo or a damaged file is reported in
under a second, before torch and Lightning load (the full verification, and the weights_only load, follow in
src/checkpointing.py).
"""

import hashlib
from pathlib import Path

from src.errors import CheckpointError

CHECKSUM_SUFFIX = ".sha256"  # as src/checkpointing.py writes it: the accepted hex digests, one a line


def check_checkpoint_path(path: str | Path) -> None:
    """Raise `CheckpointError` (one line naming the file) when `path` is missing, not a file, empty, or does not
    match a digest listed in its `<path>.sha256` (when that file exists)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} is not a file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes): its save was cut short")
    sums = Path(f"{path}{CHECKSUM_SUFFIX}")
    if sums.is_file() and _file_digest(path) not in sums.read_text().split():
        raise CheckpointError(
            f"checkpoint {path} does not match its checksum in {sums.name}: the file is truncated or corrupted"
        )


def _file_digest(path: Path) -> str:
    """SHA-256 of a file, read 1 MiB at a time (checkpoints can be larger than the memory to spare)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
