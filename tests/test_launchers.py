"""Cluster launchers: the SLURM config reaches sbatch with the right shape; submitit runs sweeps locally."""

import os
import stat

import pytest
import submitit
from hydra.utils import instantiate

from tests.conftest import run_script


class Submitted(Exception):
    """Raised in place of a real submission, carrying the executor that would have submitted."""


def test_slurm_launcher_asks_for_nodes_and_one_task_per_device(make_cfg, tmp_path, monkeypatch):
    cfg = make_cfg("hydra/launcher=slurm", "trainer=ddp", "trainer.num_nodes=2", "trainer.devices=4", keep_hydra=True)
    launcher_cfg = cfg.hydra.launcher
    assert launcher_cfg._target_.endswith("SlurmLauncher")
    assert (launcher_cfg.nodes, launcher_cfg.tasks_per_node, launcher_cfg.gpus_per_node) == (2, 4, 4)

    # No cluster here: a stand-in `srun` lets submitit build its executor, and the submission is
    # intercepted, so the sbatch script it would send can be read.
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "srun").write_text("#!/bin/sh\nexit 1\n")
    (fake_bin / "srun").chmod(stat.S_IRWXU)
    monkeypatch.setenv("PATH", f"{fake_bin}{os.pathsep}{os.environ['PATH']}")

    def intercept(executor, *args, **kwargs):
        raise Submitted(executor)

    monkeypatch.setattr(submitit.AutoExecutor, "map_array", intercept)
    launcher = instantiate(launcher_cfg)
    launcher.setup(hydra_context=None, task_function=None, config=cfg)
    with pytest.raises(Submitted) as submitted:
        launcher.launch([["optimizer.lr=0.1"], ["optimizer.lr=0.2"]], initial_job_idx=0)
    sbatch = submitted.value.args[0]._executor._make_submission_file_text("python -u job.py", "uid")
    for line in ("#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=4", "#SBATCH --gpus-per-node=4"):
        assert line in sbatch, sbatch


@pytest.mark.slow
def test_submitit_local_runs_a_two_job_sweep(tmp_path):
    done = run_script(
        "train.py", "-m", "hydra/launcher=submitit_local", "trainer=cpu", "logger=csv", "trainer.max_epochs=1",
        "optimizer.lr=0.001,0.01", f"hydra.sweep.dir={tmp_path}",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    for job in ("0", "1"):
        assert (tmp_path / job / "checkpoints" / "last.ckpt").exists()
        assert "test/acc" in (tmp_path / job / "csv" / "metrics.csv").read_text()
