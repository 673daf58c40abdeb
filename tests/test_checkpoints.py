"""Checkpoint files: atomic under SIGKILL, verified on load, refused when damaged, foreign or carrying code."""

import os
import random
import re
import signal
import sys
import time
from pathlib import Path

import pytest
import torch

from src.errors import CheckpointError
from src.eval import evaluate
from src.machinery.checkpoints.files import AtomicCheckpointIO, checksum_path, read_checkpoint, temp_files, temp_name
from src.machinery.config.schemas import ROOT
from src.train import train
from tests.conftest import FAST, compose_config, run_script

TINY = [*FAST, "logger=none", "trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1"]


def fake_checkpoint(step: int) -> dict:
    """A Lightning-shaped checkpoint of 8 MB, so that a save takes long enough to be killed in the middle."""
    return {"state_dict": {"w": torch.full((2_000_000,), float(step))}, "global_step": step}


def save_forever(io: AtomicCheckpointIO, path: Path, tmpdir: Path, step: int) -> None:
    """The forked child: save ever newer checkpoints from `step` on until killed; $TMPDIR is an empty folder."""
    os.environ["TMPDIR"] = str(tmpdir)
    try:
        while True:
            io.save_checkpoint(fake_checkpoint(step), path)
            step += 1
    finally:
        os._exit(1)


@pytest.mark.skipif(
    sys.platform != "linux",
    reason="unnamed temporary files (O_TMPFILE) are Linux-only: elsewhere a kill can strand one until the next save",
)
@pytest.mark.slow
def test_sigkill_during_saves_leaves_the_last_checkpoint_loadable_and_no_temporary_files(tmp_path):
    io, path = AtomicCheckpointIO(), tmp_path / "checkpoints" / "last.ckpt"
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    io.save_checkpoint(fake_checkpoint(0), path)
    rng, last_step = random.Random(0), 0
    for _ in range(20):
        pid = os.fork()
        if pid == 0:
            save_forever(io, path, tmpdir, last_step + 1)
        time.sleep(rng.uniform(0.05, 0.4))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        # verifies the checksum, and removes the one complete temporary file a kill between naming it and
        # renaming it over last.ckpt (a few microseconds) would strand, as a resumed run's first load does
        checkpoint = read_checkpoint(path)
        step = checkpoint["global_step"]
        assert step >= last_step
        assert torch.equal(checkpoint["state_dict"]["w"], fake_checkpoint(step)["state_dict"]["w"])
        assert temp_files(path.parent) == [] and sorted(p.name for p in path.parent.iterdir()) == [
            "last.ckpt",
            "last.ckpt.sha256",
        ]
        assert list(tmpdir.iterdir()) == []
        last_step = step
    assert last_step > 20  # the child saved many times between kills: the kills landed among saves


@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("good")
    train(compose_config("train", TINY, run_dir))
    return run_dir / "checkpoints" / "last.ckpt"


