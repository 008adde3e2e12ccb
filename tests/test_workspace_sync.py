"""Unit tests for the pure decisions of workspace_sync: scan, manifest, plan, next manifest, path checks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cicdkit import workspace_sync as ws
from cicdkit import workspace_sync_scan
from cicdkit.errors import InputError, OperationFailed

PY_HEADER = "# Databricks notebook source\n"


def write(root: Path, relative: str, text: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def source(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    write(root, "etl/load.py", PY_HEADER + "print(1)\n")
    write(root, "etl/query.sql", "-- Databricks notebook source\nselect 1\n")
    write(root, "etl/helpers.py", "def f():\n    return 1\n")
    write(root, "reports/deep/nb.scala", "// Databricks notebook source\nprintln(1)\n")
    write(root, "reports/r_nb.R", PY_HEADER + "x <- 1\n")
    write(root, "explore.ipynb", '{"cells": [], "nbformat": 4, "nbformat_minor": 5, "metadata": {}}')
    write(root, "init.sh", "#!/bin/sh\n")
    write(root, ".hidden/x.py", PY_HEADER)
    write(root, "etl/__pycache__/load.cpython-311.pyc", "x")
    write(root, ".gitignore", "x")
    return root


def test_scan_classifies_notebooks_files_and_skips_hidden(source: Path) -> None:
    tree = ws.scan(source)
    kinds = {path: (item.object_type, item.format, item.language) for path, item in tree.objects.items()}
    assert kinds == {
        "etl/load": ("NOTEBOOK", "SOURCE", "PYTHON"),
        "etl/query": ("NOTEBOOK", "SOURCE", "SQL"),
        "etl/helpers.py": ("FILE", "RAW", None),
        "reports/deep/nb": ("NOTEBOOK", "SOURCE", "SCALA"),
        "reports/r_nb": ("NOTEBOOK", "SOURCE", "R"),
        "explore": ("NOTEBOOK", "JUPYTER", None),
        "init.sh": ("FILE", "RAW", None),
    }
    assert tree.folders == {"etl", "reports", "reports/deep"}
    item = tree.objects["etl/load"]
    assert item.size == len((PY_HEADER + "print(1)\n").encode())
    assert item.sha256 == ws.hash_file(source / "etl/load.py")[0]


def test_header_with_bom_and_crlf_is_a_notebook() -> None:
    assert ws.classify("a.py", "\ufeff# Databricks notebook source\r\n")[1] == "NOTEBOOK"
    assert ws.classify("a.py", "# Databricks notebook source extra\n")[1] == "FILE"
    assert ws.classify(".py", PY_HEADER)[1] == "FILE"


def test_scan_refuses_two_files_on_one_workspace_path(tmp_path: Path) -> None:
    write(tmp_path, "a.py", PY_HEADER)
    write(tmp_path, "a.sql", "-- Databricks notebook source\n")
    with pytest.raises(InputError, match="would both be deployed as 'a'"):
        ws.scan(tmp_path)


def test_scan_refuses_notebook_named_like_a_folder(tmp_path: Path) -> None:
    write(tmp_path, "a.py", PY_HEADER)
    write(tmp_path, "a/b.py", PY_HEADER)
    with pytest.raises(InputError, match="also a folder"):
        ws.scan(tmp_path)


def test_scan_missing_folder_and_oversized_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        ws.scan(tmp_path / "nope")
    big = tmp_path / "big"
    big.mkdir()
    with open(big / "data.bin", "wb") as handle:
        handle.truncate(ws.MAX_IMPORT_BYTES + 1)
    with pytest.raises(InputError, match="at most"):
        ws.scan(big)


def test_scan_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "a.py", PY_HEADER)
    unreadable = write(tmp_path, "b.py", PY_HEADER)
    unreadable.chmod(0)
    if os.geteuid() == 0:  # root reads a mode-000 file: make scan's own open() of it fail instead

        def refusing_open(path, *args, **kwargs):
            if Path(path) == unreadable:
                raise PermissionError(13, "Permission denied", str(path))
            return open(path, *args, **kwargs)

        monkeypatch.setattr(workspace_sync_scan, "open", refusing_open, raising=False)
    with pytest.raises(InputError, match="cannot read .*b.py: Permission denied"):
        ws.scan(tmp_path)


def test_scan_refuses_a_link_leaving_src_before_reading_it(tmp_path: Path) -> None:
    secret = write(tmp_path, "secret.txt", "root:x:0:0\n")
    write(tmp_path / "src", "a.py", PY_HEADER)
    (tmp_path / "src" / "passwd.txt").symlink_to(secret)
    src = tmp_path / "src"
    with pytest.raises(InputError, match=f"^{src}/passwd.txt is a symlink to {secret}, outside {src}$"):
        ws.scan(src)
    (tmp_path / "src" / "passwd.txt").unlink()
    (tmp_path / "src" / "alias.py").symlink_to("a.py")  # inside SRC: deployed with a.py's content
    tree = ws.scan(src)
    assert tree.objects["alias"].sha256 == tree.objects["a"].sha256 and tree.objects["alias"].object_type == ws.NOTEBOOK


@pytest.mark.parametrize(
    "path",
    [
        "/Workspace/Shared/app",
        "/Workspace/Shared/app/notebooks/",
        "/Shared/app",
        "/Users/me@example.com/app",
        "/Workspace/Users/me@example.com/app",
        "/Workspace/Projects/app",
    ],
)
def test_allowed_workspace_dirs(path: str) -> None:
    assert ws.check_workspace_dir(path) == path.rstrip("/")


@pytest.mark.parametrize(
    "path, message",
    [
        ("Shared/app", "not an absolute path"),
        ("/Workspace/Shared/../Users/x", "'..'"),
        ("/Shared//app", "empty"),
        ("/Shared/./app", "'.'"),
        ("/Repos/me/app", "Repos"),
        ("/Workspace/Repos/me/app", "Repos"),
        ("/Shared", "root folder"),
        ("/Workspace/Shared", "root folder"),
        ("/Users/me@example.com", "root folder"),
        ("/Workspace", "root folder"),
        ("/Volumes/main/default/v", "outside"),
        ("/tmp/x", "outside"),
        ("", "not an absolute path"),
        ("/Users/${workspace.current_user.userName}/app", "unresolved"),
    ],
)
def test_refused_workspace_dirs(path: str, message: str) -> None:
    with pytest.raises(InputError, match=message.replace(".", r"\.")):
        ws.check_workspace_dir(path)


def test_ancestors_and_depth() -> None:
    assert ws.ancestors("a/b/c") == ["a", "a/b"]
    assert ws.ancestors("c") == []
    assert ws.depth("") == 0 and ws.depth("a/b") == 2


# --- manifest ---------------------------------------------------------------------------------------------


def test_manifest_round_trip_is_stable() -> None:
    manifest = ws.Manifest(
        objects={
            "b/nb": ws.ManifestEntry("NOTEBOOK", "h1", modified_at=5, object_id=7, language="PYTHON"),
            "a.txt": ws.ManifestEntry("FILE", "h2", modified_at=6, object_id=8),
        },
        folders=frozenset({"b"}),
    )
    text = ws.manifest_to_json(manifest, "/Shared/x")
    assert ws.manifest_from_json(text) == manifest
    assert ws.manifest_to_json(ws.manifest_from_json(text), "/Shared/x") == text


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        b"\xff\xfe",
        "[]",
        '{"version": 99, "objects": {}}',
        '{"version": 1, "objects": []}',
        '{"version": 1, "objects": {"../x": {"object_type": "FILE", "sha256": "h"}}}',
        '{"version": 1, "objects": {"x": {"sha256": "h"}}}',
        '{"version": 1, "objects": {"x": {"object_type": "FILE", "sha256": "h", "modified_at": "soon"}}}',
        '{"version": 1, "objects": {}, "folders": ["a/../b"]}',
    ],
)
def test_corrupt_manifest_is_refused(text: str | bytes) -> None:
    with pytest.raises(ws.ManifestError):
        ws.manifest_from_json(text)


# --- plan -------------------------------------------------------------------------------------------------


def local_object(
    path: str, sha: str = "h", object_type: str = "NOTEBOOK", language: str | None = "PYTHON"
) -> ws.LocalObject:
    fmt = "SOURCE" if object_type == "NOTEBOOK" else "RAW"
    return ws.LocalObject(path, Path("/src") / path, object_type, fmt, language, sha, 1)


def local_tree(*items: ws.LocalObject) -> ws.LocalTree:
    objects = {item.relative_path: item for item in items}
    return ws.LocalTree(objects, frozenset(f for p in objects for f in ws.ancestors(p)))


def deployed(local: ws.LocalTree, *, folders: set[str] | None = None) -> tuple[ws.Manifest, ws.RemoteTree]:
    """A manifest and a remote tree as a previous deploy of `local` would have left them."""
    objects = {}
    remote = {}
    for index, (path, item) in enumerate(sorted(local.objects.items())):
        objects[path] = ws.ManifestEntry(
            item.object_type, item.sha256, modified_at=1000 + index, object_id=index, language=item.language
        )
        remote[path] = ws.RemoteObject(
            item.object_type, modified_at=1000 + index, object_id=index, language=item.language
        )
    for folder in local.folders:
        remote[folder] = ws.RemoteObject("DIRECTORY", object_id=500 + len(folder))
    manifest = ws.Manifest(objects, frozenset(local.folders if folders is None else folders))
    listed = frozenset({""} | set(local.folders))
    return manifest, ws.RemoteTree(remote, listed, root_exists=True)


def test_fresh_deploy_uploads_everything_and_creates_folders_parents_first() -> None:
    local = local_tree(local_object("a/b/c/nb"), local_object("a/x"), local_object("top"), local_object("z/y"))
    result = ws.plan(local, None, ws.RemoteTree())
    assert [u.relative_path for u in result.uploads] == ["a/b/c/nb", "a/x", "top", "z/y"]
    assert {u.reason for u in result.uploads} == {"no manifest"}
    assert result.folders_to_create == ["", "a", "z", "a/b", "a/b/c"]
    assert result.mkdirs == ["z", "a/b/c"]  # mkdirs creates the parents: one call per deepest new folder
    assert not result.deletes and not result.conflicts
    assert result.writes == 6


def test_existing_folders_are_not_created_again() -> None:
    local = local_tree(local_object("a/nb"), local_object("b/nb"))
    remote = ws.RemoteTree({"a": ws.RemoteObject("DIRECTORY")}, frozenset({"", "a"}), root_exists=True)
    assert ws.plan(local, None, remote).folders_to_create == ["b"]


def test_unchanged_deploy_plans_nothing() -> None:
    local = local_tree(
        local_object("a/nb"), local_object("a/f.txt", object_type="FILE", language=None), local_object("top")
    )
    manifest, remote = deployed(local)
    result = ws.plan(local, manifest, remote)
    assert result.empty and result.writes == 0
    assert result.skipped == ["a/f.txt", "a/nb", "top"]


def test_full_uploads_everything_even_when_unchanged() -> None:
    local = local_tree(local_object("a/nb"), local_object("top"))
    manifest, remote = deployed(local)
    result = ws.plan(local, manifest, remote, full=True)
    assert [(u.relative_path, u.reason) for u in result.uploads] == [("a/nb", "full deploy"), ("top", "full deploy")]
    assert result.folders_to_create == []


def test_local_change_new_object_and_language_change() -> None:
    old = local_tree(local_object("a/nb"), local_object("b"), local_object("c"))
    manifest, remote = deployed(old)
    new = local_tree(
        local_object("a/nb", sha="other"), local_object("b", language="SQL"), local_object("c"), local_object("d")
    )
    result = ws.plan(new, manifest, remote)
    assert [(u.relative_path, u.reason) for u in result.uploads] == [
        ("a/nb", "changed locally"),
        ("b", "changed locally"),
        ("d", "new"),
    ]
    assert result.skipped == ["c"]


def test_drift_in_workspace_is_detected() -> None:
    local = local_tree(local_object("edited"), local_object("recreated"), local_object("deleted"), local_object("same"))
    manifest, remote = deployed(local)
    objects = dict(remote.objects)
    objects["edited"] = dataclass_replace(objects["edited"], modified_at=999_999)
    objects["recreated"] = dataclass_replace(objects["recreated"], object_id=4242)
    del objects["deleted"]
    result = ws.plan(local, manifest, ws.RemoteTree(objects, remote.listed, True))
    assert [(u.relative_path, u.reason, u.replace) for u in result.uploads] == [
        ("deleted", "missing in workspace", False),
        ("edited", "changed in workspace", False),
        ("recreated", "changed in workspace", False),
    ]
    assert result.skipped == ["same"]


def test_type_changed_in_workspace_is_replaced_only_when_ours() -> None:
    local = local_tree(local_object("ours"), local_object("theirs"))
    manifest, remote = deployed(local_tree(local_object("ours")))
    objects = dict(remote.objects)
    objects["ours"] = ws.RemoteObject("FILE", modified_at=1, object_id=1)
    objects["theirs"] = ws.RemoteObject("FILE", modified_at=1, object_id=2)
    result = ws.plan(local, manifest, ws.RemoteTree(objects, remote.listed, True))
    assert [(u.relative_path, u.replace) for u in result.uploads] == [("ours", True)]
    assert result.conflicts == ["'theirs' is a file in the workspace that this deployment did not create"]
    assert result.writes == 2


def test_folder_in_the_way_is_a_conflict_never_deleted() -> None:
    local = local_tree(local_object("nb"))
    manifest, remote = deployed(local)
    objects = dict(remote.objects)
    objects["nb"] = ws.RemoteObject("DIRECTORY", object_id=9)
    result = ws.plan(local, manifest, ws.RemoteTree(objects, remote.listed, True))
    assert not result.uploads and not result.deletes
    assert result.conflicts == ["'nb' is a directory in the workspace that this deployment did not create"]


def test_local_folder_where_a_foreign_object_is_is_a_conflict() -> None:
    local = local_tree(local_object("pkg/nb"))
    remote = ws.RemoteTree({"pkg": ws.RemoteObject("NOTEBOOK")}, frozenset({""}), True)
    result = ws.plan(local, None, remote)
    assert result.conflicts == ["'pkg' is a notebook in the workspace but a folder locally"]


def test_own_notebook_replaced_by_local_folder_is_deleted_first() -> None:
    manifest, remote = deployed(local_tree(local_object("pkg")))
    local = local_tree(local_object("pkg/nb"))
    result = ws.plan(local, manifest, remote)
    assert [(d.relative_path, d.reason) for d in result.deletes] == [("pkg", "replaced by a folder")]
    assert result.folders_to_create == ["pkg"]
    assert [u.relative_path for u in result.uploads] == ["pkg/nb"]
    assert result.stale == []


def test_prune_deletes_only_recorded_objects_of_the_recorded_type() -> None:
    old = local_tree(
        local_object("keep"),
        local_object("gone"),
        local_object("retyped"),
        local_object("vanished"),
        local_object("old/nb"),
    )
    manifest, remote = deployed(old, folders={"old"})
    objects = dict(remote.objects)
    objects["retyped"] = ws.RemoteObject("FILE", modified_at=3, object_id=3)
    del objects["vanished"]
    objects["foreign"] = ws.RemoteObject("NOTEBOOK", modified_at=4, object_id=77)
    objects["old/foreign"] = ws.RemoteObject("NOTEBOOK", modified_at=4, object_id=78)
    remote = ws.RemoteTree(objects, remote.listed, True)
    local = local_tree(local_object("keep"))

    without = ws.plan(local, manifest, remote)
    assert without.deletes == [] and without.stale == ["gone", "old/nb"]
    assert without.folders_to_delete == []

    result = ws.plan(local, manifest, remote, prune=True)
    assert [d.relative_path for d in result.deletes] == ["gone", "old/nb"]
    assert result.folders_to_delete == []  # old/ still holds someone else's notebook
    assert result.stale == []


def test_prune_removes_emptied_recorded_folders_deepest_first() -> None:
    old = local_tree(local_object("a/b/nb"), local_object("a/nb2"), local_object("keep"))
    manifest, remote = deployed(old)
    local = local_tree(local_object("keep"))
    result = ws.plan(local, manifest, remote, prune=True)
    assert [d.relative_path for d in result.deletes] == ["a/b/nb", "a/nb2"]
    assert result.folders_to_delete == ["a/b", "a"]


def test_prune_keeps_folders_it_did_not_create() -> None:
    old = local_tree(local_object("a/nb"), local_object("keep"))
    manifest, remote = deployed(old, folders=set())
    result = ws.plan(local_tree(local_object("keep")), manifest, remote, prune=True)
    assert [d.relative_path for d in result.deletes] == ["a/nb"]
    assert result.folders_to_delete == []


def test_prune_without_manifest_deletes_nothing() -> None:
    remote = ws.RemoteTree({"old": ws.RemoteObject("NOTEBOOK")}, frozenset({""}), True)
    result = ws.plan(local_tree(local_object("new")), None, remote, prune=True)
    assert result.deletes == [] and result.folders_to_delete == []


def test_folders_to_list_covers_local_and_previous_deployment() -> None:
    manifest = ws.Manifest({"x/y/nb": ws.ManifestEntry("NOTEBOOK", "h")}, frozenset({"old"}))
    local = local_tree(local_object("a/b/nb"))
    assert ws.folders_to_list(local, manifest) == {"", "a", "a/b", "x", "x/y", "old"}
    assert ws.folders_to_list(local, None) == {"", "a", "a/b"}


# --- next manifest ----------------------------------------------------------------------------------------


def test_next_manifest_records_uploads_unlisted_and_keeps_stale_entries() -> None:
    old = local_tree(local_object("a/nb"), local_object("same"), local_object("stale"))
    manifest, remote = deployed(old, folders={"a", "gone-folder"})
    local = local_tree(local_object("a/nb", sha="new"), local_object("same"), local_object("b/new"))
    result = ws.plan(local, manifest, remote)
    new = ws.next_manifest(local, result, manifest, remote, uploaded_hashes={"b/new": "sent"})
    # Uploads are not re-read: the manifest written after them dates them.
    assert new.objects["a/nb"] == ws.ManifestEntry("NOTEBOOK", "new", language="PYTHON", unlisted=True)
    assert new.objects["b/new"].sha256 == "sent" and new.objects["b/new"].unlisted
    assert new.objects["same"] == manifest.objects["same"]
    assert new.objects["stale"] == manifest.objects["stale"]
    assert new.folders == {"a", "b"}  # b created now; gone-folder no longer exists


def test_unlisted_entries_drift_only_when_modified_after_the_manifest() -> None:
    local = local_tree(local_object("edited"), local_object("same"), local_object("retyped"))
    manifest, remote = deployed(local)
    unlisted = {
        path: dataclass_replace(e, modified_at=None, object_id=None, unlisted=True)
        for path, e in manifest.objects.items()
    }
    manifest = ws.Manifest(unlisted, manifest.folders)
    objects = dict(remote.objects)
    objects["edited"] = dataclass_replace(objects["edited"], modified_at=5001)
    objects["same"] = dataclass_replace(objects["same"], modified_at=5000, object_id=77)  # written before it
    objects["retyped"] = ws.RemoteObject("FILE", modified_at=10)
    tree = ws.RemoteTree(objects, remote.listed, True, manifest_modified_at=5000)
    result = ws.plan(local, manifest, tree)
    assert [(u.relative_path, u.reason) for u in result.uploads] == [
        ("edited", "changed in workspace"),
        ("retyped", "changed in workspace"),
    ]
    assert result.skipped == ["same"]
    # Without the manifest's time (or the object's) only the type can show drift.
    undated = ws.plan(local, manifest, dataclass_replace(tree, manifest_modified_at=None))
    assert [u.relative_path for u in undated.uploads] == ["retyped"]


def test_an_unlisted_entry_is_settled_only_when_the_manifest_is_rewritten() -> None:
    local = local_tree(local_object("nb"))
    manifest, remote = deployed(local)
    entry = dataclass_replace(manifest.objects["nb"], modified_at=None, object_id=None, unlisted=True)
    manifest = ws.Manifest({"nb": entry}, manifest.folders)
    tree = dataclass_replace(remote, manifest_modified_at=2000)
    result = ws.plan(local, manifest, tree)
    assert result.empty
    kept = ws.next_manifest(local, result, manifest, tree, to_write=False)
    assert kept.objects["nb"] == entry and kept.generation == manifest.generation
    settled = ws.next_manifest(local, result, manifest, tree)
    assert settled.objects["nb"] == ws.ManifestEntry("NOTEBOOK", "h", 1000, 0, "PYTHON")
    assert settled.generation == manifest.generation + 1


def test_manifest_json_round_trips_unlisted_and_omits_it_when_false() -> None:
    manifest = ws.Manifest(
        {
            "nb": ws.ManifestEntry("NOTEBOOK", "h", language="PYTHON", unlisted=True),
            "f": ws.ManifestEntry("FILE", "g", modified_at=3, object_id=4),
        }
    )
    text = ws.manifest_to_json(manifest, "/Shared/x")
    assert '"unlisted": true' in text and text.count("unlisted") == 1
    assert ws.manifest_from_json(text) == manifest


def test_next_manifest_refuses_a_skipped_object_the_workspace_does_not_list() -> None:
    local = local_tree(local_object("nb"))
    manifest, remote = deployed(local)
    result = ws.plan(local, manifest, remote)
    with pytest.raises(OperationFailed, match="does not list it"):
        ws.next_manifest(local, result, manifest, ws.RemoteTree(root_exists=True))


def test_unchanged_deploy_produces_identical_manifest_text() -> None:
    local = local_tree(local_object("a/nb"), local_object("top"))
    manifest, remote = deployed(local)
    result = ws.plan(local, manifest, remote)
    new = ws.next_manifest(local, result, manifest, remote, to_write=False)
    assert ws.manifest_to_json(new, "/Shared/x") == ws.manifest_to_json(manifest, "/Shared/x")


def dataclass_replace(obj, **changes):
    import dataclasses

    return dataclasses.replace(obj, **changes)


# --- assembling listings ------------------------------------------------------------------------------------


def info(path: str, object_type: str, modified_at: int | None = None, object_id: int = 1) -> dict:
    return {
        "path": f"/Shared/app/{path}",
        "object_type": object_type,
        "modified_at": modified_at,
        "object_id": object_id,
    }


def test_assemble_tree_accepts_listings_in_any_order_and_skips_the_manifest() -> None:
    listings = {
        "a/b": [info("a/b/nb", "NOTEBOOK", 7, 3)],
        "": [info("a", "DIRECTORY"), info("top", "FILE", 5, 2), info(ws.MANIFEST_NAME, "FILE")],
        "a": [info("a/b", "DIRECTORY")],
    }
    tree = ws.assemble_tree(listings)
    assert tree.root_exists and tree.listed == {"", "a", "a/b"}
    assert tree.objects["a/b/nb"] == ws.RemoteObject("NOTEBOOK", 7, 3)
    assert set(tree.objects) == {"a", "a/b", "a/b/nb", "top"}


def test_assemble_tree_ignores_a_listing_of_a_non_folder_and_of_orphans() -> None:
    listings = {
        "": [info("pkg", "NOTEBOOK")],
        "pkg": [info("pkg", "NOTEBOOK")],  # list on a notebook path answers the notebook itself
        "gone/sub": [info("gone/sub/x", "FILE")],  # parent not listed
        "missing": None,
    }
    tree = ws.assemble_tree(listings)
    assert set(tree.objects) == {"pkg"} and tree.listed == {""}


def test_assemble_tree_without_root_is_empty() -> None:
    assert ws.assemble_tree({"": None, "a": [info("a/x", "FILE")]}) == ws.RemoteTree()


# --- apply/deploy order, with a recording stand-in for the client -----------------------------------------


class RecordingWorkspace:
    """A minimal in-memory workspace API recording every call (order matters for these tests)."""

    def __init__(self, fail_import_of: str | None = None) -> None:
        from cicdkit.errors import NotFound

        self.not_found = NotFound
        self.objects: dict[str, dict] = {}
        self.calls: list[tuple[str, str]] = []
        self.fail_import_of = fail_import_of
        self.clock = 0

    def _info(self, path: str) -> dict:
        return {"path": path, **self.objects[path]}

    def list(self, path: str) -> list[dict]:
        self.calls.append(("list", path))
        if path not in self.objects:
            raise self.not_found("missing", status=404)
        if self.objects[path]["object_type"] != "DIRECTORY":
            return [self._info(path)]  # like the service: a list on a notebook answers the notebook
        return [self._info(p) for p in sorted(self.objects) if p.rsplit("/", 1)[0] == path]

    def export(self, path: str, format: str = "SOURCE") -> bytes:
        self.calls.append(("export", path))
        if path not in self.objects:
            raise self.not_found("missing", status=404)
        return self.objects[path]["content"]

    def import_(self, path: str, content: bytes, *, format: str, language: str | None, overwrite: bool) -> None:
        self.calls.append(("import", path))
        if path == self.fail_import_of:
            raise OperationFailed(f"POST import {path}: boom [500]")
        self.clock += 1
        object_type = "NOTEBOOK" if format in ("SOURCE", "JUPYTER") else "FILE"
        self.objects[path] = {
            "object_type": object_type,
            "content": content,
            "modified_at": self.clock,
            "object_id": hash(path) % 1000,
        }

    def mkdirs(self, path: str) -> None:
        self.calls.append(("mkdirs", path))
        parts = path.split("/")
        for index in range(2, len(parts) + 1):
            self.objects.setdefault("/".join(parts[:index]), {"object_type": "DIRECTORY", "object_id": index})

    def delete(self, path: str, *, recursive: bool = False) -> None:
        self.calls.append(("delete", path))
        self.objects.pop(path, None)


class RecordingClient:
    def __init__(self, **kwargs) -> None:
        self.workspace = RecordingWorkspace(**kwargs)


def test_deploy_writes_folders_parents_first_and_the_manifest_last(tmp_path: Path) -> None:
    write(tmp_path, "a/b/nb.py", PY_HEADER + "x\n")
    write(tmp_path, "a/c.txt", "c")
    client = RecordingClient()
    result = ws.deploy(client, ws.scan(tmp_path), "/Shared/app", concurrency=1)
    writes = [call for call in client.workspace.calls if call[0] in ("import", "mkdirs", "delete")]
    assert writes[0] == ("mkdirs", "/Shared/app/a/b")  # one call creates the deployment folder, a and a/b
    assert writes[-1] == ("import", "/Shared/app/.deploy-manifest.json")
    assert result.manifest_written and len(result.plan.uploads) == 2 and len(writes) == 4
    assert result.written.folders_created == {"", "a", "a/b"}
    assert "list" not in [call[0] for call in client.workspace.calls[client.workspace.calls.index(writes[0]) :]]

    client.workspace.calls.clear()
    again = ws.deploy(client, ws.scan(tmp_path), "/Shared/app", concurrency=1)
    assert again.plan.empty and not again.manifest_written
    assert {call[0] for call in client.workspace.calls} == {"list", "export"}


def test_an_edit_after_a_deploy_is_redeployed_and_the_manifest_rewritten(tmp_path: Path) -> None:
    write(tmp_path, "a/nb.py", PY_HEADER + "x\n")
    write(tmp_path, "a/other.py", PY_HEADER + "y\n")
    client = RecordingClient()
    ws.deploy(client, ws.scan(tmp_path), "/Shared/app", concurrency=2)
    client.workspace.import_("/Shared/app/a/nb", b"edited", format="SOURCE", language="PYTHON", overwrite=True)
    again = ws.deploy(client, ws.scan(tmp_path), "/Shared/app", concurrency=2)
    assert [(u.relative_path, u.reason) for u in again.plan.uploads] == [("a/nb", "changed in workspace")]
    assert again.manifest_written and client.workspace.objects["/Shared/app/a/nb"]["content"].endswith(b"x\n")
    stored = ws.manifest_from_json(client.workspace.objects["/Shared/app/.deploy-manifest.json"]["content"])
    assert stored.objects["a/nb"].unlisted and not stored.objects["a/other"].unlisted  # settled from the listing
    assert ws.deploy(client, ws.scan(tmp_path), "/Shared/app").plan.empty


def test_a_full_deploy_of_unchanged_content_rewrites_the_manifest(tmp_path: Path) -> None:
    """The same text, written again: its modified_at must date the new uploads, or they would look edited."""
    write(tmp_path, "nb.py", PY_HEADER + "x\n")
    client = RecordingClient()
    ws.deploy(client, ws.scan(tmp_path), "/Shared/app", full=True)
    for _ in range(2):
        assert ws.deploy(client, ws.scan(tmp_path), "/Shared/app", full=True).manifest_written
    assert ws.deploy(client, ws.scan(tmp_path), "/Shared/app").plan.empty
    # Its text changes at every write (a workspace may keep the time of a file re-imported with the same bytes).
    stored = ws.manifest_from_json(client.workspace.objects["/Shared/app/.deploy-manifest.json"]["content"])
    assert stored.generation == 3


def test_a_manifest_generation_must_be_a_non_negative_integer() -> None:
    base = '{"version": 1, "objects": {}, "folders": [], "generation": %s}'
    assert ws.manifest_from_json(base % "4").generation == 4
    assert ws.manifest_from_json('{"version": 1, "objects": {}}').generation == 0  # written before generations
    for bad in ('"4"', "-1", "true", "1.5"):
        with pytest.raises(ws.ManifestError, match="generation"):
            ws.manifest_from_json(base % bad)


def test_failed_upload_leaves_the_previous_manifest(tmp_path: Path) -> None:
    write(tmp_path, "nb1.py", PY_HEADER + "1\n")
    write(tmp_path, "nb2.py", PY_HEADER + "2\n")
    client = RecordingClient()
    ws.deploy(client, ws.scan(tmp_path), "/Shared/app", concurrency=1)
    before = client.workspace.objects["/Shared/app/.deploy-manifest.json"]["content"]
    write(tmp_path, "nb1.py", PY_HEADER + "1 changed\n")
    write(tmp_path, "nb2.py", PY_HEADER + "2 changed\n")
    client.workspace.fail_import_of = "/Shared/app/nb2"
    with pytest.raises(OperationFailed, match="boom"):
        ws.deploy(client, ws.scan(tmp_path), "/Shared/app", concurrency=1)
    assert client.workspace.objects["/Shared/app/.deploy-manifest.json"]["content"] == before

    client.workspace.fail_import_of = None
    repaired = ws.deploy(client, ws.scan(tmp_path), "/Shared/app", concurrency=1)
    assert {u.relative_path: u.reason for u in repaired.plan.uploads} == {
        "nb1": "changed locally",
        "nb2": "changed locally",
    }
    assert client.workspace.objects["/Shared/app/nb2"]["content"].endswith(b"2 changed\n")


def test_dry_run_only_reads(tmp_path: Path) -> None:
    write(tmp_path, "nb.py", PY_HEADER)
    client = RecordingClient()
    result = ws.deploy(client, ws.scan(tmp_path), "/Shared/app", dry_run=True)
    assert [u.relative_path for u in result.plan.uploads] == ["nb"]
    assert {call[0] for call in client.workspace.calls} <= {"list", "export"}


def test_not_a_folder_recognises_a_listing_of_the_path_itself() -> None:
    assert ws.not_a_folder("/Workspace/Shared/app", [{"path": "/Shared/app", "object_type": "NOTEBOOK"}]) == "NOTEBOOK"
    assert ws.not_a_folder("/Shared/app", [{"path": "/Shared/app/x", "object_type": "NOTEBOOK"}]) is None
    assert ws.not_a_folder("/Shared/app", []) is None and ws.not_a_folder("/Shared/app", None) is None


def test_deploy_into_a_notebook_path_is_refused_before_writing(tmp_path: Path) -> None:
    write(tmp_path, "nb.py", PY_HEADER)
    client = RecordingClient()
    client.workspace.mkdirs("/Shared")
    client.workspace.import_("/Shared/app", b"x", format="SOURCE", language="PYTHON", overwrite=True)
    client.workspace.calls.clear()
    with pytest.raises(OperationFailed, match="is a notebook, not a folder"):
        ws.deploy(client, ws.scan(tmp_path), "/Shared/app")
    assert {call[0] for call in client.workspace.calls} <= {"list", "export"}
