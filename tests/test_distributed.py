"""DDP on CPU processes: on-device data shards, and multirun sweeps whose jobs each run DDP."""

import pytest
import yaml

from tests.conftest import run_script
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
