"""Let each job of a Hydra multirun use Lightning's re-launching `ddp` strategy safely."""

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import read_write

from src.machinery.runs.launch import external_ranks

# What Lightning's launcher leaves in os.environ after starting a job's ranks.
_LAUNCH_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")


@contextmanager
def isolated_job() -> Iterator[None]:
    """Run one multirun job as if launched alone: `ddp` starts ranks 1..N-1 by re-running `sys.argv`, which in a sweep
    restarts the sweep, so argv and run dir become this job's own; launcher state is cleared for the next job."""
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        yield
        return
    hydra_cfg = HydraConfig.get()
    # Ranks started by torchrun or srun run every job together: their process group serves the next job too
    # (re-creating it on torchrun's agent store hangs); ranks this job started leave with it.
    launched_outside = external_ranks()
    saved_argv, saved_run_dir = sys.argv, hydra_cfg.run.dir
    saved_env = {key: os.environ.get(key) for key in _LAUNCH_ENV}
    sys.argv = [sys.argv[0], *hydra_cfg.overrides.task]
    with read_write(hydra_cfg):
        hydra_cfg.run.dir = hydra_cfg.runtime.output_dir
    try:
        yield
    finally:
        if not launched_outside and torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        sys.argv = saved_argv
        with read_write(hydra_cfg):
            hydra_cfg.run.dir = saved_run_dir
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
