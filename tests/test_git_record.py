"""The run record's git state and git.diff count new, untracked files in the code folders (a fork's model not yet
`git add`-ed): the tree is dirty, git.diff holds them as new files (bounded, credentials redacted) and applies on a
clone of the commit; files outside the code folders, and ignored ones, do not count; the user's index is not touched."""

import os
import subprocess
from pathlib import Path

import pytest

from src.machinery.tracking import git as git_module
from src.machinery.tracking.git import git_diff, git_state
from src.machinery.tracking.run_record import save_git_diff

MY_TOKEN = "tok-" + "Zx81Qw72Er63Ty54"
MODEL = 'import torch\n\n\nclass Mine(torch.nn.Module):\n    """A fork\'s own model."""\n'
MODEL_CONFIG = "_target_: src.models.mine.Mine\nhidden: 64\nstore: https://me:hunter2pass@example.com/x\n"


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True,
                          capture_output=True, text=True)  # fmt: skip
    return done.stdout


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


@pytest.fixture
def repo(tmp_path) -> Path:
    """A committed repository shaped like this one: src/, conf/, train.py, a .gitignore."""
    repo = tmp_path / "repo"
    write(repo / ".gitignore", "*.ckpt\n/outputs/\n")
    write(repo / "src" / "models" / "cnn.py", "class CNN:\n    pass\n")
    write(repo / "conf" / "model" / "cnn.yaml", "_target_: src.models.cnn.CNN\n")
    write(repo / "train.py", "print('train')\n")
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    return repo


def record_diff(repo: Path, out: Path) -> tuple[dict, str | None]:
    """The git state and the git.diff a run launched in `repo` writes (None when it writes none)."""
    config = {"git": git_state(repo), "paths": {"root_dir": str(repo)}}
    out.mkdir(exist_ok=True)
    path = save_git_diff(config, out)
    return config["git"], path and path.read_text()


def index_and_status(repo: Path) -> tuple[bytes, str]:
    status = git(repo, "status", "--porcelain=v2", "--untracked-files=all")
    return (repo / ".git" / "index").read_bytes(), status


def test_untracked_files_outside_the_code_folders_or_ignored_leave_the_tree_clean(repo, tmp_path):
    assert record_diff(repo, tmp_path / "run") == ({"commit": git(repo, "rev-parse", "HEAD").strip(), "dirty": False,
                                                   "untracked": []}, None)  # fmt: skip
    write(repo / "notes.txt", "ideas\n")  # top level, not an entry point
    write(repo / "tests" / "test_mine.py", "def test(): pass\n")  # not a code folder
    write(repo / "src" / "models" / "weights.ckpt", b"\0weights")  # ignored
    write(repo / "outputs" / "run" / "x.py", "x = 1\n")  # ignored
    write(repo / "data" / "sub" / "train.py", "x = 1\n")  # *.py counts at the top only
    state, diff = record_diff(repo, tmp_path / "run")
    assert state["dirty"] is False and state["untracked"] == [] and diff is None


