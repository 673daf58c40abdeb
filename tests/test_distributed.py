"""DDP on CPU processes: on-device data shards, and multirun sweeps whose jobs each run DDP."""

import subprocess
import sys

import pytest
import yaml

from tests.conftest import ROOT, run_script
from tests.probes import read_ranks

pytestmark = pytest.mark.slow  # end-to-end runs: `make test-all` (CI) runs them

DDP = ["trainer=cpu", "trainer.devices=2", "trainer.strategy=ddp", "logger=csv", "callbacks.model_summary=null"]
SYNTHETIC = ["data=synthetic", "data.num_train=256", "data.num_val=64", "data.num_test=64", "data.image_size=8"]
PROBE = ["+callbacks.probe._target_=tests.probes.RankProbe", "+callbacks.probe.out_dir=${paths.output_dir}"]


def test_on_device_data_gives_each_rank_its_own_shard(tmp_path):
    done = run_script(
        "train.py", *DDP, *SYNTHETIC, *PROBE, "data.on_device=true", "data.batch_size=32",
        "trainer.max_epochs=2", f"hydra.run.dir={tmp_path}",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = read_ranks(tmp_path)
    assert sorted(ranks) == [0, 1] and all(r["world_size"] == 2 for r in ranks.values())
    shards = [set(ranks[r]["fingerprints"]) for r in (0, 1)]
    assert len(shards[0]) == len(shards[1]) == 128  # half of the 256 training samples each
    assert not shards[0] & shards[1]  # and no sample on both ranks


def test_multirun_of_ddp_jobs_keeps_each_jobs_hyperparameters_on_every_rank(tmp_path):
    # The default sweep folder, multirun/<date>_<time>, under tmp_path: a rank that re-ran the sweep
    # on its own would start later and write a second, differently timed folder.
    done = run_script(
        "train.py", "-m", *DDP, *SYNTHETIC, *PROBE, "trainer.max_epochs=1", "optimizer.lr=0.001,0.02", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
    sweeps = list((tmp_path / "multirun").iterdir())
    assert len(sweeps) == 1, sweeps
    jobs = sorted(p for p in sweeps[0].iterdir() if p.is_dir() and p.name.isdigit())
    assert [p.name for p in jobs] == ["0", "1"]  # two jobs, not a sweep started again by each rank
    for job, lr in zip(jobs, (0.001, 0.02), strict=True):
        ranks = read_ranks(job)
        assert sorted(ranks) == [0, 1]
        assert [ranks[r]["lr"] for r in (0, 1)] == [lr, lr]
        assert yaml.safe_load((job / "config.yaml").read_text())["optimizer"]["lr"] == lr
        assert (job / "checkpoints" / "last.ckpt").exists()


# A process with a Gloo group and a Trainer; a handler registered first runs last at exit and says what it finds.
EXIT_PROBE = """
import atexit, sys
import torch.distributed as dist
atexit.register(lambda: print("process group at exit:", dist.is_initialized(), flush=True))
dist.init_process_group("gloo", init_method=f"file://{sys.argv[1]}", rank=0, world_size=1)
from src.machinery.config.schemas import compose_config
from src.machinery.config.instantiate import instantiate_trainer
instantiate_trainer(compose_config("train", ["trainer=cpu"], sys.argv[2]).trainer, logger=False)
"""


def test_the_process_group_is_destroyed_before_the_interpreter_shuts_down(tmp_path):
    """Lightning destroys only an NCCL group at exit; a Gloo group left to interpreter shutdown can abort a rank that
    finished ("terminate called without an active exception", pytorch/pytorch#190489)."""
    args = [str(tmp_path / "store"), str(tmp_path / "run")]
    done = subprocess.run([sys.executable, "-c", EXIT_PROBE, *args], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "process group at exit: False"
