"""Incremental notebook deployment: what is local, what the workspace holds, and what to change.

This module owns the decisions of `deploy_notebooks.py` as pure functions over dataclasses (scan the source
tree, read and write the deployment manifest, `plan` the changes, compute the next manifest) plus thin I/O
helpers that take a Databricks client as a parameter (it never imports `databricks`: the scripts connect).

The deployment manifest is a workspace FILE, `<WORKSPACE_DIR>/.deploy-manifest.json`, so the deploy state
lives next to the deployment and survives a fresh CI runner. For every object the deployment owns it records
the object type, the SHA-256 of the local source and the object's `modified_at`/`object_id` as the workspace
reported them right after the upload. A deploy then:

* uploads an object when it is new, its local content changed, or it drifted in the workspace (missing,
  other type, `modified_at` or `object_id` differ from the manifest: someone edited or re-created it);
* deletes (with ``--prune`` only) objects the previous manifest recorded that no longer exist locally, and
  only while they are still of the recorded type: nothing the deployment did not create is ever deleted;
* writes the manifest last, so an interrupted deploy leaves the previous manifest, and the next run sees the
  half-done uploads as drift and redoes them;
* records every write the workspace confirmed as it returns (`Written`), so a deploy that fails half-way can say
  exactly what it changed.

It does not own HTTP, retries or auth (`databricks.py`), nor output (`summary.py`, `ado.py`).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import posixpath
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import CancelledError, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import discovery
from .errors import ApiError, InputError, NotFound, OperationFailed

MANIFEST_NAME = ".deploy-manifest.json"
MANIFEST_VERSION = 1
HASH_CHUNK = 1024 * 1024
# Workspace import refuses more than 10 MB of content (notebooks and files alike).
MAX_IMPORT_BYTES = 10 * 1024 * 1024

NOTEBOOK = "NOTEBOOK"
FILE = "FILE"
DIRECTORY = "DIRECTORY"

# extension -> (language, header line that makes a source file a notebook)
NOTEBOOK_SOURCES: dict[str, tuple[str, str]] = {
    ".py": ("PYTHON", "# Databricks notebook source"),
    ".sql": ("SQL", "-- Databricks notebook source"),
    ".scala": ("SCALA", "// Databricks notebook source"),
    ".r": ("R", "# Databricks notebook source"),
}
SKIPPED_NAMES = frozenset({"__pycache__"})


# --- records ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalObject:
    """One deployable file: where it lands (relative to WORKSPACE_DIR, '/'-separated) and how it is imported."""

    relative_path: str
    source: Path
    object_type: str  # NOTEBOOK or FILE
    format: str  # SOURCE (notebook source), JUPYTER (.ipynb) or RAW (plain file)
    language: str | None
    sha256: str
    size: int


@dataclass(frozen=True)
class LocalTree:
    """The scanned source folder: objects by relative workspace path, and the folders that hold them."""

    objects: dict[str, LocalObject]
    folders: frozenset[str]  # relative folder paths holding objects, with their ancestors; never ""


@dataclass(frozen=True)
class ManifestEntry:
    """What the previous deployment put at one path, and how the workspace described it afterwards."""

    object_type: str
    sha256: str
    modified_at: int | None = None
    object_id: int | None = None
    language: str | None = None


@dataclass(frozen=True)
class Manifest:
    """The deployment manifest stored in the workspace next to the deployment."""

    objects: dict[str, ManifestEntry] = field(default_factory=dict)
    folders: frozenset[str] = frozenset()  # folders the deployments created (candidates for prune)


@dataclass(frozen=True)
class RemoteObject:
    """One entry of a `workspace/list` answer."""

    object_type: str
    modified_at: int | None = None
    object_id: int | None = None
    language: str | None = None


@dataclass(frozen=True)
class RemoteTree:
    """What the workspace holds below WORKSPACE_DIR, as far as the deployment looked.

    ``objects`` maps relative paths to entries (folders included, as DIRECTORY); ``listed`` are the folders
    whose full content is known ("" is WORKSPACE_DIR itself); ``root_exists`` says whether WORKSPACE_DIR is there.
    """

    objects: dict[str, RemoteObject] = field(default_factory=dict)
    listed: frozenset[str] = frozenset()
    root_exists: bool = False

    def children(self, folder: str) -> list[str]:
        prefix = f"{folder}/" if folder else ""
        return [path for path in self.objects if path.startswith(prefix) and "/" not in path[len(prefix):]]


@dataclass(frozen=True)
class Upload:
    """Import one local object; ``replace`` deletes what is at the path first (an object of another type)."""

    relative_path: str
    local: LocalObject
    reason: str
    replace: bool = False


@dataclass(frozen=True)
class Delete:
    """Delete one object the previous deployment created."""

    relative_path: str
    object_type: str
    reason: str


@dataclass
class Plan:
    """Everything a deploy will change, in the order it is applied: deletes, folders, uploads, folder deletes."""

    uploads: list[Upload] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    deletes: list[Delete] = field(default_factory=list)
    folders_to_create: list[str] = field(default_factory=list)  # parents before children; "" = WORKSPACE_DIR
    folders_to_delete: list[str] = field(default_factory=list)  # children before parents
    stale: list[str] = field(default_factory=list)  # recorded, gone locally, kept (no --prune)
    conflicts: list[str] = field(default_factory=list)  # objects in the way that are not ours to remove

    @property
    def writes(self) -> int:
        """Number of write calls the plan needs, not counting the manifest."""
        replaced = sum(1 for upload in self.uploads if upload.replace)
        return (
            len(self.uploads) + replaced + len(self.deletes) + len(self.folders_to_create) + len(self.folders_to_delete)
        )

    @property
    def empty(self) -> bool:
        return self.writes == 0


# --- paths --------------------------------------------------------------------------------------------------


def check_workspace_dir(path: str) -> str:
    """Return WORKSPACE_DIR normalised (no trailing '/'), or raise InputError if it is not a safe target.

    Allowed: a folder below ``/Shared/``, ``/Users/<user>/`` or ``/Workspace/<root>/`` (``/Workspace/Users/<user>/``
    for user homes). Refused: relative paths, ``.``/``..``/empty segments, the roots themselves, and Repos
    (Git folders are managed by Git, not by deployments).
    """
    text = (path or "").strip()
    fix = "use a folder such as /Workspace/Shared/<project>/notebooks or /Users/<you>/<project>"
    if not text.startswith("/"):
        raise InputError(f"workspace folder {path!r} is not an absolute path", hint=fix)
    if "${" in text:
        raise InputError(f"workspace folder {path!r} holds an unresolved ${{...}} reference",
                         hint="set the variable (--var NAME=VALUE) or give the folder explicitly")
    parts = text.rstrip("/").split("/")[1:]
    if any(part in ("", ".", "..") for part in parts):
        raise InputError(f"workspace folder {path!r} contains an empty, '.' or '..' segment", hint=fix)
    inner = parts[1:] if parts and parts[0] == "Workspace" else parts
    if inner and inner[0] == "Repos":
        raise InputError(f"workspace folder {path!r} is inside Repos, which Git manages", hint=fix)
    minimum = {"Shared": 2, "Users": 3}
    if not parts or parts[0] not in ("Workspace", "Shared", "Users"):
        raise InputError(f"workspace folder {path!r} is outside /Workspace, /Users and /Shared", hint=fix)
    if not inner or len(inner) < minimum.get(inner[0], 2):
        raise InputError(f"workspace folder {path!r} is a root folder; deploy into a folder below it", hint=fix)
    return "/" + "/".join(parts)


def join(workspace_dir: str, relative_path: str) -> str:
    return f"{workspace_dir}/{relative_path}" if relative_path else workspace_dir


def parent_of(relative_path: str) -> str:
    return posixpath.dirname(relative_path)


def ancestors(relative_path: str) -> list[str]:
    """Relative folders above a path, nearest last: 'a/b/c' -> ['a', 'a/b']."""
    parts = relative_path.split("/")[:-1]
    return ["/".join(parts[: index + 1]) for index in range(len(parts))]


def depth(relative_path: str) -> int:
    return 0 if not relative_path else relative_path.count("/") + 1


# --- local scan ---------------------------------------------------------------------------------------------


def hash_file(path: Path) -> tuple[str, int]:
    """SHA-256 hex digest and size of a file, read in blocks (memory does not grow with the file)."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while block := handle.read(HASH_CHUNK):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def classify(name: str, first_line: str) -> tuple[str, str, str, str | None]:
    """(workspace name, object type, import format, language) for a file name and its first line.

    Source files that start with the Databricks header become notebooks named without the extension;
    ``.ipynb`` files become Jupyter notebooks named without ``.ipynb``; everything else is a workspace file
    that keeps its name (a ``.py`` module without the header stays ``x.py``).
    """
    stem, extension = os.path.splitext(name)
    extension = extension.lower()
    if extension == ".ipynb" and stem:
        return stem, NOTEBOOK, "JUPYTER", None
    if extension in NOTEBOOK_SOURCES and stem:
        language, header = NOTEBOOK_SOURCES[extension]
        if first_line.lstrip("\ufeff").strip() == header:
            return stem, NOTEBOOK, "SOURCE", language
    return name, FILE, "RAW", None


