"""The git commit a run was launched from, and what differed from it, so every result can be traced to its code.

A new file nobody has `git add`-ed yet (a fork's `src/models/mine.py`, its `conf/model/mine.yaml`) is part of what ran:
an untracked file in one of `CODE_PATHS` that .gitignore does not ignore makes the tree dirty, and `git.diff` holds
it as a new file, within `UNTRACKED_*` bounds (docs/workflow.md). No git command here writes to the repository: not
the index, not a lock (`--no-optional-locks`).
"""

import os
import stat
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

# Where a run's code and configs live, from the repository's top: the package, the Hydra configs, the scripts, the
# launcher plugin, the W&B sweep files, and the top-level entry points (`*.py`: train.py, eval.py, predict.py; not
# *.py in other folders). Untracked files elsewhere (notes, tests, data, outputs) are not the run's code.
CODE_PATHS = ("src", "conf", "scripts", "hydra_plugins", "sweeps", ":(glob)*.py")
UNTRACKED_MAX_FILES = 200  # untracked files named in the record and read for git.diff; more are only counted
UNTRACKED_FILE_CAP = 100_000  # bytes: a bigger untracked file is named in git.diff, its content left out
UNTRACKED_TOTAL_CAP = 1_000_000  # bytes of untracked files' content in one git.diff
UNTRACKED_SECONDS = 20.0  # for the untracked files' diffs; files not reached by then are named only
BINARY_PROBE = 8000  # bytes looked at for a NUL, as git does to call a file binary
GIT_TIMEOUT = 10


