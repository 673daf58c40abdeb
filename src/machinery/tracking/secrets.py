"""Keep credentials out of everything a run writes: config files, checkpoints, Hydra's records, W&B and MLflow. A
secret is found by name (keys, variables, overrides, assignments in text), by value (the values found so, wherever
they appear again) and by shape (well-known token formats, PEM private keys, URL passwords: `token_shapes`), and on
parsed YAML, so quoting or escaping cannot hide one (docs/reliability.md)."""

import math
import os
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from lightning.pytorch.utilities import rank_zero_only

from src.machinery.config.plain_yaml import PlainYamlError, load_plain_yaml
from src.machinery.runs.folder import read_text, write_text
from src.machinery.tracking.token_shapes import REDACTED, URL_CREDENTIALS, is_token, redact_shapes

SECRET_NAME = re.compile(
    # `token`, not a count or part of a model: `tokenizer`, `max_tokens`, `token_embedding`, `token_ids` are not secret
    r"api[_-]?key|token(?!iz|s(?:$|[_-])|[_-]?(?:emb|ids?$|type|len|count|dim|num|size|pos|mix|drop))|secret|passw(or)?d|passphrase|credential|pwd$|(^|[_-])key$|account[_-]?key"
    r"|connection[_-]?string|conn[_-]?str|private[_-]?key|access[_-]?key|authorization|(^|[_-])auth$",
    re.IGNORECASE,
)
NOT_SECRET_NAMES = frozenset({"PWD", "OLDPWD"})  # the shell's working directories
MIN_SECRET_LENGTH = 6  # shorter values ("1", "true") would redact ordinary words
# `key=value` (an override, a query parameter, a connection string's part) whose key names a secret
KEY_VALUE = re.compile(r"(?P<head>(?:^|(?<=[\s?&;,+~]))(?P<key>[\w.-]+)=)(?P<secret>[^\s&;,]+)")
# An assignment in text (a diff, a log, a config value) whose name looks secret: `KEY=value`, `KEY = "value"`,
# `key: value` (YAML), `"key": "value"` (JSON), `export KEY=value`, and a flag's value: `--password value`,
# `--token=value`. A bare value is a literal, not code: `token = get_token()` and `self.key = nn.Linear(...)` stay.
_QUOTED = r""""(?:[^"\\\n]|\\.)*"|'[^'\n]*'"""
_BARE = r"""(?>[^\s"',;(){}\[\]]+)(?=[\s,;)}\]]|$)"""
ASSIGNMENT = re.compile(
    rf"""(?P<head>(?<![\w.-])(?P<quote>["']?)(?P<key>[A-Za-z_][\w.-]*)(?P=quote)[ \t]*(?::=|=|:)[ \t]*)"""
    rf"(?P<secret>{_QUOTED}|{_BARE})",
    re.MULTILINE,
)
FLAG = re.compile(rf"(?P<head>(?<![\w-])--(?P<key>[A-Za-z][\w-]*)(?:=|[ \t]+))(?P<secret>{_QUOTED}|(?!-){_BARE})", re.M)
NOT_VALUES = frozenset({"", "None", "none", "null", "Null", "NULL", "~", "true", "false", "True", "False", REDACTED})
HYDRA_RECORD_BYTES = 8 << 20  # Hydra's records are kilobytes; a bigger one was planted in a copied folder: not read
NOT_SECRET_SUFFIXES = ("_ID", "_SHA", "_COMMIT", "_UUID", "_REF")  # identifiers, not credentials


def is_secret_name(name: str) -> bool:
    """True for a key or variable name such as `WANDB_API_KEY`, `logger.wandb.api_key`, `KAGGLE_KEY` or
    `DB_PWD` (not the shell's `PWD`)."""
    last = str(name).rsplit(".", 1)[-1]
    return last.upper() not in NOT_SECRET_NAMES and bool(SECRET_NAME.search(last))


def looks_like_token(value: str) -> bool:
    """True for a value shaped like a credential: a known token prefix, or 20+ random-looking characters with
    letters and digits and no path or list separators."""
    if is_token(value):
        return True
    if len(value) < 20 or not re.fullmatch(r"[A-Za-z0-9+/=_.-]+", value) or value.startswith(("/", ".", "~")):
        return False
    if not (re.search(r"[A-Za-z]", value) and re.search(r"[0-9]", value)):
        return False
    counts = [value.count(c) for c in set(value)]
    entropy = -sum(n / len(value) * math.log2(n / len(value)) for n in counts)
    return entropy >= 3.5


