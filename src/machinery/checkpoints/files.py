"""Checkpoint files that survive a kill at any moment, are verified when loaded, and never run code when loaded.
Written unnamed in their own folder, fsynced and renamed, not staged in `$TMPDIR` as Lightning's `_atomic_save` does
(atomic only on the same filesystem); docs/reliability.md has the details."""

import hashlib
import io
import logging
import os
import pickle
import re
import socket
import stat
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.pytorch.plugins.io import TorchCheckpointIO

from src.errors import CheckpointError, RunError, first_line
from src.machinery.checkpoints.bounds import check_structure, check_zip_entries
from src.machinery.checkpoints.precheck import (
    check_checkpoint_path,
    checksum_path,
    file_digest,
    listed_digests,
    read_verified_bytes,
)

log = logging.getLogger(__name__)

TEMP_MARK = ".tmp-"


def temp_files(folder: str | Path) -> list[Path]:
    """Leftover temporary files of interrupted saves in `folder` (each save removes them)."""
    return sorted(p for p in Path(folder).glob(f".*{TEMP_MARK}*") if p.is_file())


def _host_tag() -> str:
    """8 hex digits naming this machine in temporary file names: a process id means something only here."""
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def temp_name(path: Path) -> str:
    """The temporary name a save of `path` by this process uses: `.<name>.tmp-<host>-<pid>`."""
    return f".{path.name}{TEMP_MARK}{_host_tag()}-{os.getpid()}"


def _pid_max() -> int:
    try:
        return int(Path("/proc/sys/kernel/pid_max").read_text())
    except (OSError, ValueError):
        return 1 << 22  # Linux's largest


def _is_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: does that process still exist?
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    return False


def remove_stranded_temp_files(path: str | Path) -> list[Path]:
    """Remove (and return) the `.<name>.tmp-<host>-<pid>` files a kill just before the rename stranded. Only that
    exact shape is touched (this name and host, a dead process, a regular file of this user): other files stay."""
    path = Path(path)
    shape = re.compile(rf"\.{re.escape(path.name)}{re.escape(TEMP_MARK)}{_host_tag()}-([0-9]{{1,10}})")
    removed = []
    try:
        names = os.listdir(path.parent)
    except OSError:
        return removed
    for name in names:
        found = shape.fullmatch(name)
        if not found or not 0 < int(found.group(1)) <= _pid_max() or not _is_gone(int(found.group(1))):
            continue
        temp = path.parent / name
        try:
            info = os.lstat(temp)
        except FileNotFoundError:
            continue
        if stat.S_ISREG(info.st_mode) and info.st_uid == os.getuid():
            temp.unlink(missing_ok=True)
            removed.append(temp)
    return removed


