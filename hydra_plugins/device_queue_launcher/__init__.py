"""Registers src.machinery.launching.device_queue's launcher with Hydra, which takes launchers from `hydra_plugins`
only."""

from src.machinery.launching.device_queue import DeviceQueueLauncher as _DeviceQueueLauncher


class DeviceQueueLauncher(_DeviceQueueLauncher):
    """hydra/launcher=gpus (conf/hydra/launcher/gpus.yaml)."""
