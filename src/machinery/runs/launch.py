"""One run folder for every rank of a run, however the ranks were started, and no second run mixed into a folder that
holds one (docs/launchers.md). No torch import: this runs while Hydra composes the config, before config errors are
reported."""

import itertools
import os
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import OmegaConf

from src.errors import RunFolderError
from src.machinery.runs.folder import command_line_value

STAMP_FORMAT = "%Y-%m-%d_%H-%M-%S"
_STAMP = re.compile(r"\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
# Files that show a run already wrote into a folder (Hydra's .hydra/ and train.log do not: every rank writes those).
RUN_MARKERS = ("config.yaml", "wandb_run_id", "checkpoints")


class LaunchError(RunFolderError):
    """The launcher gives the ranks nothing they share to name the run folder by."""


def register_launch_id_resolver() -> None:
    """Make `${launch_id:}` available to configs (cached per config, so one process resolves it once)."""
    if not OmegaConf.has_resolver("launch_id"):
        OmegaConf.register_new_resolver("launch_id", _launch_id_or_exit, use_cache=True)


def _launch_id_or_exit() -> str:
    # Hydra resolves the run folder outside the task function, where `exit_on_run_error` cannot catch this.
    try:
        return launch_id()
    except LaunchError as error:
        print(f"Error: {error}", file=sys.stderr, flush=True)
        sys.exit(error.exit_code)


def launch_id(env: dict[str, str] | None = None) -> str:
    """The run folder's name, agreed by every rank of this launch: from SLURM's job id or torchrun's rendezvous id,
    else the date and time (docs/launchers.md)."""
    env = dict(os.environ) if env is None else env
    if slurm := slurm_id(env):
        return slurm
    run_id = env.get("TORCHELASTIC_RUN_ID")
    if run_id is None:
        return _claimed_stamp()
    if run_id != "none" and not _UUID.fullmatch(run_id):
        return f"torchrun_{_UNSAFE.sub('_', run_id)}"
    # torchrun's own id: a fresh UUID per single-node launch, or "none" with a static rendezvous.
    if env.get("LOCAL_WORLD_SIZE", "1") != env.get("WORLD_SIZE", "1"):
        raise LaunchError(
            "torchrun on several nodes needs a run id every node shares: pass --rdzv-id=<name> "
            "(the run folder becomes outputs/<task>/torchrun_<name>) or hydra.run.dir=<folder>"
        )
    return _first_rank_decides(_launch_key(run_id, env))


def slurm_id(env: dict[str, str]) -> str | None:
    """`slurm_<job>` or `slurm_<array job>_<task>` where SLURM runs the tasks, as Lightning detects it (its
    SLURMEnvironment needs SLURM_NTASKS; a job named `bash` or `interactive` is a shell, not a launch)."""
    if "SLURM_NTASKS" not in env or env.get("SLURM_JOB_NAME") in ("bash", "interactive"):
        return None
    if (array_job := env.get("SLURM_ARRAY_JOB_ID")) and (task := env.get("SLURM_ARRAY_TASK_ID")):
        return _UNSAFE.sub("_", f"slurm_{array_job}_{task}")
    if job := env.get("SLURM_JOB_ID"):
        return _UNSAFE.sub("_", f"slurm_{job}")
    return None


def _launch_key(run_id: str, env: dict[str, str]) -> str:
    """What the ranks of one single-node torchrun launch share: its run id, or with "none" the rendezvous address
    and the agent process (their parent, with its start time where /proc has it, so a reused pid differs)."""
    if run_id != "none":
        return run_id
    parent = os.getppid()
    try:
        started = Path(f"/proc/{parent}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        started = ""
    return _UNSAFE.sub("_", f"{env.get('MASTER_ADDR', '')}_{env.get('MASTER_PORT', '')}_{parent}_{started}")


def _first_rank_decides(key: str) -> str:
    """The date and time of the first rank to ask, kept in `<tmp>/dl-template-<uid>/launch-<key>` for later ranks;
    the file is created whole, by a hard link, so a reader never sees it half written."""
    folder = _private_temp_folder()
    final = folder / f"launch-{key}"
    if not final.exists():
        temp = folder / f".launch-{key}.{os.getpid()}"
        temp.write_text(time.strftime(STAMP_FORMAT) + "\n")
        try:
            os.link(temp, final)
        except FileExistsError:
            pass  # another rank was first
        finally:
            temp.unlink(missing_ok=True)
    stamp = final.read_text().strip()
    if not _STAMP.fullmatch(stamp):
        raise LaunchError(f"{final} does not hold a date and time ({stamp[:40]!r}): remove it and launch again")
    return stamp


_claimed: list[str] = []  # this process's claim: Hydra may resolve the folder's name more than once


def _claimed_stamp() -> str:
    """The date and time, claimed on this machine: a second run started in the same second gets `<stamp>_2`
    (then `_3`, ...) instead of stopping at the first run's folder. A claim is an empty file created exclusively."""
    if _claimed:
        return _claimed[0]
    folder, stamp = _private_temp_folder(), time.strftime(STAMP_FORMAT)
    for old in folder.glob("claim-*"):  # claims a minute old are no longer contested
        with suppress(FileNotFoundError):  # another run removed it first
            if old.stat().st_mtime < time.time() - 60:
                old.unlink()
    for n in itertools.count(1):
        name = stamp if n == 1 else f"{stamp}_{n}"
        with suppress(FileExistsError):
            (folder / f"claim-{name}").touch(exist_ok=False)
            _claimed.append(name)
            return name


def _private_temp_folder() -> Path:
    """`<tmp>/dl-template-<uid>`, created for this user only; refused if someone else owns it or it is a link."""
    folder = Path(tempfile.gettempdir()) / f"dl-template-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    info = os.lstat(folder)
    if folder.is_symlink() or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise LaunchError(f"{folder} is not a folder private to this user: remove it and launch again")
    return folder


def rank_from_env(env: dict[str, str] | None = None) -> int:
    """This process's rank as Lightning reads it before distributed start-up (RANK, LOCAL_RANK, SLURM_PROCID,
    JSM_NAMESPACE_RANK; 0 when none is set)."""
    env = os.environ if env is None else env
    for key in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        if key in env:
            return int(env[key])
    return 0


def check_new_run_folder(output_dir: str | Path, resume: bool, option: str = "hydra.run.dir") -> None:
    """Stop a new run (no `resume=true`) in a folder another run already wrote: two runs' checkpoints, metrics and
    W&B history never mix. Rank 0 alone checks (the other ranks may start after it wrote); its exit ends them."""
    if resume or rank_from_env() != 0:
        return
    folder = Path(output_dir)
    found = [name for name in RUN_MARKERS if (folder / name).exists()]
    if found:
        raise RunFolderError(
            f"{folder} already holds a run ({', '.join(found)}): pass resume=true to continue it, "
            f"or choose another folder ({option}=...)"
        )


def check_new_run_folder_argument(argv: Sequence[str]) -> None:
    """`check_new_run_folder` for the folder named on the command line (hydra.run.dir; with -m, each job folder in
    hydra.sweep.dir), before Hydra writes its records there (.hydra/, multirun.yaml) over the old run's."""
    resume = command_line_value(argv, "resume").lower() == "true" or command_line_value(argv, "ckpt_path") == "last"
    if "-m" in argv or "--multirun" in argv:
        if sweep_dir := command_line_value(argv, "hydra.sweep.dir"):
            for job in sorted(p for p in Path(sweep_dir).glob("*") if p.is_dir()):
                check_new_run_folder(job, resume, "hydra.sweep.dir")
    elif run_dir := command_line_value(argv, "hydra.run.dir"):
        check_new_run_folder(run_dir, resume)


def external_ranks() -> bool:
    """True when torchrun or srun started this process's ranks: they run every job of a sweep together."""
    return "TORCHELASTIC_RUN_ID" in os.environ or slurm_id(dict(os.environ)) is not None


def local_sweep_job() -> str | None:
    """This multirun job's folder when this process runs the sweep's jobs itself (a job's error then fails it alone),
    else None: a single run, or ranks started by torchrun or srun, which leave together."""
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN or external_ranks():
        return None
    return HydraConfig.get().runtime.output_dir
