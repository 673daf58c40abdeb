"""Keep credentials out of everything a run writes: config files, checkpoints, Hydra's records and W&B.

A secret is the value of an environment variable or a config key whose name looks like a credential
(`WANDB_API_KEY`, `api_key`, `token`, `password`, ...), or the value of such a key given on the command line.
"""

import os
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lightning.pytorch.utilities import rank_zero_only

from src.run_folder import read_text, write_text

SECRET_NAME = re.compile(r"api[_-]?key|token|secret|passw(or)?d|credential", re.IGNORECASE)
REDACTED = "<redacted>"
MIN_SECRET_LENGTH = 6  # shorter values ("1", "true") would redact ordinary words


def is_secret_name(name: str) -> bool:
    """True for a key or variable name such as `WANDB_API_KEY`, `logger.wandb.api_key` or `hf_token`."""
    return bool(SECRET_NAME.search(str(name).rsplit(".", 1)[-1]))


def _config_secrets(tree: Any) -> Iterator[str]:
    if isinstance(tree, Mapping):
        for key, value in tree.items():
            if is_secret_name(key) and isinstance(value, (str, int)):
                yield str(value)
            else:
                yield from _config_secrets(value)
    elif isinstance(tree, (list, tuple)):
        for item in tree:
            yield from _config_secrets(item)


def _argv_secrets(argv: Iterable[str]) -> Iterator[str]:
    for arg in argv:
        key, sep, value = arg.partition("=")
        if sep and is_secret_name(key.lstrip("+~")):
            yield value.strip("'\"")


def secret_values(
    config: Any = None, argv: Iterable[str] | None = None, environ: Mapping[str, str] | None = None
) -> set[str]:
    """Every secret value found in the environment, the command line and the config (longest first when sorted)."""
    environ = os.environ if environ is None else environ
    argv = sys.argv[1:] if argv is None else argv
    found = {v for k, v in environ.items() if is_secret_name(k)}
    found |= set(_argv_secrets(argv)) | set(_config_secrets(config))
    return {v for v in found if len(v) >= MIN_SECRET_LENGTH and v != REDACTED}


def redact_text(text: str, secrets: Iterable[str]) -> str:
    """`text` with every occurrence of every secret replaced by `<redacted>` (longest first)."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def redact(tree: Any, secrets: Iterable[str]) -> Any:
    """A copy of a plain config tree with secret-named keys and any secret value inside strings redacted."""
    secrets = list(secrets)
    if isinstance(tree, Mapping):
        return {k: REDACTED if is_secret_name(k) and v is not None else redact(v, secrets) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(redact(item, secrets) for item in tree)
    if isinstance(tree, str):
        return redact_text(tree, secrets)
    return tree


def redact_files(paths: Iterable[Path], secrets: Iterable[str]) -> list[Path]:
    """Rewrite the text files among `paths` that contain a secret; returns those rewritten."""
    secrets = list(secrets)
    changed = []
    for path in paths:
        text = read_text(path, max_bytes=64 << 20)  # None for a link (never followed) or anything not a file
        if text is None:
            continue
        clean = redact_text(text, secrets)
        if clean != text:
            write_text(path, clean)
            changed.append(path)
    return changed


@rank_zero_only
def redact_hydra_records(output_dir: str | Path, secrets: Iterable[str]) -> list[Path]:
    """Hydra writes the command-line overrides (secrets included) before the run starts: redact them there.

    That is `.hydra/{overrides,config,hydra}.yaml` in the run folder and, in a sweep, `multirun.yaml` beside it.
    """
    output_dir = Path(output_dir)
    paths = [*output_dir.glob(".hydra/*.yaml"), output_dir.parent / "multirun.yaml"]
    return redact_files(paths, secrets)


@contextmanager
def argv_redacted(secrets: Iterable[str]) -> Iterator[None]:
    """Within the block, `sys.argv` shows `<redacted>` for secrets (W&B records the command line at init)."""
    original = sys.argv
    sys.argv = [redact_text(arg, secrets) for arg in original]
    try:
        yield
    finally:
        sys.argv = original
