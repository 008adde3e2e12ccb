"""atomic.py: a target holds its old content or the whole new one, never a part; nothing is left behind."""

from __future__ import annotations

import os
import stat

import pytest

from cicdkit import atomic


def test_write_text_replaces_with_the_mode_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "new folder" / "init.sh"
    atomic.write_text(target, "#!/bin/bash\n", mode=0o755)
    atomic.write_text(target, "#!/bin/bash\nset -e\n", mode=0o755)
    assert target.read_text() == "#!/bin/bash\nset -e\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o755
    assert os.listdir(target.parent) == ["init.sh"]


def test_a_failing_block_keeps_the_old_content(tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), atomic.open_for_replace(target) as stream:
        stream.write(b"half")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["file.txt"]


def test_append_text_adds_to_the_content_and_keeps_the_mode(tmp_path):
    target = tmp_path / "summary.md"
    atomic.append_text(target, "one\n")
    target.chmod(0o600)
    atomic.append_text(target, "two\n")
    assert target.read_text() == "one\ntwo\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert os.listdir(tmp_path) == ["summary.md"]


def test_copy_files_lands_all_or_nothing_and_keeps_mode_and_times(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    (source / "a.whl").write_bytes(b"wheel a")
    (source / "a.whl").chmod(0o640)
    os.utime(source / "a.whl", (1_000_000_000, 1_000_000_000))
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.whl").write_bytes(b"old a")
    with pytest.raises(FileNotFoundError):
        atomic.copy_files([(source / "a.whl", out / "a.whl"), (source / "missing.whl", out / "b.whl")])
    assert (out / "a.whl").read_bytes() == b"old a"  # the copy that succeeded did not land either
    assert os.listdir(out) == ["a.whl"]

    [copied] = atomic.copy_files([(source / "a.whl", out / "a.whl")])
    assert copied == out / "a.whl" and copied.read_bytes() == b"wheel a"
    assert stat.S_IMODE(copied.stat().st_mode) == 0o640 and copied.stat().st_mtime == 1_000_000_000
    assert os.listdir(out) == ["a.whl"]
