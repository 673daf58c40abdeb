"""Redaction by shape: well-known tokens are redacted wherever they appear, under any key name (config values, YAML
records, git.diff, the hyperparameters Lightning logs and checkpoints, W&B's and MLflow's copies), ordinary values
that merely start alike survive, and git.diff's assignments are redacted in every form."""

import subprocess
import time

import pytest
import torch
import yaml
from lightning.pytorch.loggers import CSVLogger

from src.machinery.tracking import run_record
from src.machinery.tracking.redacted_hparams import RedactedHyperparameters, redact_logged_hyperparameters
from src.machinery.tracking.secrets import (
    REDACTED,
    is_secret_name,
    redact,
    redact_files,
    redact_text,
    secret_values,
)
from src.machinery.tracking.token_shapes import is_token, token_shapes
from tests.conftest import run_script

# Fakes in each shape (none is a real credential), by the name of the shape that finds them
TOKENS = {
    "GitHub token": "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8",
    "GitHub fine-grained token": "github_pat_"
    + "11ABCDEFG0123456789_"
    + "abcdefghijKLMNOPQRSTuvwxyz0123456789ABCDEFGHIJ",
    "Hugging Face token": "hf_" + "jUbHxNdbLcMVvXUjNgsDtxWyaWzYoWbVar",
    "OpenAI-style key": "sk-" + "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb3dEf6hIj9kLm2n",
    "Slack token": "xoxb-" + "123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
    "AWS access key id": "AKIA" + "IOSFODNN7EXAMPLE",
    "GitLab token": "glpat-" + "xY9zAbCdEfGh12345678",
    "JSON web token": "eyJhbGciOiJIUzI1NiJ9"
    + ".eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
}
MORE_TOKENS = {  # more of the same shapes
    "GitHub token": ["ghs_" + "Z9y8X7w6V5u4T3s2R1q0P9o8N7m6L5k4J3i2", "gho_" + "Z9y8X7w6V5u4T3s2R1q0P9o8N7m6L5k4J3i2"],
    "OpenAI-style key": ["sk-proj-" + "Ab3dEf6hIj9kLm2nOp5qRs8t_Uv1wXy4z-Ab3dEf6hIj9kLm2n",
                         "sk-ant-api03-" + "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z-Ab3dEf6hIj9kLm2nAA"],
    "AWS access key id": ["ASIA" + "Q3EGUBK3EXAMPLE7"],
}  # fmt: skip
PEM_BODY = ["MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun", "VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTK"]
PEM_BEGIN = "-----BEGIN RSA " + "PRIVATE KEY-----"  # in two pieces: the pre-commit hook looks for private keys
PEM_KEY = PEM_BEGIN + "\n" + "\n".join(PEM_BODY) + "\n-----END RSA PRIVATE KEY-----\n"
URL_PASSWORD = "pa55-Word-x1"
# Ordinary values that start like a token, or look random, and must survive
ORDINARY = [
    "sk-learn", "hf_resnet", "hf_resnet50_pretrained_imagenet_v2", "sk-Learn-Classifier-Version2-Baseline",
    "sk-learn-classifier-baseline-experiment-v2", "ghp_short", "AKIA", "AKIAshort", "xoxb-team", "glpat-x",
    "eyJhbGciOiJIUzI1NiJ9", "0123456789abcdef0123456789abcdef01234567",  # a git commit: W&B keys' shape, unnamed
    "3f2b8c1e-9d4a-4f6b-8e2a-1c5d7e9f0a3b", "/data/hf_datasets/imagenet", "model=hf_vit_base_patch16_224",
    "https://huggingface.co/hf_internal_testing/tiny",
]  # fmt: skip


@pytest.mark.parametrize("shape, token", [(s, t) for s, t in TOKENS.items()] + [
    (s, t) for s, ts in MORE_TOKENS.items() for t in ts
])  # fmt: skip
def test_each_shape_is_redacted_anywhere_under_any_name(tmp_path, shape, token):
    assert is_token(token) and token_shapes(f"x {token} y") == [(shape, token)]
    assert redact_text(f"run notes: {token}, then more", []) == f"run notes: {REDACTED}, then more"
    tree = {"notes": {"innocent": token, "list": [f"--flag={token}"]}, "lr": 0.1}
    assert redact(tree, []) == {"notes": {"innocent": REDACTED, "list": [f"--flag={REDACTED}"]}, "lr": 0.1}
    path = tmp_path / "overrides.yaml"
    path.write_text(yaml.safe_dump([f"+notes.innocent={token}", "trainer=cpu"]))
    assert redact_files([path], []) == [path] and token not in path.read_text()


