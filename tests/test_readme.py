"""The README and docs/ cannot drift from the code: their commands run as written and their recipes work when followed
literally.

Markers in README.md and docs/*.md (HTML comments, invisible on GitHub) say what each fenced block is for:
`<!-- runnable -->` before a bash block: every line is a command a reader runs, top to bottom;
`<!-- file: PATH -->` before a block: a file the reader writes at PATH.
"""

import csv
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from tests.conftest import ROOT, compose_config, copy_repository

README = ROOT / "README.md"
# Read in this order, as a reader would (later commands use what earlier ones made); then any other docs/*.md.
DOCS_ORDER = ["configuration", "workflow", "reliability", "devices", "extending", "benchmark", "troubleshooting"]
DOCS = [README, *(ROOT / "docs" / f"{name}.md" for name in DOCS_ORDER)]
DOCS += sorted(set((ROOT / "docs").glob("*.md")) - set(DOCS))
FENCE = re.compile(r"^<!-- (runnable|file: (\S+)) -->\n```\w*\n(.*?)^```", re.M | re.S)
# A few batches of one epoch: enough to run every code path a command touches, in seconds.
TINY = {
    "train.py": "trainer.max_epochs=1 trainer.limit_train_batches=3 trainer.limit_val_batches=2 "
    "trainer.limit_test_batches=2",
    "eval.py": "trainer.limit_test_batches=2 trainer.limit_predict_batches=2",
}
# Commands a reader runs that this test cannot: it is itself part of `make test`.
NOT_HERE = {"make test": "runs this test suite"}


@dataclass
class Step:
    """A README block: a command to run, or a file to write."""

    section: str
    command: str | None = None
    path: str | None = None
    text: str | None = None

    @property
    def id(self) -> str:
        return self.command[:70] if self.command else f"write {self.path}"


def section_of(text: str, position: int) -> str:
    prose = re.sub(r"^```.*?^```", "", text[:position], flags=re.M | re.S)  # a `# comment` in code is no heading
    headings = re.findall(r"^#+ (.+)$", prose, re.M)
    return headings[-1] if headings else ""


