"""MLflow beside W&B: the same run name, group, tags, config and metrics, no secret in either; and the run record
that reproduces a run: command line, host, package versions and the uncommitted changes (git.diff)."""

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest
import yaml
from lightning.fabric.utilities.logger import _flatten_dict

from src.machinery.tracking.run_record import run_config
from tests.conftest import run_script
from tests.test_redaction import files_holding
from tests.test_train import inspect_wandb_run, wandb_run_record, wandb_summary

FAKE_KEY = "fakekey" + "0123456789abcdef0123456789abcdef0"
MY_TOKEN = "tok-" + "Zx81Qw72Er63Ty54"
REMOTE_PASSWORD = "pw-" + "Lk39Jh28Gf17"  # in the git remote's URL, as `git clone https://user:<token>@...` leaves it
WANDB_ONLY = {"_runtime", "_step", "_timestamp", "_wandb", "trainer/global_step", "test/confusion_matrix",
              "test/misclassified"}  # fmt: skip


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("mlflow", {"mlflow"}),
        ("[csv,wandb,mlflow]", {"csv", "wandb", "mlflow"}),
        ("[wandb,mlflow]", {"wandb", "mlflow"}),
    ],
)
def test_logger_lists_compose_every_named_logger(make_cfg, choice, expected):
    cfg = make_cfg(f"logger={choice}")
    assert set(cfg.logger) == expected
    assert cfg.logger.mlflow._target_ == "src.machinery.tracking.loggers.mlflow_logger"


def test_mlflow_store_is_in_mlruns_unless_the_environment_names_one(make_cfg, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = make_cfg("logger=mlflow")
    assert cfg.logger.mlflow.tracking_uri == f"sqlite:///{os.getcwd()}/mlruns/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example.com:5000")
    assert make_cfg("logger=mlflow").logger.mlflow.tracking_uri == "http://mlflow.example.com:5000"


def test_run_record_holds_command_host_and_versions(make_cfg, monkeypatch):
    monkeypatch.setattr("sys.argv", ["train.py", "optimizer.lr=0.01", f"+db.password={MY_TOKEN}"])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    record = run_config(make_cfg("trainer=cpu"))
    launch = record["launch"]
    assert launch["command"] == "python train.py optimizer.lr=0.01 +db.password=<redacted>"
    assert launch["host"] == socket.gethostname() and launch["cuda_visible_devices"] == "3"
    versions = record["versions"]
    for name in ("python", "torch", "cuda", "cudnn", "lightning", "torchmetrics", "hydra-core", "wandb", "numpy"):
        assert name in versions, name
    assert versions["lightning"].startswith("2.") and ("mlflow-skinny" in versions or "mlflow" in versions)


def test_wandb_gets_the_commit_and_a_remote_without_credentials_and_no_git_capture_of_its_own(
    make_cfg, tmp_path, monkeypatch
):
    from src.machinery.config.instantiate import instantiate_node
    from src.machinery.tracking import loggers

    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    git(repo, "commit", "-q", "--allow-empty", "-m", "base")
    git(repo, "remote", "add", "origin", f"https://lab:{REMOTE_PASSWORD}@git.example.com:8443/org/lab.git")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    monkeypatch.setattr(loggers, "ROOT", repo)
    handed = {}
    monkeypatch.setattr(loggers, "RedactingWandbLogger", lambda **kwargs: handed.update(kwargs))
    instantiate_node(make_cfg("logger=wandb").logger.wandb)
    expected = {"git_commit": head, "git_remote_url": "https://git.example.com:8443/org/lab.git", "disable_git": True}
    assert handed["settings"] == expected
    instantiate_node(make_cfg("logger=wandb", "+logger.wandb.settings.disable_git=false").logger.wandb)
    assert handed["settings"] == {**expected, "disable_git": False}  # the config's own settings win
    git(repo, "remote", "set-url", "origin", "git@github.com:org/lab.git")  # scp-like: "git@" is no credential
    assert loggers.git_settings(repo)["git_remote_url"] == "git@github.com:org/lab.git"
    assert loggers.git_settings(tmp_path) == {"disable_git": True}  # not a git tree: nothing to hand over


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True,
                   capture_output=True)  # fmt: skip


def mlflow_run(store: Path):
    """The one run in the local store, with its client."""
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("dl-template").experiment_id])
    return client, run


