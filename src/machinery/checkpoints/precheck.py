"""A checkpoint file's own checks without torch (it exists, is a non-empty file, matches its `<name>.sha256`), so a
typo or a damaged `ckpt_path` is reported in under a second, before torch and Lightning load."""

import hashlib
import os
import stat
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


MAX_CHECKSUM_BYTES = 1024  # a checksum file lists one or two 64-hex-digit digests (two while a save is in progress)


def listed_digests(path: str | Path) -> list[str] | None:
    """The digests listed in `<path>.sha256`, or None when there is none. Raises `CheckpointError` for one that is not
    a regular file or over MAX_CHECKSUM_BYTES, read no further than that bound (a FIFO would block, a huge one fill
    the memory)."""
    sums = checksum_path(path)
    try:
        fd = os.open(sums, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO opened for reading would wait for a writer
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise CheckpointError(f"checksum file {sums} is not a regular file: remove it or write the digest there")
        data = f.read(MAX_CHECKSUM_BYTES + 1)
    if len(data) > MAX_CHECKSUM_BYTES:
        raise CheckpointError(
            f"checksum file {sums} is {info.st_size} bytes, over the {MAX_CHECKSUM_BYTES}-byte bound for a list of "
            "SHA-256 digests: refused after reading that much"
        )
    return data.decode(errors="replace").split()


def check_digest(path: Path, digest: str) -> None:
    """Raise `CheckpointError` when `<path>.sha256` exists and does not list `digest` (the checkpoint's)."""
    listed = listed_digests(path)
    if listed is not None and digest not in listed:
        raise CheckpointError(
            f"checkpoint {path} does not match its checksum in {checksum_path(path).name}: "
            "the file is truncated or corrupted"
        )


def check_checkpoint_file(path: str | Path) -> Path:
    """Raise `CheckpointError` (one line naming the file) when `path` is missing, not a file or empty."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} is not a file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes): its save was cut short")
    return path


def check_checkpoint_path(path: str | Path) -> None:
    """Raise `CheckpointError` (one line naming the file) when `path` is missing, not a file, empty, or does not
    match a digest listed in its `<path>.sha256` (when that file exists). Nothing is cached: a load verifies the
    bytes it loads again (`read_verified_bytes`)."""
    path = check_checkpoint_file(path)
    if listed_digests(path) is not None:  # the checksum file is checked (size, kind) before the checkpoint is hashed
        check_digest(path, file_digest(path))


def read_verified_bytes(path: str | Path) -> bytes:
    """The bytes of checkpoint `path`, read once and checked against `<path>.sha256`: what is loaded from them is what
    was verified, whatever happens to the file afterwards."""
    path = check_checkpoint_file(path)
    listed_digests(path)  # a bad checksum file is refused before the checkpoint is read
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise CheckpointError(f"checkpoint {path} is not a file")
        data = f.read()
    check_digest(path, hashlib.sha256(data).hexdigest())
    return data
