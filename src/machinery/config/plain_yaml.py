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


class _PlainLoader(yaml.SafeLoader):
    """A SafeLoader that refuses aliases, and more than `max_nodes` nodes or `max_depth` levels of nesting."""

    max_nodes, max_depth = MAX_NODES, MAX_DEPTH

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.nodes = self.depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        line = event.start_mark.line + 1
        if self.check_event(yaml.AliasEvent):
            raise PlainYamlError(f"a YAML alias (*{event.anchor}) at line {line}")
        self.nodes += 1
        if self.nodes > self.max_nodes:
            raise PlainYamlError(f"over {self.max_nodes:,} YAML nodes (the bound) by line {line}", "nodes")
        self.depth += 1
        try:
            if self.depth > self.max_depth:
                raise PlainYamlError(f"nested over {self.max_depth} levels deep (the bound) at line {line}", "depth")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def load_plain_yaml(
    text: str, max_nodes: int = MAX_NODES, max_depth: int = MAX_DEPTH, max_bytes: int = MAX_BYTES
) -> Any:
    """The data in `text`; raises `PlainYamlError` (one line) for anything but plain YAML within the bounds."""
    if len(text) > max_bytes:
        raise PlainYamlError(f"{len(text):,} characters, over the bound of {max_bytes:,}", "bytes")
    loader = _PlainLoader(text)
    loader.max_nodes, loader.max_depth = max_nodes, max_depth
    try:
        return loader.get_single_data()
    except yaml.YAMLError as error:
        raise PlainYamlError(str(error).splitlines()[0]) from None
    except RecursionError:  # a depth bound above what the parser's recursion allows
        raise PlainYamlError(f"nested deeper than the parser can follow (bound: {max_depth} levels)", "depth") from None
    finally:
        loader.dispose()


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
