"""Unit tests for file_upload's pure decisions: destinations and local file checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from cicdkit import file_upload
from cicdkit.errors import InputError


@pytest.mark.parametrize(
    "text, kind, path",
    [
        ("/Volumes/main/default/libs", "files", "/Volumes/main/default/libs"),
        ("/Volumes/main/default/libs/sub/", "files", "/Volumes/main/default/libs/sub"),
        ("/Workspace/Shared/ci-cd/wheels", "files", "/Workspace/Shared/ci-cd/wheels"),
        ("/Workspace/Users/me@example.com/libs", "files", "/Workspace/Users/me@example.com/libs"),
        ("dbfs:/FileStore/wheels", "dbfs", "/FileStore/wheels"),
        ("dbfs:/FileStore/wheels/", "dbfs", "/FileStore/wheels"),
    ],
)
def test_destinations(text: str, kind: str, path: str) -> None:
    destination = file_upload.parse_destination(text)
    assert (destination.kind, destination.path) == (kind, path)
    assert destination.remote("a.whl") == f"{path}/a.whl"


def test_dbfs_destination_is_shown_with_its_scheme() -> None:
    assert file_upload.parse_destination("dbfs:/FileStore/w").shown("a.whl") == "dbfs:/FileStore/w/a.whl"


@pytest.mark.parametrize(
    "text, message",
    [
        ("/Volumes/main/default", "not inside a volume"),
        ("/Volumes/main/../x/y", "'..'"),
        ("/Workspace/Shared/../Users/x", "'..'"),
        ("/Workspace/Repos/me/x", "Repos"),
        ("/Workspace/Shared", "root folder"),
        ("dbfs:/", "DBFS root"),
        ("dbfs:/FileStore/../x", "'..'"),
        ("dbfs:/FileStore//x", "empty"),
        ("/Shared/x", "outside the allowed roots"),
        ("/tmp/x", "outside the allowed roots"),
        ("relative/x", "outside the allowed roots"),
        ("s3://bucket/x", "outside the allowed roots"),
    ],
)
def test_refused_destinations(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message.replace(".", r"\.")):
        file_upload.parse_destination(text)


def test_check_files_hashes_and_refuses_bad_files(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    one = tmp_path / "a" / "x.whl"
    one.write_bytes(b"abc")
    (tmp_path / "b" / "x.whl").write_bytes(b"def")
    [checked] = file_upload.check_files([str(one)])
    assert (checked.name, checked.size) == ("x.whl", 3)
    assert checked.sha256 == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    with pytest.raises(InputError, match="does not exist"):
        file_upload.check_files([str(tmp_path / "missing.whl")])
    with pytest.raises(InputError, match="is a folder"):
        file_upload.check_files([str(tmp_path / "a")])
    with pytest.raises(InputError, match="same name"):
        file_upload.check_files([str(one), str(tmp_path / "b" / "x.whl")])


def test_check_files_source_root_of_a_file_is_its_own_folder(tmp_path: Path) -> None:
    (tmp_path / "dist").mkdir()
    (tmp_path / "other").mkdir()
    wheel = tmp_path / "dist" / "app-1.0-py3-none-any.whl"
    wheel.write_bytes(b"wheel")
    (tmp_path / "other" / "key").write_bytes(b"secret")
    (tmp_path / "dist" / "latest.whl").symlink_to(wheel.name)  # a sibling: uploaded under the link's name
    [checked] = file_upload.check_files([str(tmp_path / "dist" / "latest.whl")])
    assert (checked.name, checked.size) == ("latest.whl", 5)
    (tmp_path / "via").symlink_to(tmp_path / "dist", target_is_directory=True)  # a folder the user named: fine
    assert [f.name for f in file_upload.check_files([str(tmp_path / "via" / wheel.name)])] == [wheel.name]
    (tmp_path / "dist" / "key.whl").symlink_to("../other/key")  # inside the repo, but not inside dist/
    with pytest.raises(
        InputError, match=f"^{tmp_path}/dist/key.whl is a symlink to {tmp_path}/other/key, outside {tmp_path}/dist$"
    ):
        file_upload.check_files([str(wheel), str(tmp_path / "dist" / "key.whl")])