@pytest.mark.slow
def test_mlflow_run_matches_the_wandb_run_and_the_record_reproduces_it(repo_copy, monkeypatch):
    """One run logged to CSV, W&B (offline) and MLflow, from a git tree with an uncommitted change."""
    git(repo_copy, "init", "-q")
    git(repo_copy, "add", "-A")
    git(repo_copy, "commit", "-qm", "base")
    git(repo_copy, "remote", "add", "origin", f"https://lab:{REMOTE_PASSWORD}@github.com/org/lab.git")
    train_yaml = repo_copy / "conf" / "train.yaml"  # an uncommitted change, holding a secret by accident
    train_yaml.write_text(train_yaml.read_text() + f"# changed here, MY_TOKEN={MY_TOKEN} by mistake\n")
    (repo_copy / "src" / "models" / "mine.py").write_text("class Mine:\n    pass\n")  # a new file, not git add-ed
    env = {"WANDB_API_KEY": FAKE_KEY, "MY_TOKEN": MY_TOKEN, "WANDB_MODE": "offline"}
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # the local store in the repository
    run = repo_copy / "outputs" / "run"
    done = run_script(
        "train.py", "logger=[csv,wandb,mlflow]", "trainer=cpu", "trainer.max_epochs=2", "trainer.limit_train_batches=3",
        "group=g1", "tags=[t1,t2]", f"hydra.run.dir={run}", cwd=repo_copy, repo=repo_copy, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]

    # the run record: config.yaml, the W&B config and MLflow's params are the same
    record = yaml.safe_load((run / "config.yaml").read_text())
    assert record["launch"]["command"].startswith("python ") and "tags=[t1,t2]" in record["launch"]["command"]
    assert record["launch"]["host"] == socket.gethostname() and record["git"]["dirty"] is True
    assert {"torch", "lightning", "hydra-core", "wandb", "mlflow-skinny"} <= set(record["versions"])
    diff = (run / "git.diff").read_text()
    assert "+# changed here, MY_TOKEN=<redacted> by mistake" in diff and MY_TOKEN not in diff
    assert record["git"]["untracked"] == ["src/models/mine.py"] and "+class Mine:" in diff
    (wandb_dir,) = (run / "wandb").glob("offline-run-*")
    summary, wandb_run = wandb_summary(wandb_dir), wandb_run_record(wandb_dir)
    config = {k: v for k, v in summary["config"].items() if k != "_wandb"}
    assert config["launch"] == record["launch"] and config["versions"] == record["versions"]
    assert (wandb_dir / "files" / "git.diff").read_text() == diff
    # W&B's own git capture is off (it would upload an unredacted diff.patch): the commit and remote are given to it
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo_copy, capture_output=True, text=True).stdout.strip()
    assert wandb_run["git"] == {"commit": head, "remote_url": "https://github.com/org/lab.git"}
    assert record["git"]["commit"] == head

    client, mlflow = mlflow_run(repo_copy / "mlruns")
    wandb_params = _flatten_dict(config)  # MLflow's params are flat strings (up to 250 characters)
    assert set(mlflow.data.params) == set(wandb_params)
    for name, value in mlflow.data.params.items():  # W&B's JSON writes 1.0 as 1
        expected = wandb_params[name]
        assert value == str(expected)[:250] or float(value) == expected, (name, value, expected)
    assert mlflow.info.run_name == wandb_run["display_name"] == f"cnn-digits-{wandb_run['run_id']}"
    tags = mlflow.data.tags
    assert (tags["group"], tags["job_type"]) == (wandb_run["run_group"], wandb_run["job_type"]) == ("g1", "train")
    assert {t for t, v in tags.items() if v == "true"} == set(summary["tags"]) == {"t1", "t2"}
    assert [a.path for a in client.list_artifacts(mlflow.info.run_id)] == ["git.diff"]

    # metrics: the same names, final values and histories
    wandb_final = {k: v for k, v in summary["summary"].items() if k not in WANDB_ONLY}
    assert mlflow.data.metrics == pytest.approx(wandb_final)
    records = [json.loads(line) for line in inspect_wandb_run(wandb_dir).splitlines() if line.startswith("{")]
    history = [r["history"]["item"] for r in records if r.get("type") == "history"]
    for name in ("val/acc", "val/loss", "train/acc"):
        wandb_steps = [(h["trainer/global_step"], h[name]) for h in history if name in h]
        mlflow_steps = [(m.step, m.value) for m in client.get_metric_history(mlflow.info.run_id, name)]
        assert len(wandb_steps) == 2 and sorted(mlflow_steps) == sorted(wandb_steps)

    # no secret from the environment anywhere: run folder (W&B's files included) and MLflow's store
    assert files_holding(run, [FAKE_KEY, MY_TOKEN, REMOTE_PASSWORD]) == []
    assert files_holding(repo_copy / "mlruns", [FAKE_KEY, MY_TOKEN, REMOTE_PASSWORD]) == []


@pytest.mark.slow
def test_resume_continues_the_mlflow_run(tmp_path):
    from mlflow import MlflowClient

    store, run = f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "run"
    common = ["logger=mlflow", "trainer=cpu", "trainer.limit_train_batches=3", f"hydra.run.dir={run}"]
    env = {"MLFLOW_TRACKING_URI": store}
    first = run_script("train.py", *common, "trainer.max_epochs=1", env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    resumed = run_script("train.py", *common, "trainer.max_epochs=2", "resume=true", env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "keeps its first parameters" in resumed.stdout + resumed.stderr

    client = MlflowClient(store)
    (mlflow,) = client.search_runs([client.get_experiment_by_name("dl-template").experiment_id])  # one run, not two
    assert (run / "mlflow_run_id").read_text().strip() == mlflow.info.run_id
    steps = [m.step for m in client.get_metric_history(mlflow.info.run_id, "val/acc")]
    assert len(steps) == 2 and steps[0] < steps[1]  # epoch 1 from the first run, epoch 2 from the resumed one
    assert mlflow.data.params["trainer/max_epochs"] == "1" and mlflow.data.params["resume"] == "False"