def _first_line(path: Path) -> str:
    with open(path, "rb") as handle:
        return handle.readline(200).decode("utf-8", errors="replace")


def scan(src_dir: Path) -> LocalTree:
    """Walk SRC_DIR (skipping dot files/folders and __pycache__) and classify every file.

    Raises InputError for a missing folder, an unreadable file, a file above the 10 MB import limit, two
    files that would land on the same workspace path (``a.py`` and ``a.sql`` notebooks, a notebook and a folder),
    or a symlink that `discovery.resolve_in_root` refuses (outside SRC_DIR, dangling, a loop). A linked file
    inside SRC_DIR is deployed with the target's content under the link's name; linked folders are not entered.
    """
    root = Path(src_dir)
    if not root.is_dir():
        raise InputError(f"source folder {str(src_dir)!r} does not exist or is not a folder")
    objects: dict[str, LocalObject] = {}
    origins: dict[str, Path] = {}

    def fail_walk(error: OSError) -> None:
        raise InputError(f"cannot read {error.filename}: {error.strerror}")

    for folder, dirnames, filenames in os.walk(root, onerror=fail_walk):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in SKIPPED_NAMES)
        for dirname in dirnames:
            if os.path.islink(os.path.join(folder, dirname)):
                discovery.resolve_in_root(Path(folder) / dirname, root)  # checked; os.walk does not enter it
        relative_folder = Path(folder).relative_to(root).as_posix()
        relative_folder = "" if relative_folder == "." else relative_folder
        for filename in sorted(filenames):
            if filename.startswith(".") or filename.endswith(".pyc"):
                continue
            source = Path(folder) / filename
            if os.path.islink(source):
                discovery.resolve_in_root(source, root)  # before anything reads through the link
            if not source.is_file():
                continue
            try:
                name, object_type, import_format, language = classify(filename, _first_line(source))
                sha256, size = hash_file(source)
            except OSError as error:
                raise InputError(f"cannot read {source}: {error.strerror or error}") from None
            if size > MAX_IMPORT_BYTES:
                raise InputError(
                    f"{source} is {size} bytes; workspace import takes at most {MAX_IMPORT_BYTES} bytes",
                    hint="put large files in a volume with upload_files.py",
                )
            relative_path = f"{relative_folder}/{name}" if relative_folder else name
            if relative_path in origins:
                raise InputError(
                    f"{origins[relative_path]} and {source} would both be deployed as {relative_path!r}",
                    hint="rename one of them",
                )
            origins[relative_path] = source
            objects[relative_path] = LocalObject(relative_path, source, object_type, import_format, language, sha256, size)
    folders = {folder for path in objects for folder in ancestors(path)}
    for folder in folders:
        if folder in objects:
            raise InputError(
                f"{origins[folder]} would be deployed as {folder!r}, which is also a folder", hint="rename one of them"
            )
    return LocalTree(objects=objects, folders=frozenset(folders))


