"""A run folder is not trusted (docs/reliability.md): planted links could make a run write elsewhere, so one holding
links is not resumed and the template's own files are never written or read through a link. No torch import: train.py
and eval.py check the command line with it before Hydra writes its records and opens `train.log`."""

import csv
import io
import os
import stat
from collections.abc import Sequence
from pathlib import Path

from src.errors import RunFolderError

# W&B's folder is W&B's: each (resumed) run writes a new, timestamped folder there and replaces its own links
# (latest-run, debug.log, logs/debug-core.log -> ~/.cache/wandb/...). The folder itself must not be a link.
WANDB_DIR = "wandb"


def planted_links(folder: str | Path, limit: int = 20) -> list[Path]:
    """Symbolic links anywhere in `folder`, not followed (W&B's own folder excepted: see WANDB_DIR)."""
    folder = Path(folder)
    found = []
    for parent, dirs, files in os.walk(folder, followlinks=False):
        if Path(parent) == folder and WANDB_DIR in dirs and not (folder / WANDB_DIR).is_symlink():
            dirs.remove(WANDB_DIR)
        for name in [*dirs, *files]:
            path = Path(parent) / name
            if path.is_symlink():
                found.append(path)
                if len(found) >= limit:
                    return found
    return found


def first_few(items: list[str], shown: int = 5) -> str:
    """The first `shown` items, comma-separated, and how many more there are: "a, b, c, d, e and 3 more"."""
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    return ", ".join(items[:shown]) + more


def check_no_links(folder: str | Path) -> None:
    """Raise `RunFolderError` naming the links in `folder`, if it holds any."""
    links = planted_links(folder)
    if links:
        shown = first_few([f"{link.relative_to(folder)} -> {os.readlink(link)}" for link in links])
        raise RunFolderError(
            f"run folder {folder} holds symbolic links ({shown}): a run there would write through them; "
            "remove them, or if you trust their targets copy the folder without links (cp -rL) and resume the copy"
        )


def special_files(folder: str | Path, limit: int = 20) -> list[Path]:
    """Entries in `folder` that are neither folders, regular files nor links (FIFOs, sockets, devices): opening one
    can block for ever (a FIFO `train.log` hangs the log handler). W&B's own folder is left out, as for links."""
    folder = Path(folder)
    found = []
    for parent, dirs, files in os.walk(folder, followlinks=False):
        if Path(parent) == folder and WANDB_DIR in dirs and not (folder / WANDB_DIR).is_symlink():
            dirs.remove(WANDB_DIR)
        for name in files:  # os.walk lists special files (and links to files) among the files
            path = Path(parent) / name
            mode = os.lstat(path).st_mode
            if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
                found.append(path)
                if len(found) >= limit:
                    return found
    return found


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words: "a FIFO", "a socket", "a device"."""
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file"


def check_only_regular_files(folder: str | Path) -> None:
    """Raise `RunFolderError` naming the FIFOs, sockets or devices in `folder`, if it holds any."""
    found = special_files(folder)
    if found:
        shown = first_few([f"{path.relative_to(folder)} ({file_kind(os.lstat(path).st_mode)})" for path in found])
        raise RunFolderError(
            f"run folder {folder} holds files that are not regular files ({shown}): opening them could hang "
            "the run; remove them and run again"
        )


def command_line_value(argv: Sequence[str], key: str) -> str:
    """The value given as `key=value` on the command line, unquoted; "" if it is not there."""
    for arg in argv:
        name, sep, value = arg.partition("=")
        if sep and name.lstrip("+~") == key:
            return value.strip("'\"")
    return ""


def check_run_folder_argument(argv: Sequence[str]) -> None:
    """Before Hydra writes anything: an existing run folder named on the command line must hold no links, and
    nothing but folders and regular files (Hydra opens `train.log` there before the run's own checks)."""
    folder = command_line_value(argv, "hydra.run.dir")
    if folder and Path(folder).is_dir():
        check_no_links(folder)
        check_only_regular_files(folder)


# What eval.py and predict.py leave in their folder (and train.py in its own): a second run named into it would
# overwrite or mix into them. Hydra's records alone (.hydra/, a log) are a failed run's: that folder can be reused.
OUTPUT_MARKERS = ("config.yaml", "checkpoints", "csv", "predictions.csv", "unreadable.csv")


def check_unused_folder_argument(argv: Sequence[str]) -> None:
    """eval.py and predict.py: a folder named on the command line (hydra.run.dir) that holds an earlier run's outputs
    is refused before Hydra writes its records over that run's; without hydra.run.dir every run gets a new folder."""
    folder = command_line_value(argv, "hydra.run.dir")
    if folder and (found := [name for name in OUTPUT_MARKERS if os.path.lexists(Path(folder) / name)]):
        raise RunFolderError(
            f"{folder} already holds a run's outputs ({', '.join(found)}): name a new folder (hydra.run.dir=...), "
            "or leave hydra.run.dir out for a new dated one"
        )


def write_text(path: str | Path, text: str) -> None:
    """Write `text` to the regular file `path`, refusing (`RunFolderError`) to write through a link or into a pipe."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
    except OSError:
        if not Path(path).is_symlink() and not Path(path).exists():
            raise
        fd = None
    if fd is None or not stat.S_ISREG(os.fstat(fd).st_mode):
        if fd is not None:
            os.close(fd)
        raise RunFolderError(
            f"{path} is not a regular file (a link or a pipe): not writing to it; remove it and run again"
        )
    with os.fdopen(fd, "w", errors="surrogateescape") as f:
        f.truncate()
        f.write(text)


def read_text(path: str | Path, max_bytes: int = 1 << 20) -> str | None:
    """The text of the regular file `path`, or None for a link, a pipe, a folder, no file or one over `max_bytes`."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_size > max_bytes:
        os.close(fd)
        return None
    with os.fdopen(fd, "rb") as f:
        return f.read(max_bytes).decode(errors="surrogateescape")


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    """A CSV file no cell of which a spreadsheet runs as a formula (file paths and class names come from elsewhere),
    written whole or not at all: encoded first, then written to a temporary file renamed over `path`."""
    text = io.StringIO(newline="")
    csv.writer(text).writerows([header, *([csv_cell(c) if isinstance(c, str) else c for c in row] for row in rows)])
    data = text.getvalue().encode()  # a cell that is not text (a file name that is not UTF-8) fails here, first
    temp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        temp.write_bytes(data)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    return path


def csv_cell(text: str) -> str:
    """A cell no spreadsheet runs as a formula: one starting with = + - @ (or tab, CR) gets a leading quote,
    unless it is a number."""
    if text.startswith(FORMULA_START):
        try:
            float(text)
        except ValueError:
            return "'" + text
    return text
