"""Experiment tracking with W&B (online with credentials, offline without: no prompt, no network) and MLflow; all
direct use of the `wandb` and `mlflow` packages lives here (docs/workflow.md)."""

import logging
import netrc
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from lightning.pytorch.loggers import Logger, MLFlowLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only

from src.machinery.config.schemas import ROOT
from src.machinery.runs.folder import read_text, write_text
from src.machinery.shims.lightning import experiment_started
from src.machinery.tracking.git import head_commit, remote_url
from src.machinery.tracking.secrets import argv_redacted, redact, secret_values

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
RUN_ID = re.compile(r"[a-z0-9]{8}")  # what W&B's generate_id makes: 8 base-36 digits


def run_id(save_dir: str | Path) -> str:
    """The W&B run id kept in the run folder (`wandb_run_id`, made on first use), so a resumed run logs to the same W&B
    run; the file is untrusted: anything but a regular file holding a W&B-format id gets a new id, with a warning."""
    path = Path(save_dir) / RUN_ID_FILE
    kept = read_text(path, max_bytes=64)
    if kept is not None and RUN_ID.fullmatch(kept.strip()):
        return kept.strip()
    from wandb.sdk.lib.runid import generate_id  # here: runs that log elsewhere need no wandb installed

    new_id = os.environ.get("WANDB_RUN_ID") or generate_id()  # a sweep agent's run gets its id from the agent
    if kept is not None or path.is_symlink() or path.exists():
        log.warning(
            "%s is not a W&B run id (8 lowercase letters and digits in a plain file): new W&B run %s", path, new_id
        )
        if path.is_symlink():
            _replace_link(path)
    _write_run_id(path, new_id)
    return new_id


@rank_zero_only
def _replace_link(path: Path) -> None:
    path.unlink()  # the link itself, not what it points to


@rank_zero_only
def _write_run_id(path: Path, value: str) -> None:
    write_text(path, value + "\n")


def wandb_logger(mode: str = "auto", save_dir: str = ".", name: str | None = None, **kwargs) -> WandbLogger:
    """A WandbLogger, online or offline as `resolve_mode` decides (kwargs go to `wandb.init`), named `<name>-<run id>`
    (readable, unique in a group); the id is the folder's, with `resume="allow"`, so `resume=true` continues the run."""
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    wandb_id = kwargs.pop("id", None) or run_id(save_dir)
    kwargs.setdefault("resume", "allow")
    name = f"{name}-{wandb_id}" if name else None
    name, labels = redact_labels(name, {k: kwargs[k] for k in LABELS if kwargs.get(k) is not None})
    kwargs.update(labels)
    kwargs["settings"] = {**git_settings(ROOT), **(kwargs.get("settings") or {})}  # a config's own settings win
    return RedactingWandbLogger(save_dir=save_dir, mode=resolve_mode(mode), name=name, id=wandb_id, **kwargs)


def git_settings(root: Path) -> dict[str, Any]:
    """W&B's own git capture off, the commit and remote handed to it instead: left on, W&B writes and uploads its own
    `diff.patch` of the uncommitted changes, unredacted, and the remote URL with any credentials in it. The run page
    still shows the commit; the changes go up as the run's `git.diff`, redacted (`track_run`)."""
    settings: dict[str, Any] = {"disable_git": True}
    if commit := head_commit(root):  # the commit alone: the tree's state is the run record's (git_state), not W&B's
        settings["git_commit"] = commit
    if remote := remote_url(root):
        settings["git_remote_url"] = remote
    return settings


LABELS = ("group", "tags", "notes", "job_type")  # what describes a W&B run beside its name (not project, entity)