# --- manifest -----------------------------------------------------------------------------------------------


class ManifestError(ValueError):
    """The stored manifest cannot be used (not JSON, wrong version or shape)."""


def manifest_to_json(manifest: Manifest, workspace_dir: str) -> str:
    """Stable JSON text (sorted keys, no timestamps) so an unchanged deployment writes an identical manifest."""
    document = {
        "version": MANIFEST_VERSION,
        "tool": "databricks-ci-cd deploy_notebooks.py",
        "workspace_dir": workspace_dir,
        "folders": sorted(manifest.folders),
        "objects": {
            path: {key: value for key, value in dataclasses.asdict(entry).items() if value is not None}
            for path, entry in sorted(manifest.objects.items())
        },
    }
    return json.dumps(document, indent=1, sort_keys=True) + "\n"


def manifest_from_json(text: str | bytes) -> Manifest:
    """Parse a stored manifest; raise ManifestError when it is corrupt or of another version."""
    try:
        document = json.loads(text)
    except (ValueError, UnicodeDecodeError) as error:
        raise ManifestError(f"not JSON ({error})") from None
    if not isinstance(document, dict) or document.get("version") != MANIFEST_VERSION:
        raise ManifestError("unknown manifest version")
    objects_json = document.get("objects")
    folders_json = document.get("folders", [])
    if not isinstance(objects_json, dict) or not isinstance(folders_json, list):
        raise ManifestError("'objects' must be a mapping and 'folders' a list")
    objects: dict[str, ManifestEntry] = {}
    for path, entry in objects_json.items():
        if not _safe_relative(path) or not isinstance(entry, dict):
            raise ManifestError(f"bad entry {path!r}")
        try:
            objects[path] = ManifestEntry(
                object_type=str(entry["object_type"]),
                sha256=str(entry["sha256"]),
                modified_at=_optional_int(entry.get("modified_at")),
                object_id=_optional_int(entry.get("object_id")),
                language=entry.get("language"),
            )
        except (KeyError, TypeError, ValueError):
            raise ManifestError(f"bad entry {path!r}") from None
    if not all(isinstance(folder, str) and _safe_relative(folder) for folder in folders_json):
        raise ManifestError("bad folder entry")
    return Manifest(objects=objects, folders=frozenset(folders_json))


