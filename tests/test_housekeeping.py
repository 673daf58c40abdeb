"""Make targets and quality gates: help lists every target, clean keeps data, the pre-commit hooks catch problems."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

BIN = Path(sys.executable).parent  # the environment running the tests has ruff and pre-commit


def make(target: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["make", target], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_make_help_lists_every_target():
    phony = re.search(r"^\.PHONY: (.+)$", (ROOT / "Makefile").read_text(), re.M).group(1).split()
    listed = re.findall(r"^  make (\S+) ", make("help", ROOT).stdout, re.M)
    assert listed == phony


def test_make_clean_removes_outputs_and_caches_but_never_data(repo_copy):
    made = ["outputs/train/run/config.yaml", "multirun/x/0/config.yaml", "src/__pycache__/a.pyc", ".ruff_cache/x"]
    kept = ["data/MNIST/raw/train-images-idx3-ubyte.gz", "conf/local/default.yaml", ".env"]
    for name in made + kept:
        (repo_copy / name).parent.mkdir(parents=True, exist_ok=True)
        (repo_copy / name).write_text("x")
    assert make("clean", repo_copy).returncode == 0
    assert [name for name in made if (repo_copy / name).exists()] == []
    assert [name for name in kept if not (repo_copy / name).exists()] == []
    assert (repo_copy / "src/train.py").exists()


def failure_report(output: str) -> str:
    """Which hooks failed on the repository's own files, the files git would add beyond a clone's, and the output."""
    failed = re.findall(r"^(.+?)\.{3,}Failed$", output, re.M)
    extra = subprocess.run(
        ["git", "ls-files", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True
    )
    untracked = extra.stdout.split() or ["none"]
    return (
        f"a clean copy of the repository fails the hooks {failed}; files not tracked by git: {', '.join(untracked)}"
        f" (generated ones belong in .gitignore)\n{output[-4000:]}"
    )


def test_pre_commit_hooks_catch_lint_format_and_hygiene_problems(repo_copy):
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(args, cwd=repo_copy, env=env, capture_output=True, text=True, timeout=300)

    run("git", "init", "-q")
    run("git", "add", "-A")
    hooks = [str(BIN / "pre-commit"), "run", "--all-files"]
    clean = run(*hooks)
    assert clean.returncode == 0, failure_report(clean.stdout)

    (repo_copy / "src/bad.py").write_text("import os\nx = {'a':1}   \n")  # unused import, format, trailing space
    (repo_copy / "conf/bad.yaml").write_text("a: [1, 2\n")
    run("git", "add", "-A")
    failed = run(*hooks)
    assert failed.returncode != 0
    for hook in ("ruff check", "ruff format", "no trailing whitespace", "YAML parses"):
        assert re.search(rf"^{hook}\.+Failed$", failed.stdout, re.M), (hook, failed.stdout)


def test_the_repository_carries_no_generated_files():
    generated = re.compile(r"(^|/)(outputs|multirun|wandb|lightning_logs|__pycache__|\.venv)/|\.(pyc|ckpt|pt|log)$")
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert [name for name in tracked.splitlines() if generated.search(name)] == []


def environment_for_make(folder: Path) -> dict[str, str]:
    """An environment `make` accepts as set up (its stamp matches requirements.txt) that runs this Python."""
    (folder / "bin").mkdir(parents=True)
    (folder / "bin" / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (folder / "bin" / "python").chmod(0o755)
    (folder / ".requirements.txt").write_bytes((ROOT / "requirements.txt").read_bytes())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "MAKE"))}  # not this run's
    return {**env, "VENV": str(folder), "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}


@pytest.mark.slow
def test_editable_install_and_make_train_twice_leave_a_clone_clean_and_make_test_passes(repo_copy, tmp_path):
    env = environment_for_make(tmp_path / "venv")

    def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(args, cwd=repo_copy, env=env, capture_output=True, text=True, timeout=timeout)

    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "clone"]):
        assert run(*git, *command).returncode == 0
    # pip install -e . (into a prefix of its own: this environment stays as it is), and what older setuptools and
    # package builds leave in the checkout (an .egg-info folder, build/)
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-build-isolation", "--no-deps", "--no-index"]
    installed = run(*pip, "--prefix", str(tmp_path / "prefix"), "-e", ".")
    assert installed.returncode == 0, installed.stderr[-2000:]
    assert run(sys.executable, "-c", "from setuptools import setup; setup()", "-q", "egg_info").returncode == 0
    assert run(sys.executable, "-m", "pip", "wheel", "-q", "--no-build-isolation", "--no-deps", "--no-index",
               "-w", str(tmp_path / "wheels"), ".").returncode == 0  # fmt: skip
    assert list(repo_copy.glob("*.egg-info")) and (repo_copy / "build").is_dir()  # they were made
    # make train twice: two runs, each in its own folder
    tiny = "trainer=cpu logger=csv trainer.max_epochs=1 trainer.limit_train_batches=3 trainer.limit_val_batches=2"
    for _ in range(2):
        done = run("make", "train", f"ARGS={tiny} trainer.limit_test_batches=2")
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    runs = sorted((repo_copy / "outputs" / "train").iterdir())
    assert len(runs) == 2 and all((r / "checkpoints" / "last.ckpt").is_file() for r in runs)
    status = run("git", "status", "--porcelain", "--untracked-files=all")
    assert status.stdout == "", f"the clone is not clean for git:\n{status.stdout}"
    # make test after all that (this test is slow: not part of the make test it runs)
    tested = run("make", "test", timeout=1500)
    assert tested.returncode == 0, tested.stdout[-4000:]
    assert re.search(r"\d+ passed", tested.stdout) and run("git", "status", "--porcelain").stdout == ""
