"""A project started from the template with copier keeps getting the template's fixes (docs/forking.md): from a local
git copy of this repository tagged v1.0.0, `copier copy` makes a project; the project adds a network, a data set and
an experiment by docs/extending.md's recipes, edits src/module.py and the README, and its `make test` passes. Version
v1.1.0 of the template then changes the machinery, a test of it, the Makefile and the one line of src/module.py the
project also edited: `copier update` brings the first three in untouched, leaves the project's own files as they were,
shows the overlap as a standard conflict, and once it is resolved `make test` passes. The same again for a project
that did not keep the bundled examples. No network: the template is a folder here."""

import os
import re
import subprocess
import sys
from pathlib import Path

import jinja2
import pytest

from tests.conftest import ROOT, copy_repository
from tests.test_fork_examples import write_recipes
from tests.test_housekeeping import environment_for_make

COPIER = Path(sys.executable).parent / "copier"
# what `copier copy --defaults` answers (copier.yml), which the template's own files are rendered with
DEFAULTS = {"project_name": "dl-template", "wandb_project": "dl-template", "wandb_entity": "", "keep_examples": True}
# the fork's own files: a network, a table data set and an experiment, as docs/extending.md writes them
RECIPES = ["Add a model", "A task that is not images: a table", "Add an experiment"]
OWN = ["conf/data/wine.yaml", "conf/experiment/digits_mlp.yaml", "conf/model/mlp.yaml", "src/data/wine.py"]
OWN += ["src/models/mlp.py"]
# what `keep_examples=false` leaves out (copier.yml's _exclude)
EXAMPLES = ["conf/data/ucr.yaml", "conf/experiment/ucr_fcn.yaml", "docs/sequences.md", "src/data/ucr.py"]
EXAMPLES += ["scripts/ucr_table.py", "tests/test_sequences.py", "tests/test_ucr_data.py"]

# the line of src/module.py both sides edit: the module's docstring
MODULE_LINE = '"""ClassificationModule: one LightningModule that trains whatever network it is given."""\n'
FORK_LINE = '"""ClassificationModule of my-lab: one LightningModule for our networks and the template\'s."""\n'
B_LINE = '"""ClassificationModule: one LightningModule that trains whatever network it is given (any nn.Module)."""\n'
FORK_ADDS = "\n\n# my-lab: the class weights of our imbalanced sets go here\nCLASS_WEIGHTS: list[float] | None = None\n"
FORK_README = "# my-lab\n\nOur experiments on wine tables, started from dl-template.\n\n"
# version B's machinery change (a changed default), its test, and the Makefile's
MACHINERY = "src/machinery/runs/folder.py"
MACHINERY_TEST = "tests/test_run_folder.py"
B_TEST = """

def test_planted_links_names_up_to_50_links_by_default(tmp_path):
    for i in range(30):
        (tmp_path / f"link{i}").symlink_to(tmp_path)
    assert len(planted_links(tmp_path)) == 30
"""


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd, capture_output=True,
                          text=True, check=True)  # fmt: skip
    return done.stdout


