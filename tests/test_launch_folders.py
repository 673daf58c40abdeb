"""One run, one folder, one W&B run, however the ranks start: torchrun (rank 1 starting 1.5 s late), srun and a
SLURM array (a stand-in srun, tests/launch/), a PyTorchJob (two torchrun agents as two pods); kill and resume under
torchrun; a second run in a folder; command-line checkpoints checked before torch loads."""

import hashlib
import io
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch
import yaml

from src.errors import CheckpointError, RunError
from src.machinery.checkpoints import precheck as checkpoint_path
from src.machinery.checkpoints.files import read_checkpoint, save_checkpoint_file
from src.machinery.checkpoints.precheck import check_checkpoint_path
from src.machinery.config.schemas import ROOT
from src.machinery.runs import launch as launch_folder
from src.machinery.runs.launch import LaunchError, check_new_run_folder, launch_id
from tests.probes import read_ranks
from tests.test_resume import assert_equal_nested

real_digest = checkpoint_path.file_digest
LAUNCH = ROOT / "tests" / "launch"
DOCS = ROOT / "docs" / "launchers.md"
TINY = [
    "data=digits",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=3",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "callbacks.model_summary=null",
]
CPU_DDP = ["trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp"]
CPU_FOR_TRAINER_DDP = ["trainer.accelerator=cpu", "trainer.sync_batchnorm=false"]  # the docs' trainer=ddp on a CPU
DELAY_S = 1.5  # rank 1 starts this much later: always across a second boundary


def launch_env(**extra: str) -> dict[str, str]:
    """The environment a launched run gets here: one torch thread, W&B offline, this venv's python and the
    stand-in srun first on PATH."""
    path = f"{LAUNCH}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    inherited = {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}  # a W&B service of its own
    return {
        **inherited,
        "OMP_NUM_THREADS": "1",
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "HYDRA_FULL_ERROR": "0",
        "PATH": path,
        "SRUN_PYTHON": sys.executable,
        "PYTHONPATH": str(ROOT),
        **extra,
    }


def run(cmd: list[str], cwd: Path, timeout: float = 300, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=launch_env(**extra), capture_output=True, text=True, timeout=timeout)


