"""The git commit a run was launched from, so every result can be traced to its code."""

import subprocess
from pathlib import Path


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_state(cwd: str | Path = ".") -> dict[str, str | bool | None]:
    """`{"commit": sha or None, "dirty": bool or None}`; None when not in a git work tree."""
    commit = _git(["rev-parse", "HEAD"], Path(cwd))
    status = _git(["status", "--porcelain", "--untracked-files=no"], Path(cwd)) if commit else None
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def git_diff(cwd: str | Path = ".") -> str | None:
    """The uncommitted changes to tracked files (`git diff HEAD`), or None outside a git work tree."""
    diff = _git(["diff", "HEAD"], Path(cwd))
    return diff + "\n" if diff else None