def redact_labels(name: str | None, labels: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """A run's name and labels (W&B's `LABELS`, or MLflow's tags) with credentials redacted: they come from the
    config (`run_name=...`, `tags=[...]`), where a token may be put by mistake."""
    secrets = secret_values()

    def clean(value: Any) -> Any:
        return redact(list(value) if isinstance(value, Sequence) and not isinstance(value, str) else value, secrets)

    return (None if name is None else clean(name)), {clean(key): clean(value) for key, value in labels.items()}


class RedactingWandbLogger(WandbLogger):
    """A WandbLogger whose run starts with credentials on the command line redacted (W&B records `sys.argv`)."""

    @property
    def experiment(self):  # wandb's Run, or Lightning's stand-in on ranks other than 0
        if experiment_started(self):
            return super().experiment
        with argv_redacted(secret_values()):
            return super().experiment


def mlflow_logger(save_dir: str, run_name: str, group: str | None, tags: list, job_type: str, **kwargs) -> MLFlowLogger:
    """Lightning's MLFlowLogger, named as the W&B run (`<name>-<run id>`), tagged `group`, `job_type` and its tags."""
    run_tags = {"group": group, "job_type": job_type, **dict.fromkeys(tags or [], "true")}
    run_tags = {key: str(value) for key, value in run_tags.items() if value is not None}
    run_name, run_tags = redact_labels(f"{run_name}-{run_id(save_dir)}", run_tags)
    return KeptMLFlowLogger(Path(save_dir), run_name=run_name, tags=run_tags, **kwargs)


MLFLOW_RUN_ID = re.compile(r"[0-9a-f]{32}")  # MLflow's run ids: a UUID's 32 hex digits


class KeptMLFlowLogger(MLFlowLogger):
    """An MLFlowLogger whose run id is kept in the run folder (`mlflow_run_id`): `resume=true` continues the same
    MLflow run, as it does the W&B run; the run keeps its first parameters (MLflow refuses to change one)."""

    def __init__(self, run_folder: Path, **kwargs) -> None:
        self.id_file = run_folder / "mlflow_run_id"
        self.kept_id = self._kept_run(kwargs.get("tracking_uri"))
        super().__init__(run_id=self.kept_id, **kwargs)

    def _kept_run(self, tracking_uri: str | None) -> str | None:
        """The run id in `mlflow_run_id`, if it is one and that run is in this store; else None (a new run)."""
        kept = (read_text(self.id_file, max_bytes=64) or "").strip()
        if not MLFLOW_RUN_ID.fullmatch(kept):
            return None
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        try:
            MlflowClient(tracking_uri).get_run(kept)
        except MlflowException:
            log.warning("MLflow run %s (%s) is not in %s: starting a new MLflow run", kept, self.id_file, tracking_uri)
            return None
        return kept

    @rank_zero_only
    def log_hyperparams(self, params: dict) -> None:
        from mlflow.exceptions import MlflowException

        try:
            super().log_hyperparams(params)
        except MlflowException as error:
            if error.error_code != "INVALID_PARAMETER_VALUE":
                raise
            log.warning("MLflow run %s keeps its first parameters; this run's record is config.yaml", self.run_id)
        if self.kept_id != self.run_id:  # a new run: keep its id for resume=true
            write_text(self.id_file, f"{self.run_id}\n")
            self.kept_id = self.run_id


@rank_zero_only
def track_run(loggers: list[Logger], record: dict, files: list[Path | None]) -> None:
    """Give every logger the run record, and keep `files` with the W&B run (its files) and MLflow run (artifacts)."""
    for logger in loggers:
        logger.log_hyperparams(record)
        for path in filter(None, files):
            if isinstance(logger, WandbLogger):
                logger.experiment.save(str(path), base_path=str(path.parent), policy="now")
            elif isinstance(logger, MLFlowLogger):
                logger.experiment.log_artifact(logger.run_id, str(path))


@rank_zero_only
def finish_tracking(loggers: list[Logger]) -> None:
    """Close this job's W&B run (so the next job of a multirun starts its own) and say where it is."""
    for logger in loggers:
        if not isinstance(logger, WandbLogger) or not experiment_started(logger):
            continue
        run = logger.experiment
        run_dir = Path(run.dir).parent  # .../wandb/<offline-run-...>/files -> the run's folder
        offline = run.settings.mode == "offline"
        run.finish()
        if offline:
            log.info("W&B run saved offline in %s; upload it with: wandb sync %s", run_dir, run_dir)