@pytest.mark.parametrize("value", ORDINARY)
def test_ordinary_values_that_start_alike_survive(value):
    assert not is_token(value) and token_shapes(value) == []
    assert redact_text(value, []) == value
    assert redact({"run_name": value, "model": {"name": value}}, []) == {"run_name": value, "model": {"name": value}}


MODEL_NAMES = ["tokenizer", "max_tokens", "num_tokens", "token_embedding", "token_ids", "tokens_per_batch"]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_names_of_model_parts_and_counts_are_not_secret(name):
    assert not is_secret_name(name)
    assert redact_text(f"+    {name}: 512\n+    self.{name} = 4\n", []) == f"+    {name}: 512\n+    self.{name} = 4\n"


@pytest.mark.parametrize("name", ["token", "hf_token", "GH_TOKEN", "access_token", "api-token", "auth_token"])
def test_names_of_tokens_stay_secret(name):
    assert is_secret_name(name)


def test_a_w_and_b_key_is_redacted_only_where_named():
    key = "0123456789abcdef0123456789abcdef01234567"
    assert redact_text(f"WANDB_API_KEY={key} commit {key}", []) == f"WANDB_API_KEY={REDACTED} commit {key}"
    assert redact_text(f"git: {{commit: {key}}}", []) == f"git: {{commit: {key}}}"  # 40 hex digits: a commit
    named = secret_values(config={"logger": {"wandb": {"api_key": key}}}, argv=[], environ={})
    assert redact_text(f"git: {{commit: {key}}}", named) == f"git: {{commit: {REDACTED}}}"  # once named, anywhere


DIFF = f"""\
diff --git a/conf/local.yaml b/conf/local.yaml
+API_TOKEN = "tok-Value-001"
+db_password: plain-yaml-002
+  "client_secret": "json-value-003",
+export AWS_SECRET_ACCESS_KEY=shell-value-004
+    train.py --password flag-value-005 --api-token=flag-value-006 --lr 0.1
+AUTH_KEY := 'make-value-007'
+note: the deploy uses {TOKENS["Hugging Face token"]} and postgres://bob:{URL_PASSWORD}@db/x
+    self.token_embedding = nn.Embedding(vocab, dim)
+    key = self.k_proj(x)
+    password = os.environ["DB_PASSWORD"]
+    token: None
+    secret: ${{oc.env:MY_SECRET}}
+commit: 0123456789abcdef0123456789abcdef01234567
""" + "".join(f"+{line}\n" for line in PEM_KEY.splitlines())
DIFF_SECRETS = [f"value-00{i}" for i in range(1, 8)] + [TOKENS["Hugging Face token"], URL_PASSWORD, *PEM_BODY]


def test_git_diff_assignments_are_redacted_in_every_form_and_code_survives(tmp_path, monkeypatch):
    monkeypatch.setattr(run_record, "git_diff", lambda cwd: DIFF)
    start = time.monotonic()
    path = run_record.save_git_diff({"git": {"dirty": True}, "paths": {"root_dir": "."}}, tmp_path)
    assert time.monotonic() - start < 30
    diff = path.read_text()
    assert [s for s in DIFF_SECRETS if s in diff] == []
    for line in [
        f'+API_TOKEN = "{REDACTED}"', f"+db_password: {REDACTED}", f'+  "client_secret": "{REDACTED}",',
        f"+export AWS_SECRET_ACCESS_KEY={REDACTED}", f"--password {REDACTED} --api-token={REDACTED} --lr 0.1",
        f"+AUTH_KEY := '{REDACTED}'", f"postgres://bob:{REDACTED}@db/x",
        "+    self.token_embedding = nn.Embedding(vocab, dim)", "+    key = self.k_proj(x)",
        '+    password = os.environ["DB_PASSWORD"]', "+    token: None", "+    secret: ${oc.env:MY_SECRET}",
        "+commit: 0123456789abcdef0123456789abcdef01234567", f"+{PEM_BEGIN}",
        f"+{REDACTED}", "+-----END RSA PRIVATE KEY-----",
    ]:  # fmt: skip
        assert line in diff, line
    assert len(diff.splitlines()) == len(DIFF.splitlines())  # line for line: the diff's hunks still count right


def test_the_hyperparameters_lightning_logs_and_checkpoints_are_redacted(tmp_path):
    token = TOKENS["GitHub token"]
    logger = CSVLogger(tmp_path, name="csv", version="")
    redact_logged_hyperparameters([logger], ["hunter2-long"])
    logger.log_hyperparams({"freeze": [f"net.{token}"], "note": "pw hunter2-long", "lr": 0.1})
    logger.save()
    assert yaml.safe_load((tmp_path / "csv" / "hparams.yaml").read_text()) == {
        "freeze": [f"net.{REDACTED}"], "note": f"pw {REDACTED}", "lr": 0.1
    }  # fmt: skip
    checkpoint = {"hyper_parameters": {"freeze": [token], "num_classes": 10}, "state_dict": {"w": torch.ones(2)}}
    RedactedHyperparameters([]).on_save_checkpoint(None, None, checkpoint)
    assert checkpoint["hyper_parameters"] == {"freeze": [REDACTED], "num_classes": 10}
    assert torch.equal(checkpoint["state_dict"]["w"], torch.ones(2))


