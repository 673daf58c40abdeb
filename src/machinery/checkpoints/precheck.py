"""A checkpoint file's own checks without torch (it exists, is a non-empty file, matches its `<name>.sha256`), so a
typo or a damaged `ckpt_path` is reported in under a second, before torch and Lightning load."""

import hashlib
from pathlib import Path

from src.errors import CheckpointError

CHECKSUM_SUFFIX = ".sha256"  # the accepted hex digests of the checkpoint, one a line


def checksum_path(path: str | Path) -> Path:
    return Path(f"{path}{CHECKSUM_SUFFIX}")


def file_digest(path: Path) -> str:
    """SHA-256 of a file, read in chunks (checkpoints can be larger than the memory to spare)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):  # 1 MiB at a time (hashlib.file_digest needs Python 3.11)
            digest.update(chunk)
    return digest.hexdigest()


_digests: dict[tuple, str] = {}  # (path, inode, size, mtime) -> digest: a file checked, then loaded, is read once


def _digest_once(path: Path) -> str:
    info = path.stat()
    key = (str(path.resolve()), info.st_ino, info.st_size, info.st_mtime_ns)
    if key not in _digests:
        _digests[key] = file_digest(path)
    return _digests[key]


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
    sums = checksum_path(path)
    if sums.is_file() and _digest_once(path) not in sums.read_text().split():
        raise CheckpointError(
            f"checkpoint {path} does not match its checksum in {sums.name}: the file is truncated or corrupted"
        )
