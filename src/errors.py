"""Errors a user can act on, and the exit codes they end a run with (no torch import: the CLI loads this first)."""

import sys
from collections.abc import Iterator
from contextlib import contextmanager


class RunError(Exception):
    """A failure reported as one line (no traceback) that ends the process with `exit_code`."""

    exit_code = 1


class ConfigValueError(RunError):
    """A config value out of its valid range (a negative learning rate, `data.train_fraction=0`, ...)."""


class DataError(RunError):
    """Input data that cannot be trained on: no images, an unreadable file, splits whose classes differ."""


class CheckpointError(RunError):
    """A checkpoint that is missing, empty, truncated, corrupted, foreign or unsafe to unpickle."""


class RunFolderError(RunError):
    """A run folder that a run must not write into as it is: links planted in it, a file that is not a file."""


class NonFiniteLossError(RunError):
    """Training stopped at a NaN or infinite loss, before that step changed the weights."""


class Preempted(RunError):
    """A SIGTERM/SIGUSR1 stopped training after a checkpoint was saved; exits 128 + signal, as a killed process."""

    def __init__(self, signum: int, checkpoint: str | None) -> None:
        saved = f"after saving {checkpoint}; resume with resume=true" if checkpoint else "before a checkpoint was due"
        super().__init__(f"stopped by signal {signum} {saved}")
        self.exit_code = 128 + signum


@contextmanager
def exit_on_run_error(sweep_job: str | None = None) -> Iterator[None]:
    """Turn a `RunError` into one line on stderr and its exit code (Hydra would print a traceback and exit 1). In
    `sweep_job`, the folder of a multirun job this process runs, an error (not a preemption) fails that job alone:
    the sweeper runs the others (Optuna: within `max_failure_rate`), then ends with one line and exit code 1."""
    try:
        yield
    except RunError as error:
        print(f"Error: {one_line(error)}", file=sys.stderr, flush=True)
        if sweep_job and error.exit_code == 1:
            from hydra.errors import CompactHydraException  # Hydra prints its message alone

            raise CompactHydraException(f"Error: sweep job {sweep_job} failed: {one_line(error)}") from None
        sys.exit(error.exit_code)


def one_line(error: RunError) -> str:
    """The error's message; for one raised in a DataLoader worker (torch re-raises it as `Caught DataError in DataLoader
    worker process 0. Original Traceback ...`), only the last line, the original message."""
    text = str(error)
    if "\nOriginal Traceback" in text:
        text = text.rstrip().splitlines()[-1].partition(": ")[2]
    return text


def first_line(error: Exception) -> str:
    """The first line of an error's message (its type's name when it has none): for one-line reports."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
