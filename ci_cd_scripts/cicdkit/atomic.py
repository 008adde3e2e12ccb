"""Atomic file writes: a temp file in the target's folder, flushed, then `os.replace` over the target.

A reader (or a crashed step) never sees a half-written file: either the old content or the new one.
`copy_files` does the same for several files at once: every copy is complete before the first one lands.

It owns only how bytes reach the disk; what to write, and where, belongs to the steps and their modules.
`os.replace` is atomic on POSIX and on Windows: https://docs.python.org/3/library/os.html#os.replace
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from .errors import InputError


def _temp_beside(target: Path) -> tuple[int, str]:
    """A new temporary file (descriptor, name) in `target`'s folder, which is created if missing."""
    folder = target.parent if str(target.parent) else Path(".")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    except OSError as error:
        raise InputError(f"cannot write {target}: {error.strerror or error}") from None


def _replace(temp_name: str, target: Path) -> None:
    try:
        os.replace(temp_name, target)
    except OSError as error:
        raise InputError(f"cannot write {target}: {error.strerror or error}") from None


@contextlib.contextmanager
def open_for_replace(path: str | os.PathLike[str], mode: int = 0o644) -> Iterator[BinaryIO]:
    """Yield a binary file that replaces `path` (with permissions `mode`) only if the block succeeds."""
    target = Path(path)
    handle, temp_name = _temp_beside(target)
    try:
        with os.fdopen(handle, "wb") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temp_name, mode)
        _replace(temp_name, target)
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


def append_text(path: str | os.PathLike[str], text: str, mode: int = 0o644) -> None:
    """Append UTF-8 text to `path` atomically: its old content plus `text` replace it in one rename.

    An existing file keeps its permissions; a new one gets `mode`. For files one process writes at a time (the
    steps of a job run one after the other); two concurrent appends would each keep only their own."""
    target = Path(path)
    try:
        old = target.read_bytes()
        mode = target.stat().st_mode & 0o7777
    except FileNotFoundError:
        old = b""
    except OSError as error:
        raise InputError(f"cannot read {target}: {error.strerror or error}") from None
    write_bytes(target, old + text.encode("utf-8"), mode)


def copy_files(pairs: Iterable[tuple[str | os.PathLike[str], str | os.PathLike[str]]]) -> list[Path]:
    """Copy each (source, target) pair, all together; return the targets.

    Every copy is first written in full next to its target (flushed to disk), and only then are they renamed
    into place, so a failure while copying leaves every target as it was. Like `shutil.copy2`, a copy keeps its
    source's permission bits and timestamps."""
    staged: list[tuple[str, Path]] = []  # written in full, not renamed yet
    done: list[Path] = []
    try:
        for source, target in pairs:
            target = Path(target)
            handle, temp_name = _temp_beside(target)
            staged.append((temp_name, target))
            with os.fdopen(handle, "wb") as stream, open(source, "rb") as original:
                shutil.copyfileobj(original, stream)
                stream.flush()
                os.fsync(stream.fileno())
            shutil.copystat(source, temp_name)
        while staged:
            temp_name, target = staged[0]
            _replace(temp_name, target)
            staged.pop(0)
            done.append(target)
    except BaseException:
        for temp_name, _target in staged:
            with contextlib.suppress(OSError):
                os.unlink(temp_name)
        raise
    return done