def _safe_relative(path: object) -> bool:
    return isinstance(path, str) and bool(path) and all(part not in ("", ".", "..") for part in path.split("/"))


def _optional_int(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("boolean is not an int")
    return int(value)


# --- planning -----------------------------------------------------------------------------------------------


def folders_to_list(local: LocalTree, manifest: Manifest | None) -> frozenset[str]:
    """Folders whose listing a deploy needs: every local folder, and what the previous deployment touched."""
    wanted = {""} | set(local.folders)
    if manifest is not None:
        wanted |= set(manifest.folders)
        for path in manifest.objects:
            wanted.update(ancestors(path))
    return frozenset(wanted)


def _drifted(entry: ManifestEntry, remote: RemoteObject) -> bool:
    if remote.object_type != entry.object_type:
        return True
    if entry.object_id is not None and remote.object_id is not None and remote.object_id != entry.object_id:
        return True
    return entry.modified_at is not None and remote.modified_at != entry.modified_at


def plan(
    local: LocalTree,
    manifest: Manifest | None,
    remote: RemoteTree,
    *,
    full: bool = False,
    prune: bool = False,
) -> Plan:
    """Decide what a deploy changes. ``manifest`` None means no usable manifest: a fresh deployment.

    Uploads: every object with ``full``; else objects that are new, changed locally (hash, type or language)
    or drifted in the workspace (missing, other type, other modified_at/object_id). Deletes: only paths the
    previous manifest recorded, gone locally, still of the recorded type (``prune``), or a recorded object that
    sits where a local folder now is. Anything else in the way is a conflict: the deploy refuses to start.
    """
    previous = manifest.objects if manifest is not None else {}
    result = Plan()
    deleted: set[str] = set()

    # Folders: an object in the way is removed only if the previous deployment put it there.
    for folder in sorted(local.folders, key=lambda path: (depth(path), path)):
        found = remote.objects.get(folder)
        if found is None:
            continue
        if found.object_type == DIRECTORY:
            continue
        entry = previous.get(folder)
        if entry is not None and entry.object_type == found.object_type:
            result.deletes.append(Delete(folder, found.object_type, "replaced by a folder"))
            deleted.add(folder)
        else:
            result.conflicts.append(f"{folder!r} is a {found.object_type.lower()} in the workspace but a folder locally")
    for folder in sorted({""} | set(local.folders), key=lambda path: (depth(path), path)):
        exists = remote.root_exists if folder == "" else remote.objects.get(folder, RemoteObject("")).object_type == DIRECTORY
        if not exists:
            result.folders_to_create.append(folder)

    for path, item in sorted(local.objects.items()):
        found = remote.objects.get(path)
        entry = previous.get(path)
        replace = False
        if found is not None and found.object_type != item.object_type:
            # Only at a path the previous deployment owned; never over a folder (that would be a recursive delete).
            if entry is not None and found.object_type in (NOTEBOOK, FILE):
                replace = True
            else:
                result.conflicts.append(
                    f"{path!r} is a {found.object_type.lower()} in the workspace that this deployment did not create"
                )
                continue
        if full:
            reason = "full deploy"
        elif entry is None:
            reason = "new" if manifest is not None else "no manifest"
        elif (entry.sha256, entry.object_type, entry.language) != (item.sha256, item.object_type, item.language):
            reason = "changed locally"
        elif found is None:
            reason = "missing in workspace"
        elif _drifted(entry, found):
            reason = "changed in workspace"
        else:
            result.skipped.append(path)
            continue
        result.uploads.append(Upload(path, item, reason, replace=replace))

    for path, entry in sorted(previous.items()):
        if path in local.objects or path in deleted:
            continue
        found = remote.objects.get(path)
        if found is None or found.object_type != entry.object_type or entry.object_type not in (NOTEBOOK, FILE):
            continue  # already gone, or replaced by something that is no longer ours: forget it
        if prune:
            result.deletes.append(Delete(path, entry.object_type, "gone locally"))
            deleted.add(path)
        else:
            result.stale.append(path)

    if prune and manifest is not None:
        result.folders_to_delete = _folders_to_prune(local, manifest, remote, deleted)
    return result


def _folders_to_prune(local: LocalTree, manifest: Manifest, remote: RemoteTree, deleted: set[str]) -> list[str]:
    """Recorded folders gone locally that will be empty once the planned deletes are done, deepest first."""
    removable: list[str] = []
    gone = set(deleted)
    for folder in sorted(manifest.folders, key=lambda path: (-depth(path), path)):
        if folder in local.folders or folder not in remote.listed:
            continue
        found = remote.objects.get(folder)
        if found is None or found.object_type != DIRECTORY:
            continue
        if all(child in gone for child in remote.children(folder)):
            removable.append(folder)
            gone.add(folder)
    return removable


def next_manifest(
    local: LocalTree,
    planned: Plan,
    manifest: Manifest | None,
    before: RemoteTree,
    after: dict[str, RemoteObject],
    *,
    uploaded_hashes: dict[str, str] | None = None,
) -> Manifest:
    """The manifest to store after applying ``planned``.

    ``after`` holds the workspace's description of the uploaded objects (re-listed after the upload);
    skipped objects keep their listing from ``before``. Stale objects kept without ``--prune`` stay recorded,
    so a later ``--prune`` can still remove them. Raises OperationFailed if an uploaded object is not there.
    """
    previous = manifest.objects if manifest is not None else {}
    uploaded = {upload.relative_path for upload in planned.uploads}
    hashes = uploaded_hashes or {}
    objects: dict[str, ManifestEntry] = {}
    for path, item in local.objects.items():
        found = after.get(path) if path in uploaded else before.objects.get(path)
        if found is None or found.object_type != item.object_type:
            raise OperationFailed(f"{path!r} was uploaded but the workspace does not list it as a {item.object_type.lower()}")
        objects[path] = ManifestEntry(
            object_type=item.object_type,
            sha256=hashes.get(path, item.sha256),
            modified_at=found.modified_at,
            object_id=found.object_id,
            language=item.language,
        )
    for path in planned.stale:
        objects[path] = previous[path]
    created = set(planned.folders_to_create) - {""}
    kept = set(manifest.folders) if manifest is not None else set()
    kept -= set(planned.folders_to_delete)
    kept = {folder for folder in kept if folder in local.folders or before.objects.get(folder, RemoteObject("")).object_type == DIRECTORY}
    return Manifest(objects=objects, folders=frozenset(created | kept))


# --- I/O against the workspace (the client comes from dbclient.connect in the script) ---------------------

Progress = Callable[[int, int], None]


@dataclass
class Written:
    """The writes of a deploy that the workspace confirmed, each added when its call returned (calls run
    concurrently), and the plan they belong to (None until planned).

    A failed deploy's summary is built from it, so it counts exactly what landed before the failure. A call whose
    answer never came is not counted: it may or may not have landed, and the next deploy repairs either case.
    Paths are relative to WORKSPACE_DIR ("" is WORKSPACE_DIR itself), as in the `Plan`.
    """

    plan: Plan | None = None
    deletes: set[str] = field(default_factory=set)  # planned deletes done
    replaced: set[str] = field(default_factory=set)  # objects of another type deleted to make room for an upload
    folders_created: set[str] = field(default_factory=set)
    uploads: set[str] = field(default_factory=set)
    folders_deleted: set[str] = field(default_factory=set)  # folders emptied by --prune and removed (not the ones left)
    manifest: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, kind: str, relative_path: str) -> None:
        with self._lock:
            getattr(self, kind).add(relative_path)