def git(repo, *args):
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True,
                   capture_output=True)  # fmt: skip


def files_holding(folders, secrets):
    """`path: secret` for every file under `folders` (binary ones included, links not followed) holding a secret."""
    return [
        f"{path}: {secret[:10]}"
        for folder in folders
        for path in folder.rglob("*")
        if path.is_file() and not path.is_symlink()
        for secret in secrets
        if secret.encode() in path.read_bytes()
    ]


@pytest.mark.slow
def test_no_shaped_token_or_password_from_the_command_line_reaches_any_file(repo_copy, monkeypatch):
    """A run logged to CSV, W&B (offline) and MLflow (local), from a dirty tree whose diff holds secrets in every
    assignment form, with a password on the command line under a secret name and tokens under innocent names (in a
    value, the tags and the run name): no file under the run folder, W&B's folder or mlruns/ holds any of them."""
    git(repo_copy, "init", "-q")
    git(repo_copy, "add", "-A")
    git(repo_copy, "commit", "-qm", "base")
    remote_password = "Remote-Pass-55"  # W&B and MLflow record the remote; both strip its credentials
    git(repo_copy, "remote", "add", "origin", f"https://ci:{remote_password}@git.example.com/team/project.git")
    (repo_copy / "conf" / "local_notes.yaml").write_text(DIFF.replace("\n+", "\n").removeprefix("diff --git"))
    train_yaml = repo_copy / "conf" / "train.yaml"  # a tracked file changed: `git diff HEAD` has it (W&B's too)
    train_yaml.write_text(train_yaml.read_text() + '# DEPLOY_TOKEN = "tracked-value-008"\n')
    password, github, hugging = "Correct-Horse-Battery-99", TOKENS["GitHub token"], TOKENS["Hugging Face token"]
    openai = MORE_TOKENS["OpenAI-style key"][0]
    secrets = [password, github, hugging, openai, remote_password, "tracked-value-008", *DIFF_SECRETS]
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # the local store, in the repository copy
    run = repo_copy / "outputs" / "run"
    done = run_script(
        "train.py", "logger=[csv,wandb,mlflow]", "trainer=cpu", "trainer.max_epochs=1", "trainer.limit_train_batches=2",
        f"+db.password={password}", f"+notes.innocent={github}", f"tags=[cnn,{hugging}]",
        f"run_name=cnn-{openai}", f"hydra.run.dir={run}", cwd=repo_copy, repo=repo_copy,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert [s for s in secrets if s in done.stdout + done.stderr] == []
    (wandb_dir,) = (run / "wandb").glob("offline-run-*")
    assert (wandb_dir / f"run-{wandb_dir.name.rsplit('-', 1)[1]}.wandb").stat().st_size > 0
    (diff,) = (repo_copy / "mlruns").rglob("git.diff")  # MLflow's copy of the diff, redacted as the run's
    assert f'+# DEPLOY_TOKEN = "{REDACTED}"' in diff.read_text() and diff.read_text() == (run / "git.diff").read_text()
    assert f"notes.innocent={REDACTED}" in (run / ".hydra" / "overrides.yaml").read_text()
    assert f"+db.password={REDACTED}".encode() in next(wandb_dir.glob("run-*.wandb")).read_bytes()  # W&B's argv
    assert files_holding([run, repo_copy / "mlruns", repo_copy / "wandb"], secrets) == []

    best = next((run / "checkpoints").glob("epoch_*.ckpt"))
    evaluated = repo_copy / "outputs" / "eval"
    done = run_script(
        "eval.py", f"ckpt_path={best}", "trainer=cpu", "logger=[csv,wandb,mlflow]", f"+notes.innocent={github}",
        f"+db.password={password}", f"hydra.run.dir={evaluated}", cwd=repo_copy, repo=repo_copy,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert files_holding([evaluated, repo_copy / "mlruns"], secrets) == []


def test_a_redacting_logger_still_pickles(tmp_path):
    import pickle

    logger = CSVLogger(tmp_path, name="csv", version="")
    redact_logged_hyperparameters([logger], ["hunter2-long"])
    copy = pickle.loads(pickle.dumps(logger))  # as a spawned DDP process gets it
    copy.log_hyperparams({"note": "pw hunter2-long"})
    copy.save()
    assert yaml.safe_load((tmp_path / "csv" / "hparams.yaml").read_text()) == {"note": f"pw {REDACTED}"}
