"""Make targets and quality gates: help lists every target, clean keeps data, the pre-commit hooks catch problems."""

import os
import re
import subprocess
import sys
from pathlib import Path

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
    extra = subprocess.run(["git", "ls-files", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True)
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
