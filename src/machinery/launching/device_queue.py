"""A Hydra launcher for sweeps on one machine with several GPUs: one job per device at a time, each job seeing only
its own device (`CUDA_VISIBLE_DEVICES`), the other jobs queued until a device is free."""

import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, run_job, setup_globals
from omegaconf import open_dict

from src.errors import ConfigValueError, exit_on_run_error
from src.machinery.shims.hydra import BasicLauncher


class DeviceQueueLauncher(BasicLauncher):
    """Runs each job in a worker process of its own device; `devices` null: every GPU this process sees."""

    def __init__(self, devices: Sequence[int | str] | None = None) -> None:
        super().__init__()
        self.devices = None if devices is None else [str(d) for d in devices]

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        """Run the jobs, at most one per device at a time; the results in the jobs' order."""
        import cloudpickle  # here: Hydra imports every launcher at start-up, and cloudpickle comes with submitit

        with exit_on_run_error():  # here, not in __init__: Hydra wraps a constructor's error in its own message
            devices = self.devices if self.devices is not None else _visible_gpus()
            if not devices:
                raise ConfigValueError("hydra/launcher=gpus found no GPU: name them, e.g. hydra.launcher.devices=[0,1]")

        jobs = []
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            # composed here, so that every job shares this process's sweep folder (its date and time)
            config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
            with open_dict(config):
                config.hydra.job.id = config.hydra.job.num = idx
                config.hydra.sweep.dir = str(self.config.hydra.sweep.dir)
            jobs.append(cloudpickle.dumps((self.hydra_context, self.task_function, config, Singleton.get_state())))
        context = multiprocessing.get_context("spawn")  # a fresh process: nothing of CUDA inherited
        free = context.Queue()
        for device in devices:
            free.put(device)
        with ProcessPoolExecutor(len(devices), context, initializer=_claim_device, initargs=(free,)) as pool:
            return [cloudpickle.loads(done) for done in pool.map(_run_job, jobs)]


def _visible_gpus() -> list[str]:
    """The GPUs this process sees: CUDA_VISIBLE_DEVICES's list, else every device torch counts."""
    if visible := os.environ.get("CUDA_VISIBLE_DEVICES"):
        return visible.split(",")
    import torch  # here: composing a config needs no torch

    return [str(index) for index in range(torch.cuda.device_count())]


def _claim_device(free: multiprocessing.Queue) -> None:
    os.environ["CUDA_VISIBLE_DEVICES"] = free.get()  # this worker's device, for every job it runs


def _run_job(job: bytes) -> bytes:
    import cloudpickle

    hydra_context, task_function, config, singletons = cloudpickle.loads(job)
    setup_globals()
    Singleton.set_state(singletons)
    done = run_job(task_function, config, "hydra.sweep.dir", "hydra.sweep.subdir", hydra_context)
    return cloudpickle.dumps(done)  # (pickle refuses the config classes Hydra's plugin scan loaded twice)
