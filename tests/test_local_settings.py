"""Per-machine settings: conf/local/default.yaml and .env take effect, and git never sees them."""

import subprocess

import pytest
import yaml

from tests.conftest import ROOT, run_script

LOCAL_CONFIG = """\
# @package _global_
trainer:
  max_epochs: 7
logger:
  wandb:
    tags: [from-local]
"""

DOT_ENV = """\
DATA_DIR=/scratch/me/data          # a comment after the value
WANDB_ENTITY=my-team
CLUSTER_PARTITION=gpu-long
"""


def composed(repo, *overrides: str) -> dict:
    """The job config train.py would run, printed by Hydra (`--cfg job --resolve`), nothing trained."""
    done = run_script("train.py", "--cfg", "job", "--resolve", *overrides, cwd=repo, repo=repo)
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """Variables set in the environment win over .env: make sure this machine sets none of them."""
    for name in ("DATA_DIR", "WANDB_ENTITY", "WANDB_PROJECT", "CLUSTER_PARTITION"):
        monkeypatch.delenv(name, raising=False)


def test_local_config_and_dot_env_take_effect(repo_copy):
    before = composed(repo_copy)
    assert before["trainer"]["max_epochs"] != 7
    assert before["logger"]["wandb"]["entity"] is None

    (repo_copy / "conf/local/default.yaml").write_text(LOCAL_CONFIG)
    (repo_copy / ".env").write_text(DOT_ENV)
    cfg = composed(repo_copy)
    assert cfg["trainer"]["max_epochs"] == 7
    assert cfg["logger"]["wandb"]["tags"] == ["from-local"]
    assert cfg["paths"]["data_dir"] == "/scratch/me/data"
    assert cfg["logger"]["wandb"]["entity"] == "my-team"
    assert composed(repo_copy, "data=mnist")["data"]["data_dir"] == "/scratch/me/data"
    # the command line still wins over the machine's settings
    assert composed(repo_copy, "trainer.max_epochs=2")["trainer"]["max_epochs"] == 2


def test_dot_env_sets_the_slurm_partition(repo_copy):
    (repo_copy / ".env").write_text(DOT_ENV)
    done = run_script("train.py", "--cfg", "all", "--resolve", "hydra/launcher=slurm", cwd=repo_copy, repo=repo_copy)
    assert done.returncode == 0, done.stderr
    assert yaml.safe_load(done.stdout)["hydra"]["launcher"]["partition"] == "gpu-long"


def test_machine_settings_are_git_ignored():
    ignored = ["conf/local/default.yaml", "conf/local/cluster.yaml", ".env"]
    done = subprocess.run(["git", "check-ignore", *ignored], cwd=ROOT, capture_output=True, text=True)
    assert done.stdout.split() == ignored
    kept = subprocess.run(["git", "check-ignore", "conf/local/README.md", ".env.example"], cwd=ROOT)
    assert kept.returncode == 1  # neither is ignored