def _fsync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable (the directory entry is data too)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_unnamed(folder: Path, data: bytes, name: str) -> Path:
    """Write and fsync `data` in `folder` as `name`: unnamed (O_TMPFILE) while written, so a kill mid-write leaves
    nothing; without O_TMPFILE a named file, which the next save removes if a kill strands it."""
    temp = folder / name
    try:
        fd = os.open(folder, os.O_TMPFILE | os.O_WRONLY, 0o644)
    except (AttributeError, OSError):
        fd = None
    if fd is None:
        with open(temp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        return temp
    folder_fd = os.open(folder, os.O_RDONLY)
    try:
        with os.fdopen(fd, "wb", closefd=False) as f:
            f.write(data)
            f.flush()
            os.fsync(fd)
        # Naming the file needs linkat(AT_SYMLINK_FOLLOW) on /proc/self/fd/N; passing a dir fd makes Python call
        # linkat (plain link() fails across /proc); the absolute source path ignores that fd.
        os.link(f"/proc/self/fd/{fd}", temp, src_dir_fd=folder_fd, follow_symlinks=True)
    finally:
        os.close(fd)
        os.close(folder_fd)
    return temp


def write_atomically(path: str | Path, data: bytes) -> None:
    """Replace `path` with `data` so that any reader, at any moment, sees the whole old or the whole new file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stranded_temp_files(path)
    (path.parent / temp_name(path)).unlink(missing_ok=True)  # this process id's, left by an earlier process
    temp = _write_unnamed(path.parent, data, temp_name(path))
    os.replace(temp, path)
    _fsync_folder(path.parent)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _digests_of_current_file(path: Path) -> list[str]:
    """Digests that the checkpoint now at `path` matches: its checksum file's list, which always includes the
    file's own digest (so a save does not read the old checkpoint back), else the file hashed."""
    try:
        listed = listed_digests(path)
    except CheckpointError:  # a bad checksum file is replaced by this save
        listed = None
    if listed:
        return listed
    return [file_digest(path)] if path.is_file() else []


def save_checkpoint_file(path: str | Path, data: bytes) -> None:
    """Write a checkpoint and its checksum so that a kill between any two steps leaves one that verifies: the checksum
    file lists the new digest and the old file's, then (after the rename) only the new one."""
    path = Path(path)
    new = _digest(data)
    accepted = [new, *_digests_of_current_file(path)]
    write_atomically(checksum_path(path), ("\n".join(accepted) + "\n").encode())
    write_atomically(path, data)
    write_atomically(checksum_path(path), f"{new}\n".encode())


def _refused_content(error: Exception) -> str | None:
    """What `torch.load(weights_only=True)` refused to unpickle (e.g. `GLOBAL posix.system`), if it refused."""
    if "Weights only load failed" not in str(error):
        return None
    found = re.search(r"GLOBAL [\w.]+", str(error))
    return found.group(0) if found else "a pickled Python object"


def read_checkpoint(
    path: str | Path, map_location: Any = "cpu", lightning: bool = True, mmap: bool = False
) -> dict[str, Any]:
    """Load with `weights_only=True` from the bytes whose checksum was verified (read once, into memory), within the
    bounds of `src.machinery.checkpoints.bounds`; a Lightning checkpoint (with a state_dict) unless `lightning=False`.
    `mmap`: the file is verified, then mapped, its tensors read only when touched: for a look at shapes, never for the
    weights a run uses (the mapped file can change after the check). Raises `CheckpointError`, one line naming the
    file and what is wrong with it."""
    path = Path(path)
    if path.parent.is_dir():  # a kill between naming and renaming strands the checkpoint's or its checksum's
        remove_stranded_temp_files(path)
        remove_stranded_temp_files(checksum_path(path))
    if mmap:
        check_checkpoint_path(path)
    data = None if mmap else read_verified_bytes(path)  # the bytes hashed are the bytes loaded
    check_zip_entries(path if data is None else data, path)  # before torch inflates any entry
    try:
        source = path if data is None else io.BytesIO(data)
        checkpoint = torch.load(source, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as error:
        refused = _refused_content(error)
        if refused is None:
            unreadable = f"checkpoint {path} is not a readable PyTorch checkpoint ({first_line(error)})"
            raise CheckpointError(unreadable) from None
        raise CheckpointError(
            f"checkpoint {path} refused: it holds {refused}, which could run code when loaded; "
            "checkpoints may hold only tensors and plain containers"
        ) from None
    except Exception as error:  # torch's zip reader reports damage as RuntimeError, EOFError, ...
        raise CheckpointError(
            f"checkpoint {path} is not a readable PyTorch checkpoint (truncated or corrupted: {first_line(error)})"
        ) from None
    check_structure(checkpoint, path, path.stat().st_size if data is None else len(data))  # before anything uses it
    if not lightning and not isinstance(checkpoint, dict):
        kind = type(checkpoint).__name__
        raise CheckpointError(f"checkpoint {path} holds a {kind}, not a state dict (names to tensors) or a checkpoint")
    if not isinstance(checkpoint, dict) or (lightning and not isinstance(checkpoint.get("state_dict"), dict)):
        raise CheckpointError(f"checkpoint {path} is not a Lightning checkpoint: it has no state_dict")
    return checkpoint


def check_tensor_mapping(state: Any, source: Any) -> None:
    """Raise `CheckpointError` (one line) unless `state` maps names (str) to tensors, as a state dict does."""
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {source}: its state dict is a {type(state).__name__}, not names to tensors")
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise CheckpointError(
                f"checkpoint {source}: its state dict maps {str(key)[:80]!r} to a {type(value).__name__}, not a tensor"
            )


def check_state_dict_fits(model_state: dict[str, torch.Tensor], loaded: dict[str, Any], source: Any) -> None:
    """Fail with one line when a checkpoint's weights do not fit the model (another architecture or size)."""
    missing = sorted(set(model_state) - set(loaded))
    unexpected = sorted(set(loaded) - set(model_state))
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint {source} is for a different model: {len(missing)} weights missing "
            f"(e.g. {missing[:2]}), {len(unexpected)} unexpected (e.g. {unexpected[:2]})"
        )
    for key, tensor in model_state.items():
        value = loaded[key]
        if isinstance(value, torch.Tensor) and value.shape != tensor.shape:
            raise CheckpointError(
                f"checkpoint {source} is for a different model: {key} has shape {tuple(value.shape)} "
                f"there but {tuple(tensor.shape)} in this model"
            )


def restore_data_state(datamodule: Any, checkpoint: dict[str, Any], source: Any) -> None:
    """Give a data module the state the checkpoint stored for it (under its class's name, as Lightning saves it), if
    any. Whatever a crafted or foreign state makes the data module's `load_state_dict` raise, a wrong type, a missing
    key, is one `CheckpointError` naming the file: a fork's data module need not guard its own."""
    state = checkpoint.get(type(datamodule).__qualname__)
    if not state:
        return
    try:
        datamodule.load_state_dict(state)
    except RunError as error:  # the data module's own one-line refusal
        if str(source) in str(error):
            raise
        raise CheckpointError(f"checkpoint {source}: {error}") from None
    except (TypeError, ValueError, KeyError, IndexError, AttributeError) as error:
        raise data_state_error(datamodule, error, source) from None


def data_state_error(datamodule: Any, error: Exception, source: Any) -> CheckpointError:
    """The one line for a stored state that a data module's `load_state_dict` raised `error` on."""
    return CheckpointError(
        f"checkpoint {source}: its state of {type(datamodule).__name__} is not one that data module takes "
        f"({type(error).__name__}: {first_line(error)[:200]})"
    )


def init_weights(module: torch.nn.Module, path: str, strict: bool = True) -> None:
    """Load a checkpoint's or state dict's weights into a new run (`init_from`), logging every key left out."""
    loaded = read_checkpoint(path, lightning=False)
    loaded, own = loaded.get("state_dict", loaded), module.state_dict()
    check_tensor_mapping(loaded, f"init_from={path}")
    if not own.keys() & loaded.keys():  # the network's own state dict
        loaded = {f"net.{key}": value for key, value in loaded.items()}
    shared = own.keys() & loaded.keys()
    left_out = {
        "of another shape": sorted(k for k in shared if getattr(loaded[k], "shape", None) != own[k].shape),
        "missing from the file": sorted(own.keys() - loaded.keys()),
        "not in this model": sorted(loaded.keys() - own.keys()),
    }
    fits = shared - set(left_out["of another shape"])
    found = "; ".join(f"{len(keys)} {what}: {', '.join(keys)}" for what, keys in left_out.items() if keys)
    if len(fits) < len(own) / 2:  # another model family (an RNN's weights for a CNN) or size
        raise CheckpointError(f"init_from={path} fits {len(fits)} of this model's {len(own)} weights: {found}")
    if strict and found:
        raise CheckpointError(f"init_from={path} does not fit this model: {found} (init_strict=false skips them)")
    if found:
        log.warning("init_from skipped %s", found)
    module.load_state_dict({key: loaded[key] for key in fits}, strict=False)
    log.info("Initialised %d of %d weights from %s", len(fits), len(own), path)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint I/O with atomic, checksummed saves and verified `weights_only=True` loads; given `model`,
    a checkpoint that does not fit it fails in one line, not with torch's list of every mismatched tensor."""

    def __init__(self, model: torch.nn.Module | None = None) -> None:
        super().__init__()
        self.model = model

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None) -> None:
        if storage_options is not None or "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)  # remote storage: fsspec's way
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        save_checkpoint_file(path, buffer.getvalue())

    def load_checkpoint(self, path: str | Path, map_location: Any = "cpu", weights_only: bool | None = None) -> dict:
        # weights_only is always True: a checkpoint never gets to run code, whatever the caller asks.
        checkpoint = read_checkpoint(path, map_location)
        check_tensor_mapping(checkpoint["state_dict"], path)
        if self.model is not None:
            check_state_dict_fits(self.model.state_dict(), checkpoint["state_dict"], source=path)
        return checkpoint

    def remove_checkpoint(self, path: str | Path) -> None:
        remove_checkpoint_file(path)


def remove_checkpoint_file(path: str | Path) -> bool:
    """Remove one regular checkpoint file and its checksum, never a folder or a link's target (Lightning's removal is
    recursive, and a path restored from a checkpoint could name a folder); True if a file was removed."""
    if "://" in str(path):  # remote storage: one file, not recursively
        fs = get_filesystem(path)
        if fs.isfile(path):
            fs.rm_file(path)
            return True
        return False
    path = Path(path)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(mode):
        log.warning("Not removing checkpoint %s: it is not a regular file", path)
        return False
    path.unlink()
    sums = checksum_path(path)
    if sums.is_file() and not sums.is_symlink():
        sums.unlink()
    return True
