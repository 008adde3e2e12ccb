"""Atomic file writes: a temp file in the target's folder, flushed, then `os.replace` over the target.

A reader (or a crashed step) never sees a half-written file: either the old content or the new one.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from .errors import InputError


@contextlib.contextmanager
def open_for_replace(path: str | os.PathLike[str], mode: int = 0o644) -> Iterator[BinaryIO]:
    """Yield a binary file that replaces `path` (with permissions `mode`) only if the block succeeds."""
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    except OSError as error:
        raise InputError(f"cannot write {target}: {error.strerror or error}") from None
    try:
        with os.fdopen(handle, "wb") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temp_name, mode)
        try:
            os.replace(temp_name, target)
        except OSError as error:
            raise InputError(f"cannot write {target}: {error.strerror or error}") from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise


def write_bytes(path: str | os.PathLike[str], data: bytes, mode: int = 0o644) -> None:
    with open_for_replace(path, mode) as stream:
        stream.write(data)


def write_text(path: str | os.PathLike[str], text: str, mode: int = 0o644) -> None:
    """Write UTF-8 text with ``\\n`` line ends atomically."""
    write_bytes(path, text.encode("utf-8"), mode)
