"""Readers for the UCR/UEA time-series archive's files: `.ts` (a header of `@` tags, then one series a line) and the
univariate `.tsv` (label first, then the values, tab-separated). Missing values stay NaN; the data module fills them.

Every malformed file is a `DataError` of one line naming the file and the line (`path:line: what is wrong`).
"""

from pathlib import Path
from typing import NamedTuple

import numpy as np

from src.errors import DataError

MISSING = {"?", "nan"}  # how the archive writes a missing value (compared lower-cased)
BOOLEAN_TAGS = {"timestamps", "missing", "univariate", "equallength", "targetlabel"}
INTEGER_TAGS = {"dimensions", "serieslength"}
TAGS = BOOLEAN_TAGS | INTEGER_TAGS | {"problemname", "classlabel", "data"}
SUFFIXES = (".ts", ".tsv")


class SeriesFile(NamedTuple):
    """What a file holds: the series as float32 (T_i, D) arrays, one label per series ("" when the file has none),
    and the class labels its header declares (None: not declared)."""

    series: list[np.ndarray]
    labels: list[str]
    class_labels: list[str] | None


def read_series_file(path: str | Path) -> SeriesFile:
    """A `.ts` or `.tsv` file by its suffix; an unreadable file or another suffix is a `DataError`."""
    path = Path(path)
    readers = {".ts": read_ts, ".tsv": read_tsv}
    if path.suffix.lower() not in readers:
        raise DataError(f"{path}: not a time-series file; valid suffixes: {list(SUFFIXES)}")
    return readers[path.suffix.lower()](path)


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot be read as a text file: {error}") from None


def _numbers(tokens: list[str], where: str) -> np.ndarray:
    """Comma- or tab-separated values as float32; `?` and NaN become NaN, anything else not a number an error."""
    try:
        return np.array([np.nan if t.strip().lower() in MISSING else float(t) for t in tokens], dtype=np.float32)
    except ValueError:
        bad = next(t for t in tokens if not _is_number(t))
        raise DataError(f"{where}: {bad.strip()!r} is not a number (nor ? or NaN for a missing value)") from None


def _is_number(token: str) -> bool:
    if token.strip().lower() in MISSING:
        return True
    try:
        float(token)
    except ValueError:
        return False
    return True


class _Header:
    """The `@` tags read so far; `tag()` checks and stores one line of them."""

    def __init__(self) -> None:
        self.tags: dict[str, object] = {}

    def tag(self, line: str, where: str) -> None:
        name, _, rest = line[1:].partition(" ")
        name, words = name.lower(), rest.split()
        if name not in TAGS:
            raise DataError(
                f"{where}: unknown tag @{line[1:].split()[0] if line[1:].split() else ''}; valid tags: "
                "@problemName @timeStamps @missing @univariate @dimensions @equalLength @seriesLength "
                "@classLabel @targetLabel @data"
            )
        if name in self.tags:
            raise DataError(f"{where}: @{name} is given twice")
        if name == "data":
            value: object = True
        elif name == "problemname":
            value = rest.strip()
        elif name in BOOLEAN_TAGS:
            value = self._boolean(name, words, where)
            if name == "timestamps" and value:
                raise DataError(f"{where}: @timeStamps true (series of (time, value) pairs) is not supported")
        elif name in INTEGER_TAGS:
            if len(words) != 1 or not words[0].isdigit() or int(words[0]) < 1:
                raise DataError(f"{where}: @{name} takes one whole number of at least 1, not {rest.strip()!r}")
            value = int(words[0])
        else:  # classlabel: true <label> <label> ... or false
            flag = self._boolean(name, words[:1], where)
            if flag and len(words) < 2:
                raise DataError(f"{where}: @classLabel true lists no labels: write `@classLabel true <label> ...`")
            if not flag and len(words) > 1:
                raise DataError(f"{where}: @classLabel false takes no labels, found {words[1:]}")
            if flag and len(set(words[1:])) != len(words[1:]):
                raise DataError(f"{where}: @classLabel true lists a label twice: {words[1:]}")
            value = words[1:] if flag else None
        self.tags[name] = value

    @staticmethod
    def _boolean(name: str, words: list[str], where: str) -> bool:
        if len(words) != 1 or words[0].lower() not in ("true", "false"):
            raise DataError(f"{where}: @{name} takes true or false, not {' '.join(words)!r}")
        return words[0].lower() == "true"

    def dimensions(self, where: str) -> int | None:
        """The declared number of dimensions: @dimensions, else 1 for @univariate true, else None (the first
        series says)."""
        declared = self.tags.get("dimensions")
        if self.tags.get("univariate") and declared not in (None, 1):
            raise DataError(f"{where}: @univariate true contradicts @dimensions {declared}")
        return declared if declared is not None else (1 if self.tags.get("univariate") else None)


