"""DDP on two CPU processes: when one rank raises, is killed or hangs, every rank exits non-zero within the
collective timeout (`trainer.strategy.timeout_s`) plus 30 seconds; a SIGTERM to rank 0 stops both at one step."""

import json
import os
import subprocess
import sys
import time

import pytest
import torch

from src.machinery.config.schemas import ROOT

pytestmark = [
    pytest.mark.slow,  # about 80 s in all: `make test-all` (CI) runs them
    pytest.mark.skipif(sys.platform != "linux", reason="tests/reaper.py collects orphaned ranks with Linux's prctl"),
]

TIMEOUT_S = 20
DDP = [
    "trainer=ddp",
    "trainer.accelerator=cpu",
    "trainer.devices=2",
    "trainer.sync_batchnorm=false",  # SyncBatchNorm needs GPUs
    f"trainer.strategy.timeout_s={TIMEOUT_S}",
    "logger=none",
    "callbacks.model_summary=null",
    "trainer.max_epochs=2",
]

FAIL = {"_target_": "tests.probes.FailRank", "step": 3, "out_dir": "${paths.output_dir}"}


@pytest.mark.parametrize("rank,action", [(1, "raise"), (1, "kill"), (0, "kill"), (1, "hang")], ids=lambda v: str(v))
def test_every_rank_exits_non_zero_within_the_timeout_when_one_fails(tmp_path, rank, action):
    fail = [f"+callbacks.fail.{key}={value}" for key, value in FAIL.items()]
    fail += [f"+callbacks.fail.rank={rank}", f"+callbacks.fail.action={action}", f"hydra.run.dir={tmp_path}"]
    command = [sys.executable, "-m", "tests.reaper", sys.executable, "train.py", *DDP, *fail]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "REAPER_LOG": str(tmp_path / "output.log")}
    start = time.time()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT_S + 120)
    assert done.returncode == 0, done.stderr
    exits = {int(pid): record for pid, record in json.loads(done.stdout).items()}
    for r in (0, 1):
        pid = int((tmp_path / f"rank{r}.pid").read_text())
        if pid in exits:  # rank 0, or rank 1 once orphaned: the reaper saw it exit
            code, seconds = exits[pid]["code"], exits[pid]["seconds"]
        else:  # rank 1 reaped by its parent, rank 0, which wrote down what it saw
            record = json.loads((tmp_path / f"rank{r}.exit").read_text())
            code, seconds = record["code"], round(record["time"] - start, 1)
        print(f"rank {r} ({action} on rank {rank}): exit code {code} after {seconds} s")
        assert code != 0
        assert seconds <= TIMEOUT_S + 30  # from the start of the run, start-up included


def test_sigterm_to_rank_0_stops_every_rank_at_the_same_step_with_a_checkpoint(tmp_path):
    term = ["+callbacks.term._target_=tests.probes.SignalAt", "+callbacks.term.step=3", "+callbacks.term.rank=0"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}
    command = [sys.executable, "train.py", *DDP, *term, f"hydra.run.dir={tmp_path}"]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT_S + 120)
    assert done.returncode == 143, done.stderr[-3000:]
    last = tmp_path / "checkpoints" / "last.ckpt"
    message = f"Error: stopped by signal 15 after saving {last}; resume with resume=true"
    assert done.stderr.count(message) == 2  # rank 0 and rank 1 (which rank 0 passed the signal to)
    # The ranks agree every trainer.log_every_n_steps (10) steps and at each epoch end (9 steps a rank here), not
    # every step: they stop together at the first such point after the signal (a save is collective: ranks that
    # disagreed would hang until the timeout instead of exiting 143).
    step = torch.load(last, map_location="cpu", weights_only=True)["global_step"]
    print(f"SIGTERM at step 3: both ranks stopped at step {step}")
    assert 3 < step <= 3 + 10
