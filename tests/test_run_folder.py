"""A run folder is not trusted: planted links stop a resume, the template's writes never follow a link, and
`wandb_run_id` is used only when it is a W&B id."""

import logging
import os
import re
from pathlib import Path

import pytest

from src.errors import RunFolderError
from src.machinery.runs.folder import check_run_folder_argument, planted_links, read_text, write_text
from src.machinery.tracking.loggers import RUN_ID_FILE, run_id
from src.machinery.tracking.run_record import save_run_config
from src.machinery.tracking.secrets import redact_files
from src.train import train
from tests.conftest import FAST, compose_config, run_script


def victims(tmp_path: Path) -> dict[str, Path]:
    outside = tmp_path / "outside"
    outside.mkdir()
    files = {name: outside / name for name in ("bashrc", "token", "notes")}
    for name, path in files.items():
        path.write_text(f"original {name}\n")
    return files


def untouched(files: dict[str, Path]) -> bool:
    return all(path.read_text() == f"original {name}\n" for name, path in files.items())


def planted_run_folder(tmp_path: Path, files: dict[str, Path]) -> Path:
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").symlink_to(files["bashrc"])
    (run / "train.log").symlink_to(files["notes"])
    (run / RUN_ID_FILE).symlink_to(files["token"])
    return run


def test_resume_in_a_folder_with_planted_links_stops_in_one_line_before_anything_is_written(tmp_path):
    files = victims(tmp_path)
    run = planted_run_folder(tmp_path, files)
    done = run_script("train.py", "resume=true", f"hydra.run.dir={run}", "trainer=cpu", "logger=none")
    assert done.returncode == 1, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"Error: run folder {run} holds symbolic links")
    assert ".hydra/config.yaml ->" in lines[0] and "train.log ->" in lines[0] and "cp -rL" in lines[0]
    assert "Traceback" not in done.stderr and untouched(files)
    assert sorted(p.name for p in run.iterdir()) == sorted([".hydra", RUN_ID_FILE, "train.log"])  # nothing new


def test_eval_into_a_folder_with_planted_links_stops_too(tmp_path):
    files = victims(tmp_path)
    run = planted_run_folder(tmp_path, files)
    done = run_script("eval.py", "ckpt_path=x.ckpt", f"hydra.run.dir={run}", "trainer=cpu")
    assert done.returncode == 1 and "holds symbolic links" in done.stderr and untouched(files)


def test_resume_in_process_checks_the_folder_before_building_the_run(tmp_path):
    files = victims(tmp_path)
    (tmp_path / "config.yaml").symlink_to(files["notes"])
    with pytest.raises(RunFolderError, match=r"holds symbolic links \(config.yaml -> "):
        train(compose_config("train", [*FAST, "logger=none", "resume=true"], tmp_path))
    assert untouched(files)


def test_wandb_own_links_inside_its_folder_are_allowed_others_are_not(tmp_path):
    run = tmp_path / "run"
    (run / "wandb" / "offline-run-1" / "logs").mkdir(parents=True)
    (run / "wandb" / "latest-run").symlink_to(run / "wandb" / "offline-run-1")
    (run / "wandb" / "debug.log").symlink_to("offline-run-1/logs/debug.log")
    (run / "wandb" / "offline-run-1" / "logs" / "debug-core.log").symlink_to(tmp_path / "core-debug.log")
    assert planted_links(run) == []
    check_run_folder_argument([f"hydra.run.dir={run}"])  # no error
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "loop").symlink_to(run / "checkpoints")
    other = tmp_path / "other"
    other.mkdir()
    (other / "wandb").symlink_to(tmp_path)  # W&B's folder itself a link: W&B would write through it
    assert [p.name for p in planted_links(run)] == ["loop"] and [p.name for p in planted_links(other)] == ["wandb"]
    with pytest.raises(RunFolderError):
        check_run_folder_argument(["resume=true", f"hydra.run.dir='{run}'"])
    check_run_folder_argument([f"hydra.run.dir={tmp_path / 'new'}"])  # a new folder: nothing to check


def test_own_writes_refuse_links_and_pipes(tmp_path):
    files = victims(tmp_path)
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / "config.yaml").symlink_to(files["bashrc"])
    with pytest.raises(RunFolderError, match=r"config\.yaml is not a regular file"):
        save_run_config({"a": 1}, run)
    (run / ".hydra" / "overrides.yaml").symlink_to(files["token"])
    assert redact_files([run / ".hydra" / "overrides.yaml"], ["original"]) == []
    os.mkfifo(run / "pipe")
    assert read_text(run / "pipe") is None  # no hang
    with pytest.raises(RunFolderError):
        write_text(run / "pipe", "x")
    assert read_text(run / "config.yaml") is None
    assert untouched(files)
    write_text(run / "plain.txt", "long text\n")
    write_text(run / "plain.txt", "short\n")
    assert read_text(run / "plain.txt") == "short\n"


@pytest.mark.parametrize(
    "content",
    ["link", "0123456789abcdef0123456789abcdef01234567\n", "../../etc/x", "ABCDEFGH", "abc", "a" * 100_000, "dir"],
)
def test_a_bad_wandb_run_id_gives_a_new_id_and_says_so(tmp_path, content, caplog):
    files = victims(tmp_path)
    path = tmp_path / RUN_ID_FILE
    if content == "link":
        path.symlink_to(files["token"])
    elif content == "dir":
        path.mkdir()
    else:
        path.write_text(content)
    with caplog.at_level(logging.WARNING, logger="src.machinery.tracking.loggers"):
        if content == "dir":
            with pytest.raises(RunFolderError):
                run_id(tmp_path)
            return
        new = run_id(tmp_path)
    assert re.fullmatch(r"[a-z0-9]{8}", new) and new not in content
    assert any("is not a W&B run id" in r.getMessage() and new in r.getMessage() for r in caplog.records)
    assert untouched(files) and not path.is_symlink() and path.read_text() == new + "\n"
    assert run_id(tmp_path) == new  # kept from now on


def test_a_good_wandb_run_id_is_kept_and_a_missing_one_made_silently(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="src.machinery.tracking.loggers"):
        made = run_id(tmp_path)
        assert run_id(tmp_path) == made
    assert not caplog.records
