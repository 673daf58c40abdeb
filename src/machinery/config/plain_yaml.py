"""YAML from files the template does not trust (run folders, records), read as plain data: safe tags only, no
aliases (`*a` can nest a few lines into billions of nodes), and a size limit."""

import os
import stat
from pathlib import Path
from typing import Any

import yaml

MAX_BYTES = 16 << 20  # a run's config or metrics summary is kilobytes


class PlainYamlError(ValueError):
    """YAML that is not plain data: an alias, a Python tag, a syntax error, or a file over the size limit."""


class _PlainLoader(yaml.SafeLoader):
    """A SafeLoader that refuses aliases."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise PlainYamlError(f"a YAML alias (*{event.anchor}) at line {event.start_mark.line + 1}")
        return super().compose_node(parent, index)


def load_plain_yaml(text: str) -> Any:
    """The data in `text`; raises `PlainYamlError` (one line) for anything but plain YAML."""
    if len(text) > MAX_BYTES:
        raise PlainYamlError(f"over {MAX_BYTES >> 20} MiB")
    try:
        return yaml.load(text, Loader=_PlainLoader)
    except yaml.YAMLError as error:
        raise PlainYamlError(str(error).splitlines()[0]) from None


def read_plain_yaml(path: str | Path, max_bytes: int = MAX_BYTES) -> Any:
    """The data in the YAML file `path`, refusing one over `max_bytes`, or not a regular file (a FIFO would block
    the read for ever), before reading it."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # opening a FIFO for reading would wait for a writer
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise PlainYamlError("not a regular file (a FIFO, socket or device)")
        if info.st_size > max_bytes:
            raise PlainYamlError(f"{info.st_size} bytes, over the {max_bytes >> 20} MiB limit")
        return load_plain_yaml(f.read(max_bytes + 1).decode(errors="replace"))
