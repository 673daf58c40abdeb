"""Redaction that does not depend on spelling: wider names, token-shaped values, URL passwords, parsed YAML,
and eval.py's records as well as train.py's."""

import re
from pathlib import Path

import pytest
import yaml

from src.machinery.tracking.secrets import REDACTED, is_secret_name, redact_files, redact_text, secret_values
from tests.conftest import run_script

GITHUB = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
RANDOM = "q8ZtK2vR9mXw4LpN7sYc3BfJ"
URL_PASSWORD = "s3cr3t-pass-77"


@pytest.mark.parametrize(
    "name",
    ["KAGGLE_KEY", "AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_CONNECTION_STRING", "DB_PWD", "MYSQL_PWD",
     "gpg_passphrase", "logger.mlflow.private_key", "AWS_SECRET_ACCESS_KEY", "key", "HTTP_AUTHORIZATION"],
)  # fmt: skip
def test_names_missed_before_are_secret(name):
    assert is_secret_name(name)


@pytest.mark.parametrize("name", ["PWD", "OLDPWD", "SSH_AUTH_SOCK", "optimizer.lr", "monitor", "keyboard", "author"])
def test_ordinary_names_are_not(name):
    assert not is_secret_name(name)


def test_secret_looking_values_are_found_whatever_their_variable_is_called():
    environ = {
        "DEPLOY_THING": GITHUB,
        "SOMETHING": RANDOM,
        "MLFLOW_TRACKING_URI": f"https://alice:{URL_PASSWORD}@mlflow.example.com/",
        # ordinary values: paths, lists, locales, host names, commit ids, the working directory
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "en_US.UTF-8",
        "HOSTNAME": "gpu-node-0123",
        "GITHUB_SHA": "0123456789abcdef0123456789abcdef01234567",
        "PWD": "/work/project",
        "LS_COLORS": "rs=0:di=01;34:ln=01;36:mh=00:pi=40;33",
        "CUDA_VISIBLE_DEVICES": "0,1,2,3",
    }
    assert secret_values(environ=environ, argv=[]) == {GITHUB, RANDOM, URL_PASSWORD}


def test_urls_and_key_value_pairs_are_redacted_in_text():
    text = (
        f"tracking: https://alice:{URL_PASSWORD}@mlflow.example.com/x?token=abc123xyz&page=2 "
        "conn: DefaultEndpointsProtocol=https;AccountName=me;AccountKey=c2VjcmV0LWtleQ==;EndpointSuffix=x "
        "+db.password=hunter2-long trainer=cpu"
    )
    clean = redact_text(text, [])
    assert URL_PASSWORD not in clean and "abc123xyz" not in clean and "c2VjcmV0LWtleQ" not in clean
    assert "hunter2-long" not in clean
    assert f"https://alice:{REDACTED}@mlflow.example.com" in clean and "page=2" in clean and "trainer=cpu" in clean
    assert "AccountName=me" in clean


def test_yaml_is_redacted_on_its_data_so_quoting_and_escaping_hide_nothing(tmp_path):
    secret = "pa\"ss\\wo'rd\u00e9-123\t!"  # YAML writes it quoted and escaped: not as these characters
    path = tmp_path / "overrides.yaml"
    path.write_text(yaml.safe_dump({"task": [f"+db.pass_word={secret}", "trainer=cpu"], "note": f"x {secret} y"}))
    assert secret not in path.read_text()  # what a textual redaction would have looked for
    assert redact_files([path], [secret]) == [path]
    data = yaml.safe_load(path.read_text())
    assert data == {"task": [f"+db.pass_word={REDACTED}", "trainer=cpu"], "note": f"x {REDACTED} y"}


def test_yaml_with_aliases_is_redacted_as_text_not_expanded(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text("a: &a [x, x, x]\nb: &b [*a, *a, *a]\nc: [*b, *b, *b]\nkey: hunter2-long\n")
    assert redact_files([path], ["hunter2-long"]) == [path]
    assert "hunter2-long" not in path.read_text() and "&a" in path.read_text()


def files_holding(folder: Path, secrets: list[str]) -> list[str]:
    return [
        f"{p.relative_to(folder)}: {s[:8]}"
        for p in folder.rglob("*")
        if p.is_file() and not p.is_symlink()
        for s in secrets
        if s.encode() in p.read_bytes()
    ]


@pytest.mark.slow
def test_train_and_eval_write_no_secret_of_the_kinds_missed_before(tmp_path):
    env = {
        "KAGGLE_KEY": "kaggle0123456789abcdef",
        "AZURE_STORAGE_CONNECTION_STRING": "DefaultEndpointsProtocol=https;AccountKey=QWxhZGRpbjpvcGVu",
        "DB_PWD": "correct-horse-battery",
        "DEPLOY_THING": GITHUB,
        "MLFLOW_TRACKING_URI": f"https://alice:{URL_PASSWORD}@mlflow.example.com/",
    }
    secrets = [env["KAGGLE_KEY"], env["AZURE_STORAGE_CONNECTION_STRING"], env["DB_PWD"], GITHUB, URL_PASSWORD]
    # the values reach the config through names that look like nothing (only their values give them away)
    leak = [
        "+notes.a=${oc.env:KAGGLE_KEY}",
        "+notes.b=${oc.env:DEPLOY_THING}",
        "+notes.c=${oc.env:MLFLOW_TRACKING_URI}",
    ]
    run = tmp_path / "run"
    done = run_script(
        "train.py", "trainer=cpu", "trainer.max_epochs=1", "trainer.limit_train_batches=2", "logger=default",
        *leak, f"hydra.run.dir={run}", env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert files_holding(run, secrets) == []
    assert yaml.safe_load((run / "config.yaml").read_text())["notes"]["a"] == REDACTED
    best = next((run / "checkpoints").glob("epoch_*.ckpt"))
    evaluated = tmp_path / "eval"
    done = run_script(
        "eval.py", f"ckpt_path={best}", "trainer=cpu", *leak, f"+db_pwd={env['DB_PWD']}",
        f"hydra.run.dir={evaluated}", env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert files_holding(evaluated, secrets) == []
    assert re.search(r"notes", (evaluated / ".hydra" / "overrides.yaml").read_text())
    assert not [s for s in secrets if s in done.stdout + done.stderr]