def _environment_secrets(environ: Mapping[str, str]) -> Iterator[str]:
    for name, value in environ.items():
        token_shaped = not name.upper().endswith(NOT_SECRET_SUFFIXES) and looks_like_token(value)
        if is_secret_name(name) or token_shaped:
            yield value
        yield from (m.group("secret") for m in URL_CREDENTIALS.finditer(value))


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
    elif isinstance(tree, str):
        yield from (m.group("secret") for m in URL_CREDENTIALS.finditer(tree))


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
    found = set(_environment_secrets(environ)) | set(_argv_secrets(argv)) | set(_config_secrets(config))
    found |= set(_config_secrets(list(argv)))  # passwords in URLs on the command line
    return {v for v in found if len(v) >= MIN_SECRET_LENGTH and v != REDACTED}


def redact_text(text: str, secrets: Iterable[str]) -> str:
    """`text` with every occurrence of every secret replaced by `<redacted>` (longest first), every token of a
    well-known shape, PEM private key and URL password, and the value of every assignment (`name=value`,
    `name: value`, `"name": "value"`, `--name value`, ...) whose name looks like a credential."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    text = KEY_VALUE.sub(_redact_named, redact_shapes(text))
    return FLAG.sub(_redact_named, ASSIGNMENT.sub(_redact_named, text))


def _redact_named(match: re.Match[str]) -> str:
    """An assignment's match with its value redacted when its name looks secret (quotes kept; `None`, `true`, an
    empty value and a `${...}` interpolation left as they are: they hold no secret)."""
    value = match.group("secret")
    quote = value[0] if value[:1] in ("'", '"') and len(value) > 1 and value[-1] == value[0] else ""
    bare = value[1:-1] if quote else value
    if not is_secret_name(match.group("key")) or bare in NOT_VALUES or bare.startswith("${"):
        return match.group(0)
    return f"{match.group('head')}{quote}{REDACTED}{quote}"


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


def redact_files(paths: Iterable[Path], secrets: Iterable[str], max_bytes: int = 64 << 20) -> list[Path]:
    """Rewrite the files among `paths` that hold a secret and return them: YAML on its parsed data (quotes and escapes
    hide nothing); other text, or YAML that is not plain data, on its text. Files over `max_bytes` are left alone."""
    secrets = list(secrets)
    changed = []
    for path in paths:
        text = read_text(path, max_bytes=max_bytes)  # None for a link (never followed) or anything not a file
        if text is None:
            continue
        clean = _redact_yaml(text, secrets) if path.suffix in (".yaml", ".yml") else None
        if clean is None:
            clean = redact_text(text, secrets)
        if clean != text:
            write_text(path, clean)
            changed.append(path)
    return changed


def _redact_yaml(text: str, secrets: list[str]) -> str | None:
    """`text` (YAML) with its data redacted and dumped again; itself if nothing changed; None if not plain YAML."""
    try:
        data = load_plain_yaml(text)
    except PlainYamlError:
        return None
    clean = redact(data, secrets)
    if clean == data:
        return text
    return yaml.safe_dump(clean, sort_keys=False, allow_unicode=True)


@rank_zero_only
def redact_hydra_records(output_dir: str | Path, secrets: Iterable[str]) -> list[Path]:
    """Hydra writes the command-line overrides (secrets included) before the run starts: redact them in the run
    folder's `.hydra/*.yaml` and, in a sweep, in `multirun.yaml` beside it."""
    output_dir = Path(output_dir)
    paths = [*output_dir.glob(".hydra/*.yaml"), output_dir.parent / "multirun.yaml"]
    return redact_files(paths, secrets, max_bytes=HYDRA_RECORD_BYTES)


@contextmanager
def argv_redacted(secrets: Iterable[str]) -> Iterator[None]:
    """Within the block, `sys.argv` shows `<redacted>` for secrets (W&B records the command line at init)."""
    original = sys.argv
    sys.argv = [redact_text(arg, secrets) for arg in original]
    try:
        yield
    finally:
        sys.argv = original