@dataclass
class DeployResult:
    """What a deploy did (or, with dry_run, would do)."""

    workspace_dir: str
    plan: Plan
    manifest_note: str  # how the previous manifest was found: "read", "none found: ...", "unreadable (...): ..."
    manifest_written: bool = False
    dry_run: bool = False
    list_calls: int = 0
    written: Written = field(default_factory=Written)


def _run_all(tasks: Iterable[Callable[[], Any]], concurrency: int, progress: Callable[[], None] | None = None) -> list[Any]:
    """Run tasks on a bounded pool; on the first failure stop starting new ones and raise it after the rest settle."""
    tasks = list(tasks)
    if not tasks:
        return []
    results: list[Any] = [None] * len(tasks)
    failures: list[BaseException] = []
    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(tasks)))) as pool:
        futures = {pool.submit(task): index for index, task in enumerate(tasks)}
        for future in _as_completed(futures):
            error = future.exception()
            if error is not None:
                if not failures:
                    for pending in futures:
                        pending.cancel()
                failures.append(error)
                continue
            results[futures[future]] = future.result()
            if progress is not None:
                progress()
    if failures:
        first = failures[0]
        if len(failures) > 1 and isinstance(first, OperationFailed):
            raise OperationFailed(f"{first.message} (and {len(failures) - 1} more failed calls)", hint=first.hint) from first
        raise first
    return results


