"""Paths in a checkpoint's restored callback state never reach a removal: victims outside the run stay untouched."""

import logging
import os
from pathlib import Path

import pytest
import torch

from src.machinery.checkpoints.files import AtomicCheckpointIO, remove_checkpoint_file
from src.machinery.resume.restored_state import clean_model_checkpoint_state, is_inside
from src.train import train
from tests.conftest import FAST, compose_config

TINY = [*FAST, "logger=none", "trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1"]


def victim(tmp_path: Path) -> Path:
    folder = tmp_path / "victim"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "precious.txt").write_text("keep me")
    return folder


def intact(folder: Path) -> bool:
    return (folder / "sub" / "precious.txt").read_text() == "keep me"


def attacks(run_dir: Path, target: Path) -> dict[str, str]:
    checkpoints = run_dir / "checkpoints"
    return {
        "absolute": str(target),
        "dotdot": f"{checkpoints}/../../{target.name}",
        "protocol": f"file://{target}",
        "chained": f"simplecache::file://{target}",
    }


@pytest.fixture(scope="module")
def first_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("first")
    train(compose_config("train", TINY, run_dir))
    return run_dir / "checkpoints" / "last.ckpt"


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["absolute", "dotdot", "protocol", "chained"])
def test_a_crafted_callback_state_deletes_nothing_outside_the_run(first_run, tmp_path, kind, caplog):
    """The checkpoint claims the new run's own folder (so Lightning restores every path) and names a victim."""
    run_dir = tmp_path / "run"
    target = victim(tmp_path)
    bad = attacks(run_dir, target)[kind]
    checkpoint = torch.load(first_run, map_location="cpu", weights_only=True)
    states = [s for k, s in checkpoint["callbacks"].items() if k.startswith(("ModelCheckpoint", "LastCheckpoint"))]
    assert len(states) == 2  # the best checkpoint's callback and last.ckpt's
    for state in states:
        state.update(
            dirpath=os.path.realpath(run_dir / "checkpoints"),
            best_model_path=bad,
            last_model_path=bad,
            kth_best_model_path=bad,
            best_k_models={bad: torch.tensor(0.0)},
        )
    crafted = tmp_path / "crafted.ckpt"
    torch.save(checkpoint, crafted)
    with caplog.at_level(logging.WARNING, logger="src.machinery.resume.restored_state"):
        metrics = train(compose_config("train", [*TINY, "trainer.max_epochs=2", f"ckpt_path={crafted}"], run_dir))
    assert intact(target) and "test/acc" in metrics
    assert any("dropped last_model_path" in r.getMessage() for r in caplog.records)
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()


def test_is_inside_accepts_only_plain_local_paths_in_the_folder(tmp_path):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    (folder / "link").symlink_to(tmp_path)
    assert is_inside(str(folder / "epoch_001.ckpt"), folder)
    assert is_inside(str(folder / "sub" / "x.ckpt"), folder)
    for bad in [
        str(tmp_path / "x.ckpt"),
        f"{folder}/../x.ckpt",
        f"{folder}/sub/../../x.ckpt",
        "epoch_001.ckpt",  # relative: to whatever the working directory is
        f"file://{folder}/x.ckpt",
        f"s3://bucket{folder}/x.ckpt",
        str(folder),
        str(folder / "link" / "x.ckpt"),  # a link inside the folder that leads out
        f"{folder}/x\0.ckpt",
        None,
        7,
    ]:
        assert not is_inside(bad, folder), bad


def test_clean_state_keeps_own_paths_and_drops_others(tmp_path):
    folder = tmp_path / "checkpoints"
    own = str(folder / "epoch_001.ckpt")
    state = {
        "dirpath": str(folder),
        "best_model_path": own,
        "last_model_path": "/etc",
        "kth_best_model_path": "",
        "best_k_models": {own: 0.9, "/etc/passwd": 0.1},
    }
    dropped = clean_model_checkpoint_state(state, folder)
    assert state == {
        "dirpath": str(folder),
        "best_model_path": own,
        "last_model_path": "",
        "kth_best_model_path": "",
        "best_k_models": {own: 0.9},
    }
    assert dropped == ["last_model_path='/etc'", "best_k_models['/etc/passwd']"]
    foreign = {"dirpath": "memory://x", "best_model_path": own}
    clean_model_checkpoint_state(foreign, folder)
    assert foreign["dirpath"] is None  # Lightning then restores none of the folder-bound fields


def test_removing_a_checkpoint_removes_one_regular_file_never_a_folder_or_a_link_target(tmp_path):
    target = victim(tmp_path)
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    io = AtomicCheckpointIO()
    io.save_checkpoint({"state_dict": {}}, folder / "a.ckpt")
    assert (folder / "a.ckpt.sha256").is_file()
    io.remove_checkpoint(folder / "a.ckpt")
    assert list(folder.iterdir()) == []
    (folder / "dir.ckpt").symlink_to(target, target_is_directory=True)
    (folder / "file.ckpt").symlink_to(target / "sub" / "precious.txt")
    for path in [target, folder / "dir.ckpt", folder / "file.ckpt", f"{folder}/../victim", folder / "missing.ckpt"]:
        assert remove_checkpoint_file(path) is False
    assert intact(target) and (folder / "dir.ckpt").is_symlink() and (folder / "file.ckpt").is_symlink()
    assert remove_checkpoint_file(f"file://{target}") is False and intact(target)