def commands_in(block: str) -> list[str]:
    """One command per line (a trailing backslash continues it); comments and blank lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", block)
    lines = [re.sub(r"\s+#\s.*$", "", line).strip() for line in joined.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def readme_steps() -> list[Step]:
    """The steps of README.md and docs/*.md, in reading order."""
    return [step for doc in DOCS for step in doc_steps(doc.read_text())]


def doc_steps(text: str) -> list[Step]:
    steps = []
    for match in FENCE.finditer(text):
        section = section_of(text, match.start())
        if match.group(2):
            steps.append(Step(section, path=match.group(2), text=match.group(3)))
        else:
            steps += [Step(section, command=command) for command in commands_in(match.group(3))]
    return steps


def write_shims(bin_dir: Path) -> None:
    """`python` that appends the tiny limits to train.py and eval.py runs; an environment `make` accepts."""
    bin_dir.mkdir(parents=True)
    cases = "".join(f'  {script}) exec "{sys.executable}" "$@" {limits} ;;\n' for script, limits in TINY.items())
    shim = f'#!/bin/sh\ncase "$1" in\n{cases}  *) exec "{sys.executable}" "$@" ;;\nesac\n'
    (bin_dir / "python").write_text(shim)
    (bin_dir / "python").chmod((bin_dir / "python").stat().st_mode | stat.S_IEXEC)
    for tool in ("ruff", "pre-commit"):
        (bin_dir / tool).symlink_to(Path(sys.executable).parent / tool)


@pytest.fixture(scope="module")
def reader(tmp_path_factory) -> dict:
    """A copy of the repository and the environment a reader would have (set up, activated, offline)."""
    tmp = tmp_path_factory.mktemp("readme")
    repo = tmp / "repo"
    copy_repository(repo)
    venv = tmp / "venv"  # `make` sees a set-up environment: its stamp matches requirements.txt
    write_shims(venv / "bin")
    shutil.copy(ROOT / "requirements.txt", venv / ".requirements.txt")
    env = {
        **os.environ,
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "VENV": str(venv),
        "OMP_NUM_THREADS": "1",
        "WANDB_MODE": "offline",
    }
    return {"repo": repo, "env": env}


def follow(step: Step, repo: Path, env: dict) -> None:
    """Do what the README says: write the file, or run the command and expect success."""
    if step.path:
        (repo / step.path).parent.mkdir(parents=True, exist_ok=True)
        (repo / step.path).write_text(step.text)
        return
    done = subprocess.run(["bash", "-c", step.command], cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{step.command}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"


ALL_STEPS = readme_steps()


def test_the_readme_is_short_and_links_every_doc():
    """README.md says what the template is, how to start and where to read on: at most 250 lines."""
    text = README.read_text()
    assert len(text.splitlines()) <= 250
    assert all(f"(docs/{doc.name})" in text for doc in DOCS[1:])


def test_the_readme_marks_its_commands_and_recipes():
    commands = [s.command for s in ALL_STEPS if s.command]
    files = [s.path for s in ALL_STEPS if s.path]
    assert len(commands) >= 20 and "make train" in commands
    assert files == [
        "src/models/mlp.py",
        "conf/model/mlp.yaml",
        "src/data/npz.py",
        "conf/data/npz.yaml",
        "src/data/wine.py",
        "conf/data/wine.yaml",
        "src/data/vowels.py",
        "conf/data/vowels.yaml",
        "conf/experiment/digits_mlp.yaml",
        "src/callbacks/grad_norm.py",
        "conf/callbacks/grad_norm.yaml",
        "load_onnx.py",
    ]


@pytest.mark.slow
@pytest.mark.parametrize("step", ALL_STEPS, ids=[s.id for s in ALL_STEPS])
def test_every_runnable_readme_command_runs_as_written(step, reader):
    """Top to bottom in one copy, as a reader would: later commands use what earlier ones made."""
    if step.command in NOT_HERE:
        pytest.skip(NOT_HERE[step.command])
    follow(step, reader["repo"], reader["env"])


def write_recipe(section: str, repo: Path) -> list[Step]:
    """Write the files of a recipe section into `repo` as shown, check they pass the project's lint; its commands."""
    recipe = [s for s in ALL_STEPS if s.section == section]
    files = [s for s in recipe if s.path]
    for step in files:
        follow(step, repo, {})
    python_files = [s.path for s in files if s.path.endswith(".py")]
    lint = subprocess.run(
        [Path(sys.executable).parent / "ruff", "check", *python_files], cwd=repo, capture_output=True, text=True
    )
    assert lint.returncode == 0, lint.stdout  # the recipe's code passes the project's own lint
    return [s for s in recipe if s.command]


def run_literally(command: str, repo: Path, *extra: str) -> tuple[float, Path]:
    """Run a README `python train.py ...` command as written (no limits added), plus `extra` overrides; the run's
    test/acc and folder."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}
    args = [sys.executable, *shlex.split(command)[1:], "logger=csv", *extra]
    done = subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    test_acc = float(re.search(r"Final metrics: .*test/acc=([0-9.]+)", done.stdout + done.stderr).group(1))
    run_dir = Path(re.search(r"Run directory: (\S+)", done.stdout + done.stderr).group(1))
    return test_acc, repo / run_dir


@pytest.mark.slow
def test_add_a_model_recipe_followed_literally_trains_the_new_model_with_the_module_settings(repo_copy):
    """The files of "Add a model" written as shown; its first command run as shown (no limits added), with the
    module's settings that every built-in network accepts."""
    command = write_recipe("Add a model", repo_copy)[0].command
    assert command.startswith("python train.py model=mlp")
    settings = ["model.label_smoothing=0.1", "model.compile=true", "model.channels_last=true"]
    test_acc, run_dir = run_literally(command, repo_copy, *settings)
    print(f"{command} {' '.join(settings)}: test/acc {test_acc}")
    assert test_acc > 0.9  # 10 epochs of an MLP on the digits (chance: 0.1)
    config = (run_dir / "config.yaml").read_text()
    assert "src.models.mlp.MLP" in config and "label_smoothing: 0.1" in config and "compile: true" in config


@pytest.mark.slow
def test_add_a_data_set_recipe_followed_literally_trains_on_the_new_data(repo_copy):
    write_recipe("Add a model", repo_copy)  # the recipe trains the MLP of the recipe before it
    commands = [s.command for s in write_recipe("Add a data set", repo_copy)]
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"  # `python`: this environment's
    subprocess.run(["bash", "-c", commands[0]], cwd=repo_copy, env={**os.environ, "PATH": path}, check=True)
    test_acc, run_dir = run_literally(commands[1], repo_copy)
    print(f"{commands[1]}: test/acc {test_acc}")
    assert test_acc > 0.9 and "src.data.npz.NpzDataModule" in (run_dir / "config.yaml").read_text()


@pytest.mark.slow
def test_add_a_callback_recipe_followed_literally_logs_its_metric(repo_copy):
    command = write_recipe("Add a callback", repo_copy)[0].command
    _, run_dir = run_literally(command, repo_copy, "trainer.max_epochs=2")
    with open(run_dir / "csv" / "metrics.csv") as f:
        norms = [float(row["train/grad_norm"]) for row in csv.DictReader(f) if row.get("train/grad_norm")]
    assert len(norms) >= 2 and all(n > 0 for n in norms)  # every 10 steps, 17 steps an epoch


def train_overrides(command: str) -> list[str] | None:
    """The overrides of a `python train.py ...` command, each sweep narrowed to its first value; else None."""
    words = shlex.split(command)
    if words[:2] != ["python", "train.py"]:
        return None
    overrides = [w for w in words[2:] if w not in ("-m", "--multirun")]
    parsed = OverridesParser.create().parse_overrides(overrides)
    return [
        f"{o.get_key_element()}={next(iter(o.sweep_string_iterator()))}" if o.is_sweep_override() else o.input_line
        for o in parsed
    ]


def every_train_command() -> list[str]:
    """Every `python train.py` line in the bash blocks of README.md and docs/, runnable here or not (GPU, SLURM,
    ...), except in the recipes (sections that write files), whose options exist only once a reader has written them."""
    commands = []
    recipes = {step.section for step in ALL_STEPS if step.path}
    for doc in DOCS:
        text = doc.read_text()
        for block in re.finditer(r"^```bash\n(.*?)^```", text, re.M | re.S):
            if section_of(text, block.start()) not in recipes:
                commands += [c for c in commands_in(block.group(1)) if train_overrides(c) is not None]
    return commands


@pytest.mark.parametrize("command", every_train_command())
def test_every_train_command_in_the_readme_composes(command, tmp_path):
    """Commands that need a GPU, a cluster or a download cannot run here, but their config must compose."""
    compose_config("train", train_overrides(command), tmp_path, keep_hydra=True)
