"""Experiment tracking with W&B: online with credentials, offline (no prompt, no network) without.

Everything that touches the `wandb` package directly lives here.
"""

import logging
import netrc
import os
import secrets
import string
from pathlib import Path
from urllib.parse import urlparse

from lightning.pytorch.loggers import Logger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only

log = logging.getLogger(__name__)

MODES = ("auto", "online", "offline", "disabled")


def has_wandb_credentials() -> bool:
    """True when an API key is in the environment or in ~/.netrc (where `wandb login` puts it)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        return netrc.netrc().authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def resolve_mode(mode: str) -> str:
    """`auto` becomes WANDB_MODE if set, else online with credentials and offline without."""
    if mode not in MODES:
        raise ValueError(f"logger.wandb.mode={mode!r} is not one of {list(MODES)}")
    if mode != "auto":
        return mode
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    return "online" if has_wandb_credentials() else "offline"


RUN_ID_FILE = "wandb_run_id"


def run_id(save_dir: str | Path) -> str:
    """The W&B run id kept in the run folder (`wandb_run_id`), created on first use: a resumed run logs to the
    same W&B run."""
    path = Path(save_dir) / RUN_ID_FILE
    if path.is_file():
        return path.read_text().strip()
    new_id = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))
    _write_run_id(path, new_id)
    return new_id


@rank_zero_only
def _write_run_id(path: Path, value: str) -> None:
    path.write_text(value + "\n")


def wandb_logger(mode: str = "auto", save_dir: str = ".", **kwargs) -> WandbLogger:
    """A WandbLogger whose run is online or offline as `resolve_mode` decides; kwargs go to `wandb.init`.

    The run id is the run folder's (see `run_id`), with `resume="allow"`: `resume=true` continues the same W&B run.
    """
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    kwargs.setdefault("id", run_id(save_dir))
    kwargs.setdefault("resume", "allow")
    return WandbLogger(save_dir=save_dir, mode=resolve_mode(mode), **kwargs)


@rank_zero_only
def finish_tracking(loggers: list[Logger]) -> None:
    """Close this job's W&B run (so the next job of a multirun starts its own) and say where it is."""
    for logger in loggers:
        if not isinstance(logger, WandbLogger) or logger._experiment is None:
            continue
        run = logger.experiment
        run_dir = Path(run.dir).parent  # .../wandb/<offline-run-...>/files -> the run's folder
        offline = run.settings.mode == "offline"
        run.finish()
        if offline:
            log.info("W&B run saved offline in %s; upload it with: wandb sync %s", run_dir, run_dir)