def copier(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """The copier command a reader runs (no prompts: --defaults takes the answers given or recorded)."""
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t"}
    env["GIT_COMMITTER_EMAIL"] = "t@t"
    done = subprocess.run([str(COPIER), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done


def replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} in {path}"
    path.write_text(text.replace(old, new))


def test_each_jinja_file_rendered_with_the_default_answers_is_its_plain_twin():
    """The template runs as it is because each rendered file has a plain twin the template uses; they never drift."""
    twins = sorted(ROOT.glob("**/*.jinja"))
    names = {twin.relative_to(ROOT).as_posix() for twin in twins}
    assert names >= {"pyproject.toml.jinja", "conf/logger/wandb.yaml.jinja", ".env.example.jinja"}
    env = jinja2.Environment(keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    for twin in twins:
        if twin.name == ".copier-answers.yml.jinja":
            continue  # copier's record of the answers: the template has none
        rendered = env.from_string(twin.read_text()).render(**DEFAULTS)
        assert rendered == twin.with_suffix("").read_text(), f"{twin} differs from its twin"
    project = {**DEFAULTS, "project_name": "my-lab", "wandb_project": "lab-runs", "wandb_entity": "lab"}
    wandb = env.from_string((ROOT / "conf/logger/wandb.yaml.jinja").read_text()).render(**project)
    assert "${oc.env:WANDB_PROJECT,lab-runs}" in wandb and "${oc.env:WANDB_ENTITY,lab}" in wandb
    dotenv = env.from_string((ROOT / ".env.example.jinja").read_text()).render(**project)
    assert "\nWANDB_PROJECT=lab-runs " in dotenv and "\nWANDB_ENTITY=lab " in dotenv


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A git copy of this repository tagged v1.0.0 (version A), then v1.1.0 (version B, below)."""
    copy = tmp_path_factory.mktemp("template") / "dl-template"
    copy_repository(copy)
    git(copy, "init", "-q")
    git(copy, "add", "-A")
    git(copy, "commit", "-qm", "version A")
    git(copy, "tag", "v1.0.0")

    links = "def planted_links(folder: str | Path, limit: int = {})"
    replace(copy / MACHINERY, links.format(20), links.format(50))
    with open(copy / MACHINERY_TEST, "a") as f:
        f.write(B_TEST)
    replace(copy / "Makefile", ".ruff_cache build", ".ruff_cache .mypy_cache build")
    replace(copy / "src/module.py", MODULE_LINE, B_LINE)
    changelog = (copy / "CHANGELOG.md").read_text().split("\n## v", 1)  # the newest version's section first
    changelog.insert(1, "\n## v1.1.0\n\n- planted_links names up to 50 links.\n\n## v")
    (copy / "CHANGELOG.md").write_text("".join(changelog))
    git(copy, "commit", "-qam", "version B")
    git(copy, "tag", "v1.1.0")
    return copy


def make_test(project: Path, venv: Path, *args: str) -> str:
    """The project's `make test` (its default suite, slow tests left out) with this environment; the summary."""
    done = subprocess.run(["make", "test", *args], cwd=project, env=environment_for_make(venv), capture_output=True,
                          text=True, timeout=1200)  # fmt: skip
    summary = done.stdout.strip().splitlines()[-1]
    assert done.returncode == 0 and "failed" not in summary, done.stdout[-4000:] + done.stderr[-2000:]
    return summary


@pytest.mark.slow
@pytest.mark.parametrize("keep_examples", [True, False], ids=["examples", "no_examples"])
def test_a_project_takes_the_template_update_and_keeps_its_own_code(template, tmp_path, keep_examples):
    project = tmp_path / "my-lab"
    answers = ["--data", "project_name=my-lab", "--data", f"keep_examples={str(keep_examples).lower()}"]
    copier(tmp_path, "copy", "--defaults", "--vcs-ref", "v1.0.0", *answers, str(template), str(project))
    assert "_commit: v1.0.0" in (project / ".copier-answers.yml").read_text()
    assert 'name = "my-lab"' in (project / "pyproject.toml").read_text()
    assert "${oc.env:WANDB_PROJECT,my-lab}" in (project / "conf/logger/wandb.yaml").read_text()
    assert not list(project.glob("**/*.jinja")) and not (project / "copier.yml").exists()
    assert all((project / name).exists() == keep_examples for name in EXAMPLES)

    # the project: its own network, data set and experiment, a module edit, its README; committed
    assert sorted(write_recipes(project, RECIPES)) == OWN
    replace(project / "src/module.py", MODULE_LINE, FORK_LINE)
    with open(project / "src/module.py", "a") as f:
        f.write(FORK_ADDS)
    readme = project / "README.md"
    readme.write_text(FORK_README + readme.read_text())
    git(project, "init", "-q")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "my-lab: a wine table, an MLP and an experiment")
    own = {name: (project / name).read_bytes() for name in [*OWN, "README.md"]}
    module = (project / "src/module.py").read_text()
    print(f"make test in the project at v1.0.0 (keep_examples={keep_examples}): {make_test(project, tmp_path / 'a')}")

    updated = copier(project, "update", "--defaults", "--conflict", "inline")  # the newest tag: v1.1.0
    assert "_commit: v1.1.0" in (project / ".copier-answers.yml").read_text()
    # what the project did not edit arrives as version B has it
    for name in (MACHINERY, MACHINERY_TEST, "Makefile", "CHANGELOG.md"):
        assert (project / name).read_bytes() == (template / name).read_bytes(), name
    assert {name: (project / name).read_bytes() for name in own} == own  # the project's own files as it left them
    # the one line both edited: a standard conflict, with both sides; the project's other edit kept
    conflicted = git(project, "grep", "-l", "-e", "^<<<<<<< ", "-e", "^>>>>>>> ").split()
    assert conflicted == ["src/module.py"], updated.stderr[-2000:]
    text = (project / "src/module.py").read_text()
    conflict = re.search(r"^<<<<<<< [^\n]*\n(.*?)^=======\n(.*?)^>>>>>>> [^\n]*\n", text, re.M | re.S)
    assert conflict is not None and conflict.groups() == (FORK_LINE, B_LINE)
    assert text.endswith(FORK_ADDS)
    changed = {line[3:] for line in git(project, "status", "--porcelain", "--untracked-files=all").splitlines()}
    assert changed == {MACHINERY, MACHINERY_TEST, "Makefile", "CHANGELOG.md", "src/module.py", ".copier-answers.yml"}

    # resolved: the project's line kept; then its make test passes, with version B's new test in it
    (project / "src/module.py").write_text(text.replace(conflict.group(0), FORK_LINE))
    assert (project / "src/module.py").read_text() == module
    summary = make_test(project, tmp_path / "b")
    print(f"make test in the project after the update to v1.1.0 (keep_examples={keep_examples}): {summary}")
    git(project, "commit", "-qam", "Template update to v1.1.0")
    assert all((project / name).exists() == keep_examples for name in EXAMPLES)  # still gone, or still there