def damaged(good: Path, folder: Path, kind: str) -> Path:
    """A copy of `good` damaged as `kind` (with its checksum file where a real run would have one)."""
    data = good.read_bytes()
    path = folder / f"{kind}.ckpt"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        path.write_bytes(data[: len(data) // 2])  # a copy cut short, no checksum file
    elif kind == "truncated_with_checksum":
        path.write_bytes(data[: len(data) // 2])
        checksum_path(path).write_bytes(checksum_path(good).read_bytes())
    elif kind == "bit_flipped":
        flipped = bytearray(data)
        flipped[len(data) // 2] ^= 0x10  # inside the weights: torch alone would load it without noticing
        path.write_bytes(bytes(flipped))
        checksum_path(path).write_bytes(checksum_path(good).read_bytes())
    elif kind == "foreign":
        torch.save({"weights": torch.zeros(3)}, path)  # a plain torch.save, not a Lightning checkpoint
    return path


BAD = {
    "missing": r"does not exist",
    "empty": r"is empty \(0 bytes\)",
    "truncated": r"is not a readable PyTorch checkpoint \(truncated or corrupted: .*central directory",
    "truncated_with_checksum": r"does not match its checksum in truncated_with_checksum\.ckpt\.sha256",
    "bit_flipped": r"does not match its checksum in bit_flipped\.ckpt\.sha256",
    "foreign": r"is not a Lightning checkpoint: it has no state_dict",
}


@pytest.mark.parametrize("kind", BAD)
def test_bad_checkpoint_fails_fast_naming_the_file_and_the_problem(good_checkpoint, tmp_path, kind):
    path = damaged(good_checkpoint, tmp_path, kind)
    with pytest.raises(CheckpointError) as error:
        train(compose_config("train", [*TINY, f"ckpt_path={path}"], tmp_path / "run"))
    message = str(error.value)
    assert str(path) in message and "\n" not in message
    assert re.search(BAD[kind], message), message
    assert not (tmp_path / "run" / "checkpoints").exists()  # nothing was trained


def test_checkpoint_of_another_model_shape_names_the_first_mismatched_weight(good_checkpoint, tmp_path):
    with pytest.raises(CheckpointError) as error:
        train(compose_config("train", [*TINY, f"ckpt_path={good_checkpoint}", "model.net.widths=[16,32,64]"], tmp_path))
    message = str(error.value)
    assert re.search(r"is for a different model: net\.\S+ has shape \(32, 1, 3, 3\) there but \(16, 1, 3, 3\)", message)
    assert str(good_checkpoint) in message and "\n" not in message
    assert not (tmp_path / "config.yaml").exists()  # refused before the run record is written


def test_a_resume_with_another_model_leaves_the_run_folders_config_as_it_was(tmp_path):
    train(compose_config("train", TINY, tmp_path))
    recorded = (tmp_path / "config.yaml").read_bytes()
    with pytest.raises(CheckpointError, match="is for a different model"):
        train(compose_config("train", [*TINY, "resume=true", "model.net.widths=[16,32,64]"], tmp_path))
    assert (tmp_path / "config.yaml").read_bytes() == recorded


@pytest.mark.slow
def test_cli_reports_a_bad_checkpoint_in_one_line_and_exits_1(good_checkpoint, tmp_path):
    path = damaged(good_checkpoint, tmp_path, "bit_flipped")
    for script in ("train.py", "eval.py"):
        done = run_script(script, *TINY, f"ckpt_path={path}", f"hydra.run.dir={tmp_path / script}")
        assert done.returncode == 1
        assert "Traceback" not in done.stderr
        assert done.stderr.strip().splitlines()[-1] == (
            f"Error: checkpoint {path} does not match its checksum in bit_flipped.ckpt.sha256: "
            "the file is truncated or corrupted"
        )


class RunsCode:
    """Unpickling this runs a shell command (`touch <marker>`), as a malicious checkpoint would."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_checkpoint_that_runs_code_when_unpickled_is_refused(good_checkpoint, tmp_path):
    marker = tmp_path / "code_ran"
    checkpoint = torch.load(good_checkpoint, weights_only=True)
    checkpoint["payload"] = RunsCode(marker)
    path = tmp_path / "evil.ckpt"
    torch.save(checkpoint, path)
    expected = r"evil\.ckpt refused: it holds GLOBAL posix\.system, which could run code when loaded"
    with pytest.raises(CheckpointError, match=expected):
        train(compose_config("train", [*TINY, f"ckpt_path={path}"], tmp_path / "train"))
    with pytest.raises(CheckpointError, match=expected):
        evaluate(compose_config("eval", [f"ckpt_path={path}", "trainer=cpu", "logger=none"], tmp_path / "eval"))
    assert not marker.exists()


def torch_load_calls(text: str) -> list[str]:
    """The text of every call of `torch.load`, up to its closing parenthesis."""
    calls = []
    for match in re.finditer(r"torch\.load\(", text):
        depth, end = 1, match.end()
        while depth:
            depth += {"(": 1, ")": -1}.get(text[end], 0)
            end += 1
        calls.append(text[match.start() : end])
    return calls


def test_nothing_in_the_project_loads_checkpoints_unsafely():
    sources = [p for p in ROOT.rglob("*.py") if not {".venv", "outputs", "multirun"} & set(p.parts)]
    assert len(sources) > 20
    for source in sources:
        text = source.read_text()
        # `save_checkpoint(path, weights_only=False)` saves the whole training state: a save, not a load
        loads = re.sub(r"save_checkpoint\([^)]*\)", "", text)
        assert "weights_only" + "=False" not in loads, source
        for call in torch_load_calls(text):
            assert "weights_only=True" in call, f"{source}: {call}"


def test_a_temporary_file_stranded_by_a_killed_save_is_removed_at_the_next_load(tmp_path):
    io, path = AtomicCheckpointIO(), tmp_path / "last.ckpt"
    io.save_checkpoint(fake_checkpoint(3), path)
    dead = os.fork()
    if dead == 0:
        os._exit(0)
    os.waitpid(dead, 0)  # a process id that no longer exists
    stranded = tmp_path / (temp_name(path).rsplit("-", 1)[0] + f"-{dead}")
    stranded.write_bytes(b"a complete save, never renamed")
    alive = tmp_path / temp_name(path)  # a save in progress, in a live process
    alive.write_bytes(b"being written")
    assert read_checkpoint(path)["global_step"] == 3
    assert temp_files(tmp_path) == [alive]