def _as_completed(futures: dict) -> Iterable[Any]:
    """`as_completed`, leaving out the futures cancelled after a failure."""
    for future in as_completed(futures):
        try:
            future.exception()
        except CancelledError:
            continue
        yield future


def list_folder(client: Any, workspace_path: str) -> list[dict[str, Any]] | None:
    """The objects in a workspace folder, or None if it does not exist."""
    try:
        return client.workspace.list(workspace_path)
    except NotFound:
        return None


def _remote_object(info: dict[str, Any]) -> RemoteObject:
    return RemoteObject(
        object_type=str(info.get("object_type", "")),
        modified_at=_optional_int(info.get("modified_at")),
        object_id=_optional_int(info.get("object_id")),
        language=info.get("language"),
    )


def assemble_tree(listings: dict[str, list[dict[str, Any]] | None]) -> RemoteTree:
    """Build the remote tree from folder listings fetched in any order ("" is WORKSPACE_DIR; None: not found).

    A folder's listing counts only if its parent's listing shows it as a DIRECTORY: `workspace/list` on a
    notebook or file path answers that object, which must not be mistaken for folder content.
    """
    if listings.get("") is None:
        return RemoteTree()
    objects: dict[str, RemoteObject] = {}
    listed: set[str] = set()
    for folder in sorted(listings, key=lambda path: (depth(path), path)):
        entries = listings[folder]
        if entries is None:
            continue
        if folder and (parent_of(folder) not in listed or objects.get(folder, RemoteObject("")).object_type != DIRECTORY):
            continue
        listed.add(folder)
        for info in entries:
            name = posixpath.basename(str(info.get("path", "")).rstrip("/"))
            if not name or (folder == "" and name == MANIFEST_NAME):
                continue
            objects[f"{folder}/{name}" if folder else name] = _remote_object(info)
    return RemoteTree(objects, frozenset(listed), root_exists=True)


def not_a_folder(workspace_path: str, entries: list[dict[str, Any]] | None) -> str | None:
    """The object type if a listing of `workspace_path` shows that the path itself is not a folder.

    `workspace/list` on a notebook or file answers that one object, with the path itself; a folder's entries
    all have longer paths. ``/Workspace/Shared/x`` and ``/Shared/x`` name the same object.
    """
    def plain(path: str) -> str:
        path = path.rstrip("/")
        return path[len("/Workspace"):] if path.startswith("/Workspace/") else path

    for info in entries or []:
        if plain(str(info.get("path", ""))) == plain(workspace_path) and info.get("object_type") != DIRECTORY:
            return str(info.get("object_type") or "object")
    return None