def _run_git(args: list[str], cwd: Path, ok: tuple[int, ...] = (0,)) -> str | None:
    """git's standard output (UTF-8, undecodable bytes replaced), or None when git is missing, times out or fails."""
    try:
        done = subprocess.run(["git", "--no-optional-locks", *args], cwd=cwd, capture_output=True, timeout=GIT_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.decode("utf-8", "replace") if done.returncode in ok else None


def _git(args: list[str], cwd: Path) -> str | None:
    out = _run_git(args, cwd)
    return None if out is None else out.strip()


def untracked_files(cwd: str | Path = ".") -> tuple[Path, list[str]] | None:
    """The repository's top folder and its untracked, not ignored files in `CODE_PATHS` (paths from the top, sorted;
    an untracked folder holding a git repository of its own ends in `/`); None outside a git work tree."""
    top = _git(["rev-parse", "--show-toplevel"], Path(cwd))
    if not top:
        return None
    try:
        done = subprocess.run(
            ["git", "--no-optional-locks", "ls-files", "--others", "--exclude-standard", "-z", "--", *CODE_PATHS],
            cwd=top, capture_output=True, timeout=GIT_TIMEOUT,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    return Path(top), sorted(os.fsdecode(name) for name in done.stdout.split(b"\0") if name)


def printable(name: str) -> str:
    """A file name as it can go into YAML and text: bytes that are not UTF-8 shown as U+FFFD."""
    return os.fsencode(name).decode("utf-8", "replace")


def head_commit(cwd: str | Path = ".") -> str | None:
    """The commit checked out (its full SHA), or None when not in a git work tree (or git is missing)."""
    return _git(["rev-parse", "HEAD"], Path(cwd))


def git_state(cwd: str | Path = ".") -> dict[str, object]:
    """`{"commit": sha, "dirty": bool, "untracked": [paths]}`, all None when not in a git work tree (or git is
    missing). Dirty when a tracked file changed or `untracked` is not empty: the untracked files in `CODE_PATHS`
    (the first `UNTRACKED_MAX_FILES`; `untracked_not_listed` counts any more)."""
    commit = head_commit(cwd)
    if commit is None:
        return {"commit": None, "dirty": None, "untracked": None}
    status = _git(["status", "--porcelain", "--untracked-files=no"], Path(cwd))
    found = untracked_files(cwd)
    untracked = found[1] if found else []
    state: dict[str, object] = {
        "commit": commit,
        "dirty": None if status is None else bool(status or untracked),
        "untracked": [printable(name) for name in untracked[:UNTRACKED_MAX_FILES]],
    }
    if len(untracked) > UNTRACKED_MAX_FILES:
        state["untracked_not_listed"] = len(untracked) - UNTRACKED_MAX_FILES
    return state


def remote_url(cwd: str | Path = ".") -> str | None:
    """The `origin` remote's URL with any user name and password taken out (`https://user:<token>@host/org/repo.git`
    is where a token often sits), or None when there is none."""
    url = _git(["remote", "get-url", "origin"], Path(cwd))
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme and "@" in parts.netloc:
        host = parts.netloc.rpartition("@")[2]
        url = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return url


def git_diff(cwd: str | Path = ".") -> str | None:
    """The uncommitted changes: `# ` lines on the untracked files (how many, which were left out and why), the tracked
    files' `git diff HEAD`, then the untracked files in `CODE_PATHS` as new files (`git diff --no-index /dev/null
    <file>`); `git apply` takes it whole (it skips the `# ` lines). None when nothing changed or outside a git tree."""
    tracked = _git(["diff", "HEAD"], Path(cwd))
    tracked = tracked + "\n" if tracked else ""
    found = untracked_files(cwd)
    notes, new_files = _untracked_diff(*found) if found and found[1] else ("", "")
    return (notes + tracked + new_files) or None


def _untracked_diff(top: Path, names: list[str]) -> tuple[str, str]:
    """The `# ` note lines and the new-file diffs of `names` (within the `UNTRACKED_*` limits)."""
    diffs, left_out, total = [], [], 0
    deadline = time.monotonic() + UNTRACKED_SECONDS
    for name in names[:UNTRACKED_MAX_FILES]:
        why, size = _cannot_include(top / name)
        if why is None and size > UNTRACKED_FILE_CAP:
            why = f"{size:,} bytes, over the {UNTRACKED_FILE_CAP:,}-byte cap per file"
        elif why is None and total + size > UNTRACKED_TOTAL_CAP:
            why = f"{size:,} bytes, past the {UNTRACKED_TOTAL_CAP:,}-byte cap for all untracked files"
        elif why is None and time.monotonic() > deadline:
            why = f"not read: the {UNTRACKED_SECONDS:.0f} s for untracked files ran out"
        if why is None:
            diff = _run_git(
                ["diff", "--no-index", "--no-color", "--no-ext-diff", "--no-textconv", "--src-prefix=a/",
                 "--dst-prefix=b/", "--", "/dev/null", name], top, ok=(0, 1),
            )  # fmt: skip
            if diff is None:
                why = "git diff failed on it"
            else:
                diffs.append(diff if diff.endswith("\n") or not diff else diff + "\n")
                total += size
        if why is not None:
            left_out.append(f"# left out: {printable(name)} ({why})\n")
    if (more := len(names) - UNTRACKED_MAX_FILES) > 0:
        left_out.append(f"# left out: {more} more untracked files, not read (over {UNTRACKED_MAX_FILES} files)\n")
    where = ", ".join(p.removeprefix(":(glob)") if p.startswith(":") else f"{p}/" for p in CODE_PATHS)
    head = (
        f"# {len(names)} untracked file(s) in {where} (not ignored): {len(diffs)} added below, after the tracked"
        " files' changes, as new files\n"
    )
    return head + "".join(left_out), "".join(diffs)


def _cannot_include(path: Path) -> tuple[str | None, int]:
    """Why `path`'s content stays out of git.diff (None if it can go in), and its size."""
    try:
        info = path.lstat()
    except OSError as error:
        return f"unreadable: {error.strerror}", 0
    if stat.S_ISLNK(info.st_mode):
        return "a symbolic link", 0
    if stat.S_ISDIR(info.st_mode):
        return "a folder with a git repository of its own", 0
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file", 0
    try:
        with open(path, "rb") as f:
            probe = f.read(BINARY_PROBE)
    except OSError as error:
        return f"unreadable: {error.strerror}", info.st_size
    return ("binary" if b"\0" in probe else None), info.st_size
