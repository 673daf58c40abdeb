"""Every use of a private Hydra name, in one place: no torch or Lightning import here, since Hydra imports the
launcher plugins (and so this module) when it starts, before a config error is reported."""

# Hydra's own launcher for local jobs, which runs each job in this process; the one-job-per-GPU launcher
# (src/machinery/launching/device_queue.py) keeps its set-up and hands the jobs to a worker per device. Hydra ships
# no public base class for launchers that run jobs locally.
from hydra._internal.core_plugins.basic_launcher import BasicLauncher

__all__ = ["BasicLauncher"]
