"""Loading a checkpoint removes only the temporary files its own interrupted saves left, on this host."""

import os
from pathlib import Path

import torch

from src.machinery.checkpoints.files import AtomicCheckpointIO, read_checkpoint, remove_stranded_temp_files, temp_name


def dead_pid() -> int:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


def test_only_this_checkpoints_stranded_temp_files_from_this_host_are_removed(tmp_path):
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    path = downloads / "model[1].ckpt"  # glob characters in the name match nothing else
    AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.ones(2)}}, path)
    host_prefix = temp_name(path).rsplit("-", 1)[0]
    dead = dead_pid()
    stranded = downloads / f"{host_prefix}-{dead}"
    stranded.write_bytes(b"a complete save, never renamed")
    victim_target = tmp_path / "elsewhere.txt"
    victim_target.write_text("keep")
    survivors = {
        f".model1.ckpt.tmp-{host_prefix.rsplit('-', 1)[1]}-{dead}": "file",  # another checkpoint ([1] as a glob)
        f".notes.txt.tmp-{dead}": "file",  # unrelated, old shape
        f".model[1].ckpt.tmp-{dead}": "file",  # no host: could be another machine's save in progress
        f".model[1].ckpt.tmp-0badc0de-{dead}": "file",  # another host's
        ".model[1].ckpt.tmp-abc": "file",  # not a process id
        f"{host_prefix}-0": "file",  # pid 0: no process
        f"{host_prefix}-9999999999": "file",  # beyond pid_max
        f"{host_prefix}-{'9' * 200}": "file",  # a huge suffix (int() of it would overflow os.kill)
        f"{host_prefix}-{os.getpid()}": "file",  # a live process: a save in progress
        f"{host_prefix}-{dead + 1}x": "file",
        f"{host_prefix}-{dead_pid()}0": "dir",  # a folder of that shape is never removed
    }
    link = downloads / f"{host_prefix}-{dead_pid()}"
    link.symlink_to(victim_target)  # a link of that shape: neither it nor its target is touched
    for name, kind in survivors.items():
        if kind == "dir":
            (downloads / name).mkdir()
            (downloads / name / "inside").write_text("keep")
        else:
            (downloads / name).write_text("keep")

    assert torch.equal(read_checkpoint(path)["state_dict"]["w"], torch.ones(2))

    assert not stranded.exists()
    assert all((downloads / name).exists() for name in survivors)
    assert link.is_symlink() and victim_target.read_text() == "keep"
    assert remove_stranded_temp_files(downloads / "absent.ckpt") == []
    assert remove_stranded_temp_files(tmp_path / "no-such-folder" / "x.ckpt") == []


def test_a_save_leaves_no_temporary_file_and_replaces_its_own(tmp_path: Path):
    io, path = AtomicCheckpointIO(), tmp_path / "last.ckpt"
    (tmp_path / temp_name(path)).write_bytes(b"left by an earlier process with this id")
    io.save_checkpoint({"state_dict": {}}, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt", "last.ckpt.sha256"]


def test_loading_removes_a_stranded_temporary_file_of_the_checksum_too(tmp_path: Path):
    """The checksum file is saved the same way: a kill in the instant between naming and renaming strands its copy."""
    io, path = AtomicCheckpointIO(), tmp_path / "last.ckpt"
    io.save_checkpoint({"state_dict": {}}, path)
    sums = path.with_name("last.ckpt.sha256")
    stranded = tmp_path / f"{temp_name(sums).rsplit('-', 1)[0]}-{dead_pid()}"
    stranded.write_text("0" * 64 + "\n")
    read_checkpoint(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt", "last.ckpt.sha256"]