def read_ts(path: str | Path) -> SeriesFile:
    """A `.ts` file of the UCR/UEA archive: `@` header tags (any case; `#` lines are comments), then after `@data`
    one series a line, its dimensions separated by `:`, each a `,`-separated list of values, the label last (when
    `@classLabel true` or `@targetLabel true`). Series may differ in length; a series' dimensions may not."""
    path = Path(path)
    header, series, labels = _Header(), [], []
    dims: int | None = None  # dimensions every series must have (declared, else the first series')
    length: int | None = None  # steps every series must have, when @equalLength true
    lines = _lines(path)
    for number, raw in enumerate(lines, 1):
        line, where = raw.strip(), f"{path}:{number}"
        if not line or line.startswith("#"):
            continue
        if "data" not in header.tags:
            if not line.startswith("@"):
                raise DataError(f"{where}: a series before the @data line (or a header line without its @)")
            header.tag(line, where)
            if "data" in header.tags:
                if "classlabel" not in header.tags and "targetlabel" not in header.tags:
                    raise DataError(
                        f"{where}: no @classLabel before @data: add `@classLabel true <labels...>` or "
                        "`@classLabel false`"
                    )
                dims = header.dimensions(where)
                if header.tags.get("equallength"):
                    length = header.tags.get("serieslength")  # type: ignore[assignment]
            continue
        if line.startswith("@"):
            raise DataError(f"{where}: a header line after @data: {line.split()[0]}")
        labelled = header.tags.get("classlabel") is not None or bool(header.tags.get("targetlabel"))
        fields = line.split(":")
        label = fields.pop().strip() if labelled else ""
        if labelled and not fields:
            raise DataError(f"{where}: a label with no series: each line is `values:...:values:label`")
        declared = header.tags.get("classlabel")
        if declared is not None and label not in declared:  # type: ignore[operator]
            raise DataError(f"{where}: label {label!r} is not among the declared @classLabel {declared}")
        if dims is not None and len(fields) != dims:
            raise DataError(f"{where}: {len(fields)} dimension(s), but the file's series have {dims}")
        dims = len(fields)
        values = [_numbers(field.split(","), f"{where}: dimension {d + 1}") for d, field in enumerate(fields)]
        if len({len(v) for v in values}) > 1:
            raise DataError(f"{where}: dimensions of one series differ in length: {[len(v) for v in values]}")
        if length is None and header.tags.get("equallength") and series:
            length = len(series[0])  # @equalLength true without @seriesLength: the first series sets it
        if length is not None and len(values[0]) != length:
            raise DataError(f"{where}: {len(values[0])} steps, but @equalLength true says every series has {length}")
        series.append(np.stack(values, axis=1))  # D x (T,) -> (T, D)
        labels.append(label)
    if "data" not in header.tags:
        raise DataError(
            f"{path}:{len(lines)}: no @data line by the end: the header must end with @data, then one series a line"
        )
    return SeriesFile(series, labels, header.tags.get("classlabel"))  # type: ignore[arg-type]


def read_tsv(path: str | Path) -> SeriesFile:
    """A univariate `.tsv` file of the UCR archive (2018): one series a line, its label first, then its values
    separated by tabs (commas where a line has no tab); the NaNs that pad shorter series at their end are cut."""
    path = Path(path)
    series, labels = [], []
    for number, raw in enumerate(_lines(path), 1):
        line, where = raw.strip(), f"{path}:{number}"
        if not line or line.startswith("#"):
            continue
        label, *tokens = line.split("\t") if "\t" in line else line.split(",")
        values = _numbers(tokens, where)  # (T_max,)
        observed = np.flatnonzero(~np.isnan(values))
        if observed.size == 0:
            raise DataError(f"{where}: a series with no values (all missing) after its label {label.strip()!r}")
        series.append(values[: observed[-1] + 1, None])  # trailing NaN padding cut: (T, 1)
        labels.append(label.strip())
    return SeriesFile(series, labels, None)