def list_remote(
    client: Any,
    workspace_dir: str,
    wanted: frozenset[str],
    *,
    concurrency: int = 8,
    prefetched: dict[str, list[dict[str, Any]] | None] | None = None,
) -> tuple[RemoteTree, int]:
    """List WORKSPACE_DIR and the wanted folders below it: one `workspace/list` per folder (O(folders)), all
    at once on the bounded pool rather than level by level, so the tree's depth costs no extra round trips.
    ``prefetched`` holds listings the caller already has. Returns the tree and the number of list calls made.
    """
    listings = dict(prefetched or {})
    todo = sorted((set(wanted) | {""}) - set(listings))
    answers = _run_all([lambda f=f: list_folder(client, join(workspace_dir, f)) for f in todo], concurrency)
    listings.update(zip(todo, answers))
    return assemble_tree(listings), len(todo)


def read_manifest(client: Any, workspace_dir: str) -> tuple[Manifest | None, str | None, str]:
    """(manifest or None, its stored text, a note for the summary). Missing or corrupt means a fresh deploy."""
    path = join(workspace_dir, MANIFEST_NAME)
    try:
        content = client.workspace.export(path, format="SOURCE")
    except NotFound:
        return None, None, "none found: fresh deploy, every object is uploaded"
    try:
        text = content.decode("utf-8")
        return manifest_from_json(text), text, "read"
    except (ValueError, ManifestError) as error:
        return None, None, f"unreadable ({error}): fresh deploy, every object is uploaded"


def write_manifest(client: Any, workspace_dir: str, text: str) -> None:
    _import(client, join(workspace_dir, MANIFEST_NAME), text.encode("utf-8"), "RAW", None)


def _import(client: Any, workspace_path: str, content: bytes, import_format: str, language: str | None) -> None:
    language = language if import_format == "SOURCE" else None
    client.workspace.import_(workspace_path, content, format=import_format, language=language, overwrite=True)


def _delete(client: Any, workspace_path: str) -> None:
    try:
        client.workspace.delete(workspace_path, recursive=False)
    except NotFound:
        pass  # already gone: the goal is reached (also when a retried delete had succeeded)


def _upload(client: Any, workspace_dir: str, upload: Upload, written: Written) -> str:
    """Import one object; return the SHA-256 of the bytes actually sent."""
    try:
        content = upload.local.source.read_bytes()
    except OSError as error:
        raise InputError(f"cannot read {upload.local.source}: {error.strerror or error}") from None
    target = join(workspace_dir, upload.relative_path)
    if upload.replace:
        _delete(client, target)
        written.add("replaced", upload.relative_path)
    _import(client, target, content, upload.local.format, upload.local.language)
    written.add("uploads", upload.relative_path)
    return hashlib.sha256(content).hexdigest()


def _mkdirs(client: Any, workspace_dir: str, folder: str, written: Written) -> None:
    client.workspace.mkdirs(join(workspace_dir, folder))
    written.add("folders_created", folder)


def _planned_delete(client: Any, workspace_dir: str, delete: Delete, written: Written) -> None:
    _delete(client, join(workspace_dir, delete.relative_path))
    written.add("deletes", delete.relative_path)


