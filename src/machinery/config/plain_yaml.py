"""YAML from files the template does not trust (run folders, records), read as plain data: safe tags only, no
aliases (`*a` can nest a few lines into billions of nodes), and bounds on size, nodes and depth (`[[[[...]]]]` a few
kilobytes long would otherwise exhaust the parser's recursion or the memory) checked while it is read."""

import os
import stat
from pathlib import Path
from typing import Any

import yaml

MAX_BYTES = 16 << 20  # a run's config or metrics summary is kilobytes
MAX_NODES = 100_000  # a run's config.yaml holds a few hundred (every key, value and list item is one)
MAX_DEPTH = 64  # a run's config nests under 10 levels


class PlainYamlError(ValueError):
    """YAML that is not plain data: an alias, a Python tag, a syntax error, or over the size, node or depth bound
    (`bound`: "bytes", "nodes" or "depth"; None for the others)."""

    def __init__(self, message: str, bound: str | None = None) -> None:
        super().__init__(message)
        self.bound = bound


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser where installed: 25 times faster
_OPEN = (yaml.SequenceStartEvent, yaml.MappingStartEvent)
_CLOSE = (yaml.SequenceEndEvent, yaml.MappingEndEvent)


def _check_events(text: str, max_nodes: int, max_depth: int) -> None:
    """Raise `PlainYamlError` at the first alias, node past `max_nodes` or list/mapping past `max_depth` levels,
    found on the parser's events (before any node is built)."""
    nodes = depth = 0
    for event in yaml.parse(text, Loader=_LOADER):
        line = event.start_mark.line + 1
        if isinstance(event, yaml.AliasEvent):
            raise PlainYamlError(f"a YAML alias (*{event.anchor}) at line {line}")
        if isinstance(event, _CLOSE):
            depth -= 1
        elif isinstance(event, (yaml.ScalarEvent, *_OPEN)):
            nodes += 1
            if nodes > max_nodes:
                raise PlainYamlError(f"over {max_nodes:,} YAML nodes (the bound) by line {line}", "nodes")
            depth += isinstance(event, _OPEN)
            if depth > max_depth:
                raise PlainYamlError(f"nested over {max_depth} levels deep (the bound) at line {line}", "depth")


def load_plain_yaml(
    text: str, max_nodes: int = MAX_NODES, max_depth: int = MAX_DEPTH, max_bytes: int = MAX_BYTES
) -> Any:
    """The data in `text`; raises `PlainYamlError` (one line) for anything but plain YAML within the bounds."""
    if len(text) > max_bytes:
        raise PlainYamlError(f"{len(text):,} characters, over the bound of {max_bytes:,}", "bytes")
    try:
        _check_events(text, max_nodes, max_depth)
        return yaml.load(text, Loader=_LOADER)  # within the bounds: no alias, so no node is built twice
    except yaml.YAMLError as error:
        message = " ".join(line.strip() for line in str(error).splitlines())  # one line, with where it was
        if "maximum nesting depth" in message:  # libyaml's own bound (1000 levels) met before this one
            raise PlainYamlError(f"nested over {max_depth} levels deep (the bound): {message}", "depth") from None
        raise PlainYamlError(message) from None
    except RecursionError:  # a depth bound above what the parser's recursion allows
        raise PlainYamlError(f"nested deeper than the parser can follow (bound: {max_depth} levels)", "depth") from None


def read_plain_yaml(
    path: str | Path, max_bytes: int = MAX_BYTES, max_nodes: int = MAX_NODES, max_depth: int = MAX_DEPTH
) -> Any:
    """The data in the YAML file `path`, refusing one over `max_bytes`, or not a regular file (a FIFO would block
    the read for ever), before reading it."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # opening a FIFO for reading would wait for a writer
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise PlainYamlError("not a regular file (a FIFO, socket or device)")
        if info.st_size > max_bytes:
            raise PlainYamlError(f"{info.st_size:,} bytes, over the bound of {max_bytes:,} bytes", "bytes")
        text = f.read(max_bytes + 1).decode(errors="replace")
    if len(text) > max_bytes:  # grew since fstat
        raise PlainYamlError(f"over the bound of {max_bytes:,} bytes", "bytes")
    return load_plain_yaml(text, max_nodes, max_depth, max_bytes)
