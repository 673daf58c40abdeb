"""hydra/launcher=gpus: a sweep's jobs run side by side, one per declared GPU, each seeing only its own device
(CUDA_VISIBLE_DEVICES), the others queued; checked on the CPU by what each job saw and when it ran."""

import itertools
import json
import textwrap

import pytest
import yaml

from src.machinery.config.schemas import ROOT
from src.machinery.launching.device_queue import DeviceQueueLauncher, _visible_gpus
from tests.conftest import run_script

# A task that records its device and when it ran, composed from conf/train.yaml like train.py's.
RECORDING_APP = """
import json, os, time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig

from src.machinery.config.schemas import register_schemas

register_schemas()


@hydra.main(version_base="1.3", config_path="{conf}", config_name="train")
def main(cfg):
    start = time.time()
    time.sleep(1.5)
    record = dict(devices=os.environ.get("CUDA_VISIBLE_DEVICES"), pid=os.getpid(), start=start, end=time.time(),
                  lr=cfg.optimizer.lr, folder=HydraConfig.get().runtime.output_dir)
    Path(cfg.paths.output_dir, "job.json").write_text(json.dumps(record))
    return cfg.optimizer.lr


if __name__ == "__main__":
    main()
"""


def test_the_gpus_are_those_named_else_those_this_process_sees(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr("torch.cuda.device_count", lambda: 0)
    assert _visible_gpus() == []
    monkeypatch.setattr("torch.cuda.device_count", lambda: 2)
    assert _visible_gpus() == ["0", "1"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert _visible_gpus() == ["2", "3"]  # this process's GPUs, by their real numbers
    assert DeviceQueueLauncher([5, 7]).devices == ["5", "7"]


@pytest.mark.slow
def test_no_gpu_and_none_named_is_one_clear_line(tmp_path):
    overrides = ["hydra/launcher=gpus", "trainer=cpu", "logger=none", f"hydra.sweep.dir={tmp_path}"]
    done = run_script("train.py", "-m", *overrides, env={"CUDA_VISIBLE_DEVICES": ""})
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1] == (
        "Error: hydra/launcher=gpus found no GPU: name them, e.g. hydra.launcher.devices=[0,1]"
    )


@pytest.mark.slow
def test_five_jobs_on_two_gpus_run_two_at_a_time_one_per_gpu(tmp_path):
    app = tmp_path / "app.py"
    app.write_text(textwrap.dedent(RECORDING_APP).replace("{conf}", str(ROOT / "conf")))
    lrs = ["0.001", "0.002", "0.003", "0.004", "0.005"]
    done = run_script(
        "app.py", "-m", "hydra/launcher=gpus", "hydra.launcher.devices=[4,6]", f"optimizer.lr={','.join(lrs)}",
        f"hydra.sweep.dir={tmp_path / 'sweep'}", repo=tmp_path, env={"PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    jobs = [json.loads((tmp_path / "sweep" / str(n) / "job.json").read_text()) for n in range(5)]
    assert [str(j["lr"]) for j in jobs] == lrs  # every job, each in its own folder of the one sweep
    assert {j["devices"] for j in jobs} == {"4", "6"}  # each saw exactly one of the declared GPUs
    assert len({j["pid"] for j in jobs}) == 2  # one worker process per GPU, reused by the queued jobs
    for a, b in itertools.combinations(jobs, 2):
        overlap = a["start"] < b["end"] and b["start"] < a["end"]
        assert not (overlap and a["devices"] == b["devices"])  # a GPU runs one job at a time
    starts = sorted(j["start"] for j in jobs)
    assert all(sum(j["start"] <= t < j["end"] for j in jobs) <= 2 for t in starts)  # never more than two at once
    assert any(a["start"] < b["end"] and b["start"] < a["end"] for a, b in itertools.combinations(jobs, 2))


@pytest.mark.slow
def test_train_jobs_record_their_gpu_and_share_the_sweep_group(tmp_path):
    done = run_script(
        "train.py", "-m", "hydra/launcher=gpus", "hydra.launcher.devices=[0,1]", "optimizer.lr=0.001,0.01",
        "trainer=cpu", "trainer.max_epochs=1", "trainer.limit_train_batches=2", "logger=csv",
        f"hydra.sweep.dir={tmp_path}", env={"CUDA_VISIBLE_DEVICES": ""},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    records = [yaml.safe_load((tmp_path / str(n) / "config.yaml").read_text()) for n in range(2)]
    assert {r["launch"]["cuda_visible_devices"] for r in records} == {"0", "1"}
    assert {r["group"] for r in records} == {tmp_path.name}  # one sweep, one group
    assert [r["optimizer"]["lr"] for r in records] == [0.001, 0.01]