def apply(
    client: Any,
    workspace_dir: str,
    local: LocalTree,
    planned: Plan,
    manifest: Manifest | None,
    stored_text: str | None,
    before: RemoteTree,
    *,
    concurrency: int = 8,
    progress: Progress | None = None,
    written: Written | None = None,
) -> tuple[bool, int]:
    """Carry out a plan: deletes, folders (parents first), uploads, emptied folders, then the manifest last.

    Returns (manifest written?, list calls made re-reading uploaded folders). Every confirmed write is added to
    `written` as it returns. Raises on the first failed call after the calls in flight settle; the manifest is
    then not written, so the next deploy repairs the rest.
    """
    written = written if written is not None else Written(plan=planned)
    total = max(1, planned.writes)
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    _run_all([lambda d=d: _planned_delete(client, workspace_dir, d, written) for d in planned.deletes], concurrency, tick)
    levels: dict[int, list[str]] = {}
    for folder in planned.folders_to_create:
        levels.setdefault(depth(folder), []).append(folder)
    for level in sorted(levels):
        _run_all([lambda f=f: _mkdirs(client, workspace_dir, f, written) for f in levels[level]], concurrency, tick)
    hashes = _run_all([lambda u=u: _upload(client, workspace_dir, u, written) for u in planned.uploads], concurrency, tick)
    uploaded_hashes = {upload.relative_path: sent for upload, sent in zip(planned.uploads, hashes)}
    for folder in planned.folders_to_delete:  # deepest first, one at a time: a parent waits for its children
        try:
            _delete(client, join(workspace_dir, folder))
            written.add("folders_deleted", folder)
        except ApiError as error:
            if error.error_code != "DIRECTORY_NOT_EMPTY":
                raise
            # Someone put something there since the listing: then it is no longer only ours. Leave it.
        tick()

    # Re-read what was uploaded to record the modified_at/object_id the workspace gave it.
    touched = sorted({parent_of(upload.relative_path) for upload in planned.uploads})
    listings = _run_all([lambda f=f: list_folder(client, join(workspace_dir, f)) for f in touched], concurrency)
    after: dict[str, RemoteObject] = {}
    for folder, entries in zip(touched, listings):
        for info in entries or []:
            name = posixpath.basename(str(info.get("path", "")).rstrip("/"))
            after[f"{folder}/{name}" if folder else name] = _remote_object(info)
    new_manifest = next_manifest(local, planned, manifest, before, after, uploaded_hashes=uploaded_hashes)
    text = manifest_to_json(new_manifest, workspace_dir)
    if text == stored_text:
        return False, len(touched)
    write_manifest(client, workspace_dir, text)
    written.manifest = True
    return True, len(touched)


def deploy(
    client: Any,
    local: LocalTree,
    workspace_dir: str,
    *,
    full: bool = False,
    prune: bool = False,
    dry_run: bool = False,
    concurrency: int = 8,
    progress: Progress | None = None,
    written: Written | None = None,
) -> DeployResult:
    """Deploy a scanned source tree to WORKSPACE_DIR incrementally (see the module docstring). Raises
    OperationFailed on conflicts before writing anything, and on remote failures.

    Pass a `Written` to learn, also when the deploy raises, the plan and which of its writes landed (the
    result's `written` is the same object)."""
    written = written if written is not None else Written()
    workspace_dir = check_workspace_dir(workspace_dir)
    # The manifest and the listings of the local folders are independent reads: one round for all of them.
    # (A first deploy pays a 404 per folder for that; every later deploy saves a round trip per tree level.)
    prefetch = sorted(folders_to_list(local, None))
    answers = _run_all(
        [lambda: read_manifest(client, workspace_dir)]
        + [lambda f=f: list_folder(client, join(workspace_dir, f)) for f in prefetch],
        concurrency,
    )
    manifest, stored_text, note = answers[0]
    listings = dict(zip(prefetch, answers[1:]))
    in_the_way = not_a_folder(workspace_dir, listings[""])
    if in_the_way:
        raise OperationFailed(
            f"nothing deployed: {workspace_dir} is a {in_the_way.lower()}, not a folder",
            hint="deploy to another folder, or remove that object in the workspace",
        )
    before, calls = list_remote(
        client, workspace_dir, folders_to_list(local, manifest), concurrency=concurrency,
        prefetched=listings,
    )
    calls += len(prefetch)
    planned = plan(local, manifest, before, full=full, prune=prune)
    written.plan = planned
    result = DeployResult(workspace_dir, planned, note, dry_run=dry_run, list_calls=calls, written=written)
    if planned.conflicts:
        shown = "; ".join(planned.conflicts[:3])
        more = f" (and {len(planned.conflicts) - 3} more)" if len(planned.conflicts) > 3 else ""
        raise OperationFailed(
            f"nothing deployed: objects in {workspace_dir} are in the way: {shown}{more}",
            hint="delete or rename them in the workspace, or deploy to another folder",
        )
    if dry_run:
        return result
    result.manifest_written, relisted = apply(
        client, workspace_dir, local, planned, manifest, stored_text, before, concurrency=concurrency, progress=progress,
        written=written,
    )
    result.list_calls += relisted
    return result
