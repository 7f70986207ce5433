"""Replacing a file atomically: write a hidden temporary beside it, then rename it over the file.

A reader sees the old file or the new one, never part of one; a failure (or a kill) leaves at most
a hidden `.NAME.*.tmp`, which every reader skips, and an error removes it. This is the one way
optbench writes a file that others read.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_file", "write_text_atomic"]


@contextmanager
def atomic_file(
    path: str | os.PathLike[str], mode: int = 0o644, fsync: bool = False
) -> Iterator[Path]:
    """Yields a temporary path in `path`'s folder to write the new file to; when the block ends
    without an error the file gets `mode` (readable by all: it may be shared data), is flushed to
    disk with `fsync`, and is renamed over `path`. Otherwise it is removed."""
    path = Path(path)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Writes `text` to `path` atomically (`atomic_file`)."""
    with atomic_file(path) as tmp:
        tmp.write_text(text)
