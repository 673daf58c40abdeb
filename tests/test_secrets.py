"""No credential reaches anything a run writes: config files, checkpoints, Hydra's records, logs or W&B."""

import pytest

from src.machinery.tracking.secrets import REDACTED, is_secret_name, redact, secret_values
from tests.conftest import run_script

ENV_KEY = "0123456789abcdef0123456789abcdef01234567"  # the shape of a W&B key, but fake
CLI_KEY = "fedcba9876543210fedcba9876543210fedcba98"


def test_secret_names_values_and_redaction():
    assert is_secret_name("WANDB_API_KEY") and is_secret_name("logger.wandb.api_key") and is_secret_name("hf_token")
    assert not is_secret_name("OMP_NUM_THREADS") and not is_secret_name("optimizer.lr")
    found = secret_values(
        config={"a": {"password": "hunter2-long"}},
        argv=["+api_key=from-the-command-line", "optimizer.lr=0.1"],
        environ={"WANDB_API_KEY": ENV_KEY, "HOME": "/root", "GH_TOKEN": "no"},  # "no": too short to be one
    )
    assert found == {"hunter2-long", "from-the-command-line", ENV_KEY}
    tree = {"api_key": "x", "note": f"key={ENV_KEY}", "items": [ENV_KEY, 3], "lr": 0.1}
    assert redact(tree, found) == {"api_key": REDACTED, "note": f"key={REDACTED}", "items": [REDACTED, 3], "lr": 0.1}


@pytest.mark.slow
def test_keys_in_the_environment_and_on_the_command_line_are_written_nowhere(tmp_path):
    done = run_script(
        "train.py", "trainer=cpu", "trainer.max_epochs=1", "trainer.limit_train_batches=2", "logger=default",
        f"+wandb_api_key={CLI_KEY}", f"hydra.run.dir={tmp_path}", env={"WANDB_API_KEY": ENV_KEY},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert ENV_KEY not in done.stdout + done.stderr and CLI_KEY not in done.stdout + done.stderr
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    (record,) = tmp_path.glob("wandb/offline-run-*/run-*.wandb")
    for path in files:  # every file, binary ones (checkpoints, the .wandb record) included
        data = path.read_bytes()
        assert ENV_KEY.encode() not in data and CLI_KEY.encode() not in data, path
    # the key was on the command line: Hydra's record and the config show it redacted, not dropped
    assert f"+wandb_api_key={REDACTED}" in (tmp_path / ".hydra" / "overrides.yaml").read_text()
    assert f"wandb_api_key: {REDACTED}" in (tmp_path / "config.yaml").read_text()
    assert f"+wandb_api_key={REDACTED}".encode() in record.read_bytes()  # W&B's copy of the command line