def torchrun(*args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", *args]


def assert_one_run(root: Path, task: str = "train") -> Path:
    """Exactly one run folder under root/outputs/<task>, holding the config, the checkpoints and one W&B run whose
    id is the folder's `wandb_run_id`; returns it."""
    folders = sorted((root / "outputs" / task).iterdir())
    assert len(folders) == 1, folders
    folder = folders[0]
    assert (folder / "config.yaml").is_file()
    assert (folder / "checkpoints" / "last.ckpt").is_file()
    assert list((folder / "checkpoints").glob("epoch_*.ckpt"))
    wandb_id = (folder / "wandb_run_id").read_text().strip()
    runs = list(folder.glob("wandb/offline-run-*"))
    assert len(runs) == 1 and runs[0].name.endswith(f"-{wandb_id}"), runs
    return folder


def docs_block(first_line: str) -> str:
    """The fenced block of docs/launchers.md whose second line (after the shebang, if any) or first is
    `first_line`."""
    for block in re.findall(r"```\w*\n(.*?)```", DOCS.read_text(), flags=re.S):
        lines = block.splitlines()
        if first_line in lines[:2]:
            return block
    raise AssertionError(f"no block starting with {first_line!r} in {DOCS}")


# --- the folder's name, from each launcher's variables (no processes) ---


def test_launch_id_comes_from_what_every_rank_shares():
    slurm = {"SLURM_NTASKS": "2", "SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "train", "SLURM_PROCID": "1"}
    assert launch_id(slurm) == "slurm_4242"
    array = {**slurm, "SLURM_ARRAY_JOB_ID": "4240", "SLURM_ARRAY_TASK_ID": "2"}
    assert launch_id(array) == "slurm_4240_2"
    elastic = {"TORCHELASTIC_RUN_ID": "digits-ddp", "LOCAL_WORLD_SIZE": "1", "WORLD_SIZE": "2"}
    assert launch_id(elastic) == "torchrun_digits-ddp"
    assert launch_id({"TORCHELASTIC_RUN_ID": "../../etc"}) == "torchrun_.._.._etc"  # no path out of outputs/
    # an interactive SLURM shell is no launch: the date and time, as for a plain `python train.py`
    stamp = r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d(_\d+)?"  # _2, ... for a second run in the same second
    assert re.fullmatch(stamp, launch_id({**slurm, "SLURM_JOB_NAME": "bash"}))
    assert re.fullmatch(stamp, launch_id({}))


def test_single_node_torchrun_ranks_read_the_first_ranks_choice(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    launch = {"TORCHELASTIC_RUN_ID": "0b6c9f6e-61b4-4a44-9d1c-1e2a4c5d6e7f", "LOCAL_WORLD_SIZE": "2", "WORLD_SIZE": "2"}
    first = launch_id(launch)
    time.sleep(1.1)  # a later rank, in another second
    assert launch_id(launch) == first
    (stored,) = (tmp_path / f"dl-template-{os.getuid()}").glob("launch-*")
    stored.write_text("../../elsewhere\n")  # never a path from a shared temp folder
    with pytest.raises(LaunchError, match="does not hold a date and time"):
        launch_id(launch)
    with pytest.raises(LaunchError, match="--rdzv-id"):
        launch_id({"TORCHELASTIC_RUN_ID": "none", "LOCAL_WORLD_SIZE": "1", "WORLD_SIZE": "2"})


def test_runs_started_in_the_same_second_get_folders_of_their_own(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    monkeypatch.setattr(time, "strftime", lambda fmt: "2026-12-01_10-00-00")
    names = []
    for _ in range(3):  # three processes: each starts with no claim of its own
        monkeypatch.setattr(launch_folder, "_claimed", [])
        names.append(launch_id({}))
        assert launch_id({}) == names[-1]  # the same process asking again gets the same folder
    assert names == ["2026-12-01_10-00-00", "2026-12-01_10-00-00_2", "2026-12-01_10-00-00_3"]


def test_second_run_in_a_folder_needs_resume(tmp_path, monkeypatch):
    check_new_run_folder(tmp_path, resume=False)  # empty: a new run may start
    (tmp_path / "config.yaml").write_text("seed: 1\n")
    with pytest.raises(RunError, match="pass resume=true to continue it, or choose another folder"):
        check_new_run_folder(tmp_path, resume=False)
    check_new_run_folder(tmp_path, resume=True)
    monkeypatch.setenv("RANK", "1")  # rank 1 may come after rank 0 wrote: only rank 0 decides
    check_new_run_folder(tmp_path, resume=False)


# --- (1) torchrun, rank 1 starting 1.5 s late, ten times ---


@pytest.mark.slow
def test_torchrun_with_a_late_rank_writes_one_folder_ten_times(tmp_path):
    seconds, gaps = [], []
    for attempt in range(10):
        root = tmp_path / str(attempt)
        root.mkdir()
        start = time.monotonic()
        done = run(
            torchrun("--nproc-per-node=2", str(LAUNCH / "delayed_start.py"), *CPU_DDP, *TINY),
            cwd=root,
            START_DELAY_S=str(DELAY_S),
            START_LOG_DIR=str(root),
        )
        seconds.append(time.monotonic() - start)
        assert done.returncode == 0, done.stderr[-3000:]
        started = [float((root / f"rank{r}.start").read_text()) for r in (0, 1)]
        gaps.append(started[1] - started[0])
        assert gaps[-1] > 1.0  # rank 1 started in a later second: a clock-named folder would have split
        folder = assert_one_run(root)
        assert "Run directory: " + str(folder) in done.stdout + done.stderr
    print(
        f"10 torchrun launches, rank 1 started {min(gaps):.2f}-{max(gaps):.2f} s after rank 0: "
        f"10 single folders, {sum(seconds) / 10:.1f} s per launch"
    )


@pytest.mark.slow
def test_torchrun_sweep_with_a_late_rank_writes_one_sweep_folder(tmp_path):
    probe = ["+callbacks.probe._target_=tests.probes.RankProbe", "+callbacks.probe.out_dir=${paths.output_dir}"]
    sweep = ["-m", *CPU_DDP, *TINY, *probe, "logger=csv", "optimizer.lr=0.001,0.01"]
    done = run(torchrun("--nproc-per-node=2", str(LAUNCH / "delayed_start.py"), *sweep), tmp_path, START_DELAY_S="1.5")
    assert done.returncode == 0, done.stderr[-3000:]
    (folder,) = (tmp_path / "multirun").iterdir()  # one sweep folder, not one per rank
    for job, lr in (("0", 0.001), ("1", 0.01)):
        ranks = read_ranks(folder / job)
        assert sorted(ranks) == [0, 1] and [ranks[r]["lr"] for r in (0, 1)] == [lr, lr]
        assert (folder / job / "config.yaml").is_file() and (folder / job / "checkpoints" / "last.ckpt").is_file()


# --- (2) srun, a SLURM array task, a PyTorchJob ---


@pytest.mark.slow
def test_sbatch_script_with_srun_writes_one_folder_and_requeue_continues_it(repo_copy):
    script = repo_copy / "train.sbatch"
    script.write_text(docs_block("# train.sbatch"))
    slurm = {"SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "train", "SLURM_NTASKS_PER_NODE": "2", "MASTER_PORT": "29611"}
    done = run(["bash", str(script), *CPU_FOR_TRAINER_DDP, *TINY], cwd=repo_copy, START_DELAY_S=str(DELAY_S), **slurm)
    assert done.returncode == 0, done.stderr[-3000:]
    folder = assert_one_run(repo_copy)
    assert folder.name == "slurm_4242"
    assert yaml.safe_load((folder / "config.yaml").read_text())["hardware"]["devices"] == 2

    # The requeued job (same job id) runs the same script: it continues that folder and W&B run, one epoch more.
    wandb_id = (folder / "wandb_run_id").read_text().strip()
    requeued = run(["bash", str(script), *CPU_FOR_TRAINER_DDP, *TINY, "trainer.max_epochs=2"], cwd=repo_copy, **slurm)
    assert requeued.returncode == 0, requeued.stderr[-3000:]
    assert f"Restoring states from the checkpoint path at {folder / 'checkpoints' / 'last.ckpt'}" in (
        requeued.stdout + requeued.stderr
    )
    assert sorted((repo_copy / "outputs" / "train").iterdir()) == [folder]
    assert torch.load(folder / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 1
    runs = sorted(folder.glob("wandb/offline-run-*"))
    assert len(runs) == 2 and all(r.name.endswith(f"-{wandb_id}") for r in runs)  # one W&B run, written twice


@pytest.mark.slow
def test_slurm_array_task_writes_its_own_folder(repo_copy):
    script = repo_copy / "array.sbatch"
    script.write_text(docs_block("# array.sbatch"))
    array = {
        "SLURM_JOB_ID": "4243",
        "SLURM_ARRAY_JOB_ID": "4240",
        "SLURM_ARRAY_TASK_ID": "2",
        "SLURM_JOB_NAME": "lr-array",
        "SLURM_NTASKS_PER_NODE": "2",
        "MASTER_PORT": "29612",
    }
    done = run(["bash", str(script), *CPU_FOR_TRAINER_DDP, *TINY], cwd=repo_copy, START_DELAY_S=str(DELAY_S), **array)
    assert done.returncode == 0, done.stderr[-3000:]
    folder = assert_one_run(repo_copy)
    assert folder.name == "slurm_4240_2"
    config = yaml.safe_load((folder / "config.yaml").read_text())
    assert (config["optimizer"]["lr"], config["group"]) == (0.01, "array_4240")  # task 2's learning rate


@pytest.mark.slow
def test_srun_sweep_runs_each_job_on_every_task_in_one_sweep_folder(tmp_path):
    probe = ["+callbacks.probe._target_=tests.probes.RankProbe", "+callbacks.probe.out_dir=${paths.output_dir}"]
    sweep = ["-m", *CPU_DDP, *TINY, *probe, "logger=csv", "optimizer.lr=0.001,0.01"]
    slurm = {"SLURM_JOB_ID": "4244", "SLURM_JOB_NAME": "sweep", "SLURM_NTASKS_PER_NODE": "2", "MASTER_PORT": "29614"}
    cmd = ["srun", "--kill-on-bad-exit=1", sys.executable, str(ROOT / "train.py"), *sweep]
    done = run(cmd, tmp_path, START_DELAY_S=str(DELAY_S), **slurm)
    assert done.returncode == 0, done.stderr[-3000:]
    (folder,) = (tmp_path / "multirun").iterdir()
    assert folder.name == "slurm_4244"
    for job, lr in (("0", 0.001), ("1", 0.01)):
        ranks = read_ranks(folder / job)
        assert sorted(ranks) == [0, 1] and [ranks[r]["lr"] for r in (0, 1)] == [lr, lr]


@pytest.mark.slow
def test_pytorchjob_pods_write_one_folder_named_by_the_job(tmp_path):
    manifest = yaml.safe_load(docs_block("# pytorchjob.yaml: kubectl apply -f pytorchjob.yaml"))
    name = manifest["metadata"]["name"]
    (container,) = manifest["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"]["containers"]
    # Kubernetes expands $(JOB_NAME); the script is the repository's (workingDir /app there).
    command = [arg.replace("$(JOB_NAME)", name) for arg in container["command"]]
    assert command[0] == "torchrun"
    command = torchrun(*[str(ROOT / "train.py") if a == "train.py" else a for a in command[1:]])
    # What the training operator gives each pod's torchrun (PET_* are torchrun's arguments).
    pods = {"PET_NNODES": "2", "PET_RDZV_BACKEND": "c10d", "PET_RDZV_ENDPOINT": "127.0.0.1:29613"}
    env = launch_env(**pods)
    procs = []
    for pod in range(2):  # both pods see the same volume (cwd); the second starts late
        if pod:
            time.sleep(DELAY_S)
        procs.append(
            subprocess.Popen(
                [*command, *CPU_FOR_TRAINER_DDP, *TINY],
                cwd=tmp_path,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    outputs = [proc.communicate(timeout=300)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    folder = assert_one_run(tmp_path)
    assert folder.name == f"torchrun_{name}"


# --- (3) kill and resume under torchrun ---

RESUME_RUN = [
    *CPU_DDP,
    "data=digits",
    "logger=default",
    "trainer.deterministic=true",
    "trainer.max_epochs=2",
    "trainer.limit_train_batches=6",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "callbacks.model_summary=null",
    "callbacks.last_checkpoint.every_n_train_steps=2",
]


def torchrun_named(run_id: str) -> list[str]:
    """torchrun on one node with a run id of our choosing (plain single-node torchrun replaces it by a UUID)."""
    return torchrun(
        "--nproc-per-node=2", "--rdzv-backend=c10d", "--rdzv-endpoint=localhost:0", f"--rdzv-id={run_id}",
        str(ROOT / "train.py"),
    )  # fmt: skip


@pytest.mark.slow
def test_torchrun_killed_and_resumed_continues_its_folder_and_wandb_run_to_the_same_weights(tmp_path):
    reference = run([*torchrun_named("reference"), *RESUME_RUN], cwd=tmp_path)
    assert reference.returncode == 0, reference.stderr[-3000:]
    kill = ["+callbacks.kill._target_=tests.probes.KillAt", "+callbacks.kill.step=9"]  # each rank, at step 9
    killed = run([*torchrun_named("killed"), *RESUME_RUN, *kill], cwd=tmp_path)
    assert killed.returncode != 0
    folder = tmp_path / "outputs" / "train" / "torchrun_killed"
    last = folder / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == 8  # the save every 2 steps before the kill
    wandb_id = (folder / "wandb_run_id").read_text().strip()

    resumed = run([*torchrun_named("killed"), *RESUME_RUN, "resume=true"], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"Restoring states from the checkpoint path at {last}" in resumed.stdout + resumed.stderr
    assert sorted(p.name for p in (tmp_path / "outputs" / "train").iterdir()) == [
        "torchrun_killed",
        "torchrun_reference",
    ]
    runs = sorted(folder.glob("wandb/offline-run-*"))
    assert len(runs) == 2 and all(r.name.endswith(f"-{wandb_id}") for r in runs)  # the same W&B run, continued
    final = torch.load(last, weights_only=True)
    expected = torch.load(tmp_path / "outputs/train/torchrun_reference/checkpoints/last.ckpt", weights_only=True)
    assert final["global_step"] == expected["global_step"] == 12
    for key in ("state_dict", "optimizer_states", "lr_schedulers"):
        assert_equal_nested(final[key], expected[key], key)


# --- (4) a second run in a folder, without resume=true ---


@pytest.mark.slow
def test_second_run_in_an_existing_folder_stops_with_one_line(tmp_path):
    first = run(
        [sys.executable, str(ROOT / "train.py"), "trainer=cpu", "logger=csv", *TINY, f"hydra.run.dir={tmp_path}"], ROOT
    )
    assert first.returncode == 0, first.stderr[-3000:]
    config = (tmp_path / "config.yaml").read_bytes()
    metrics = (tmp_path / "csv" / "metrics.csv").read_bytes()
    records = {p.name: p.read_bytes() for p in (tmp_path / ".hydra").iterdir()}  # Hydra's: overrides.yaml, ...
    second = run(
        [
            sys.executable,
            "-c",
            CHECK_TORCH,
            "train.py",
            "trainer=cpu",
            "logger=csv",
            *TINY,
            "optimizer.lr=0.5",
            f"hydra.run.dir={tmp_path}",
        ],
        ROOT,
    )
    assert second.returncode == 1
    assert second.stderr.strip().splitlines() == [
        f"Error: {tmp_path} already holds a run (config.yaml, checkpoints): pass resume=true to continue it, "
        "or choose another folder (hydra.run.dir=...)",
        "torch imported: False",
    ]
    # nothing of the first run was touched
    assert (tmp_path / "config.yaml").read_bytes() == config
    assert (tmp_path / "csv" / "metrics.csv").read_bytes() == metrics
    assert {p.name: p.read_bytes() for p in (tmp_path / ".hydra").iterdir()} == records


@pytest.mark.slow
def test_sweep_again_into_a_sweep_folder_that_holds_runs_stops_before_hydra_writes(tmp_path):
    sweep = [sys.executable, str(ROOT / "train.py"), "-m", "trainer=cpu", "logger=csv", *TINY]
    first = run([*sweep, "optimizer.lr=0.001", f"hydra.sweep.dir={tmp_path}"], ROOT)
    assert first.returncode == 0, first.stderr[-3000:]
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    second = run([*sweep, "optimizer.lr=0.5", f"hydra.sweep.dir={tmp_path}"], ROOT)
    assert second.returncode == 1
    assert second.stderr.strip().splitlines() == [
        f"Error: {tmp_path / '0'} already holds a run (config.yaml, checkpoints): pass resume=true to continue it, "
        "or choose another folder (hydra.sweep.dir=...)"
    ]
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before  # multirun.yaml, 0/.hydra/
    # what the line says works: the same sweep again with resume=true continues its (finished) job
    third = run([*sweep, "optimizer.lr=0.001", f"hydra.sweep.dir={tmp_path}", "resume=true"], ROOT)
    assert third.returncode == 0, third.stderr[-3000:]
    last = tmp_path / "0" / "checkpoints" / "last.ckpt"
    assert f"Resuming from {last}" in third.stdout + third.stderr and last.read_bytes() == before[last]


@pytest.mark.slow
def test_second_torchrun_under_the_same_id_stops_every_rank(tmp_path):
    first = run([*torchrun_named("twice"), *CPU_DDP, *TINY], cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    folder = assert_one_run(tmp_path)
    wandb_id = (folder / "wandb_run_id").read_text()
    second = run([*torchrun_named("twice"), *CPU_DDP, *TINY], cwd=tmp_path, timeout=120)
    assert second.returncode != 0
    assert f"Error: {folder} already holds a run" in second.stderr
    assert assert_one_run(tmp_path) == folder and (folder / "wandb_run_id").read_text() == wandb_id


# --- (5) a checkpoint path on the command line, checked before torch loads ---

# Runs the script named first, then says whether torch was imported (as tests/test_faults.py does).
CHECK_TORCH = (
    "import atexit, runpy, sys; "
    "atexit.register(lambda: print('torch imported:', 'torch' in sys.modules, file=sys.stderr)); "
    "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
)


@pytest.mark.parametrize(
    "script,file,message",
    [
        ("eval.py", "missing.ckpt", "does not exist"),
        ("eval.py", "empty.ckpt", "is empty (0 bytes): its save was cut short"),
        ("train.py", "missing.ckpt", "does not exist"),
        ("train.py", "empty.ckpt", "is empty (0 bytes): its save was cut short"),
    ],
)
def test_command_line_checkpoint_is_checked_before_torch_is_imported(tmp_path, script, file, message):
    (tmp_path / "empty.ckpt").touch()
    ckpt = tmp_path / file
    start = time.monotonic()
    done = run(
        [sys.executable, "-c", CHECK_TORCH, script, f"ckpt_path={ckpt}", f"hydra.run.dir={tmp_path / 'run'}"], ROOT
    )
    seconds = time.monotonic() - start
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [f"Error: checkpoint {ckpt} {message}", "torch imported: False"]
    # Fast because torch never loads (asserted above); the time is reported, never asserted (machines differ 3x).
    print(f"{script} ckpt_path={file}: exit 1 after {seconds:.2f} s")


def test_a_checkpoint_is_hashed_at_every_check_no_cache_a_rewrite_can_fool(tmp_path, monkeypatch):
    ckpt = tmp_path / "last.ckpt"
    ckpt.write_bytes(b"weights")
    (tmp_path / "last.ckpt.sha256").write_text(hashlib.sha256(b"weights").hexdigest() + "\n")
    hashed = []
    monkeypatch.setattr(checkpoint_path, "file_digest", lambda path: hashed.append(path) or real_digest(path))
    check_checkpoint_path(ckpt)  # the command line's check, before torch
    check_checkpoint_path(ckpt)
    assert hashed == [ckpt, ckpt]
    mtime = ckpt.stat().st_mtime_ns
    ckpt.write_bytes(b"damaged")  # same size, mtime restored: still hashed, and refused
    os.utime(ckpt, ns=(mtime, mtime))
    with pytest.raises(CheckpointError, match="does not match its checksum"):
        check_checkpoint_path(ckpt)


def test_a_verified_checkpoint_rewritten_with_its_mtime_restored_is_refused_not_loaded(tmp_path):
    ckpt = tmp_path / "last.ckpt"
    save_checkpoint_file(ckpt, checkpoint_bytes(torch.zeros(4)))
    assert torch.equal(read_checkpoint(ckpt)["state_dict"]["w"], torch.zeros(4))
    info = ckpt.stat()
    rewritten = checkpoint_bytes(torch.ones(4))
    assert len(rewritten) == info.st_size  # the same size, other content
    ckpt.write_bytes(rewritten)
    os.utime(ckpt, ns=(info.st_atime_ns, info.st_mtime_ns))
    with pytest.raises(CheckpointError, match=r"last\.ckpt does not match its checksum in last\.ckpt\.sha256"):
        read_checkpoint(ckpt)


def test_a_checkpoint_is_loaded_from_the_bytes_that_were_hashed(tmp_path, monkeypatch):
    ckpt = tmp_path / "last.ckpt"
    save_checkpoint_file(ckpt, checkpoint_bytes(torch.zeros(4)))
    real_check = checkpoint_path.check_digest

    def check_then_rewrite(path, digest):  # the file changes right after its bytes were read and hashed
        real_check(path, digest)
        ckpt.write_bytes(checkpoint_bytes(torch.ones(4)))

    monkeypatch.setattr(checkpoint_path, "check_digest", check_then_rewrite)
    assert torch.equal(read_checkpoint(ckpt)["state_dict"]["w"], torch.zeros(4))  # what was verified, not the rewrite


def checkpoint_bytes(weights: torch.Tensor) -> bytes:
    buffer = io.BytesIO()
    torch.save({"state_dict": {"w": weights}}, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("kind", ["oversized", "fifo"])
def test_a_huge_or_non_regular_checksum_file_is_refused_in_one_line_unread(tmp_path, kind):
    ckpt = tmp_path / "last.ckpt"
    ckpt.write_bytes(b"weights")
    sums = tmp_path / "last.ckpt.sha256"
    if kind == "oversized":
        with open(sums, "wb") as f:
            f.truncate(100 << 20)  # sparse: 100 MB long, no disk used
        message = rf"checksum file {sums} is {100 << 20} bytes, over the 1024-byte bound"
    else:
        os.mkfifo(sums)  # reading it would block for ever
        message = rf"checksum file {sums} is not a regular file"
    with pytest.raises(CheckpointError, match=message):
        check_checkpoint_path(ckpt)
    with pytest.raises(CheckpointError, match=message):
        read_checkpoint(ckpt)


def test_checksum_mismatch_is_caught_without_torch(tmp_path):
    ckpt = tmp_path / "last.ckpt"
    ckpt.write_bytes(b"weights")
    (tmp_path / "last.ckpt.sha256").write_text("0" * 64 + "\n")
    with pytest.raises(CheckpointError, match=r"does not match its checksum in last\.ckpt\.sha256"):
        check_checkpoint_path(ckpt)
    (tmp_path / "last.ckpt.sha256").write_text("0" * 64 + "\n" + hashlib.sha256(b"weights").hexdigest() + "\n")
    check_checkpoint_path(ckpt)  # any listed digest is accepted (a save in progress lists two)