def test_untracked_code_files_make_the_tree_dirty_and_go_into_git_diff_redacted(repo, tmp_path, monkeypatch):
    monkeypatch.setenv("MY_TOKEN", MY_TOKEN)
    write(repo / "src" / "models" / "cnn.py", "class CNN:\n    width = 2\n")  # a tracked change, as before
    write(repo / "src" / "models" / "mine.py", MODEL + f'    token = "{MY_TOKEN}"  # by mistake\n')
    write(repo / "conf" / "model" / "mine.yaml", MODEL_CONFIG)
    write(repo / "conf" / "model" / "spaced é name.yaml", "hidden: 8\n")
    write(repo / "train_mine.py", "print('mine')\n")  # a new top-level entry point
    write(repo / "scripts" / "plot.py", "print('plot')\n")
    write(repo / "notes.txt", "ideas\n")
    write(repo / "src" / "models" / "weights.ckpt", b"\0weights")
    before = index_and_status(repo)

    state, diff = record_diff(repo, tmp_path / "run")
    new = ["conf/model/mine.yaml", "conf/model/spaced é name.yaml", "scripts/plot.py", "src/models/mine.py",
           "train_mine.py"]  # fmt: skip
    assert state["dirty"] is True and state["untracked"] == new
    assert index_and_status(repo) == before  # the real index, and what git status says, unchanged
    assert diff.startswith("# 5 untracked file(s) in src/, conf/") and "5 added below" in diff
    assert "+    width = 2" in diff  # the tracked file's change
    assert "+class Mine(torch.nn.Module):" in diff and "+hidden: 64" in diff and "+print('mine')" in diff
    assert MY_TOKEN not in diff and 'token = "<redacted>"' in diff
    assert "hunter2pass" not in diff and "https://me:<redacted>@example.com" in diff
    assert "notes.txt" not in diff and "weights" not in diff

    # git.diff reproduces the tree on a clone of the commit (credentials aside)
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    write(tmp_path / "git.diff", diff)
    git(clone, "apply", str(tmp_path / "git.diff"))
    for name in [*new, "src/models/cnn.py"]:
        if name not in ("src/models/mine.py", "conf/model/mine.yaml"):
            assert (clone / name).read_bytes() == (repo / name).read_bytes(), name
    assert (clone / "src" / "models" / "mine.py").read_text().startswith(MODEL)
    assert not (clone / "notes.txt").exists()


def test_untracked_files_are_capped_per_file_in_total_and_in_number(repo, tmp_path, monkeypatch):
    monkeypatch.setattr(git_module, "UNTRACKED_FILE_CAP", 1000)
    monkeypatch.setattr(git_module, "UNTRACKED_TOTAL_CAP", 2500)
    monkeypatch.setattr(git_module, "UNTRACKED_MAX_FILES", 5)
    write(repo / "src" / "big.py", "x = 1\n" * 200)  # 1,200 bytes
    write(repo / "src" / "blob.py", b"\x00\x01binary")
    for i in range(4):  # 900 bytes each: the third passes the total cap
        write(repo / "src" / f"small_{i}.py", f"# {i}\n" + "y = 2\n" * 149 + "z\n")
    state, diff = record_diff(repo, tmp_path / "run")
    assert state["dirty"] is True
    assert state["untracked"] == ["src/big.py", "src/blob.py", "src/small_0.py", "src/small_1.py", "src/small_2.py"]
    assert state["untracked_not_listed"] == 1
    assert "# left out: src/big.py (1,200 bytes, over the 1,000-byte cap per file)" in diff
    assert "# left out: src/blob.py (binary)" in diff
    assert "# left out: src/small_2.py (900 bytes, past the 2,500-byte cap for all untracked files)" in diff
    assert "# left out: 1 more untracked files, not read (over 5 files)" in diff
    assert "+# 0" in diff and "+# 1" in diff and "+# 2" not in diff and "+x = 1" not in diff
    assert diff.count("new file mode") == 2 and "Binary files" not in diff


def test_many_untracked_files_are_bounded_work(repo, tmp_path):
    for i in range(300):
        write(repo / "src" / "gen" / f"f{i:03}.py", f"v = {i}\n")
    state, diff = record_diff(repo, tmp_path / "run")
    assert len(state["untracked"]) == git_module.UNTRACKED_MAX_FILES and state["untracked_not_listed"] == 100
    assert diff.count("new file mode") == git_module.UNTRACKED_MAX_FILES
    assert "# left out: 100 more untracked files" in diff


def test_no_git_state_outside_a_repository_or_without_git(repo, tmp_path, monkeypatch):
    outside = tmp_path / "plain"
    write(outside / "src" / "x.py", "x = 1\n")
    assert git_state(outside) == {"commit": None, "dirty": None, "untracked": None}
    assert git_diff(outside) is None
    write(repo / "src" / "mine.py", "x = 1\n")
    monkeypatch.setenv("PATH", os.fspath(tmp_path / "no-bin"))  # git missing
    assert git_state(repo) == {"commit": None, "dirty": None, "untracked": None}
    assert git_diff(repo) is None
