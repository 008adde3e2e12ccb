"""Incremental notebook deployment against the workspace: read what is there, apply the plan, record the writes.

This module owns the calls of `deploy_notebooks.py` (README "How incremental deploys work"): `deploy` lists
WORKSPACE_DIR and reads the manifest, plans with `workspace_sync_plan`, and `apply` carries the plan out, recording
every write the workspace confirmed in a `Written`. It takes a Databricks client as a parameter (the scripts
connect). The local scan is `workspace_sync_scan`, the pure decisions `workspace_sync_plan`; their public names are
re-exported here, so a step needs only ``from cicdkit import workspace_sync``.

The deployment manifest is a workspace FILE, `<WORKSPACE_DIR>/.deploy-manifest.json`, so the deploy state
lives next to the deployment and survives a fresh CI runner. For every object the deployment owns it records
the object type and the SHA-256 of the local source, and either the object's `modified_at`/`object_id` as a
listing showed them or, for an object the deploy that wrote the manifest uploaded, `unlisted`: the manifest,
written after every upload returned, dates it (no folder is re-read after its uploads). A deploy then:

* uploads an object when it is new, its local content changed, or it drifted in the workspace (missing,
  other type, `modified_at` or `object_id` differ from the manifest, or an `unlisted` object's `modified_at` is
  later than the manifest's own: someone edited or re-created it);
* deletes (with ``--prune`` only) objects the previous manifest recorded that no longer exist locally, and
  only while they are still of the recorded type: nothing the deployment did not create is ever deleted;
* writes the manifest last (after any upload, even with the same text, since its `modified_at` dates them), so
  an interrupted deploy leaves the previous manifest, and the next run sees the half-done uploads as drift and
  redoes them;
* records every write the workspace confirmed as it returns (`Written`), so a deploy that fails half-way can say
  exactly what it changed.

It does not own HTTP, retries or auth (`dbclient`), the worker pool (`pool.py`), nor output (`summary.py`,
`ado.py`).
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .errors import ApiError, InputError, NotFound, OperationFailed
from .pool import run_all
from .settings import DEFAULT_CONCURRENCY
from .workspace_sync_plan import (
    MANIFEST_NAME,
    Delete,
    Manifest,
    ManifestEntry,
    ManifestError,
    Plan,
    RemoteObject,
    RemoteTree,
    Upload,
    assemble_tree,
    folders_to_list,
    manifest_from_json,
    manifest_to_json,
    next_manifest,
    not_a_folder,
    plan,
    remote_object,
)
from .workspace_sync_scan import (
    HASH_CHUNK,
    MAX_IMPORT_BYTES,
    NOTEBOOK,
    NOTEBOOK_SOURCES,
    LocalObject,
    LocalTree,
    ancestors,
    check_workspace_dir,
    classify,
    depth,
    hash_file,
    join,
    parent_of,
    scan,
)

__all__ = [
    # the calls (this module)
    "DeployResult",
    "Progress",
    "Written",
    "apply",
    "deploy",
    "list_folder",
    "list_remote",
    "read_manifest",
    "write_manifest",
    # the local scan (workspace_sync_scan)
    "HASH_CHUNK",
    "MAX_IMPORT_BYTES",
    "NOTEBOOK",
    "NOTEBOOK_SOURCES",
    "LocalObject",
    "LocalTree",
    "ancestors",
    "check_workspace_dir",
    "classify",
    "depth",
    "hash_file",
    "join",
    "parent_of",
    "scan",
    # the decisions (workspace_sync_plan)
    "MANIFEST_NAME",
    "Delete",
    "Manifest",
    "ManifestEntry",
    "ManifestError",
    "Plan",
    "RemoteObject",
    "RemoteTree",
    "Upload",
    "assemble_tree",
    "folders_to_list",
    "manifest_from_json",
    "manifest_to_json",
    "next_manifest",
    "not_a_folder",
    "plan",
    "remote_object",
]

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


class _Dependencies:
    """Counts of unfinished tasks per key, for tasks of one pool that wait for earlier ones (`apply`).

    The pool starts tasks in order, and a task waits only for keys of earlier tasks, so the earliest unfinished
    task is always running: no deadlock. `stop` (the pool's) ends every wait, a failed task still counts as done.
    """

    def __init__(self, stop: threading.Event) -> None:
        self._stop = stop
        self._left: dict[Any, int] = {}
        self._changed = threading.Condition()

    def expect(self, key: Any) -> None:
        self._left[key] = self._left.get(key, 0) + 1

    @contextlib.contextmanager
    def doing(self, key: Any) -> Iterator[None]:
        try:
            yield
        finally:
            with self._changed:
                self._left[key] -= 1
                self._changed.notify_all()

    def wait(self, key: Any) -> None:
        with self._changed:
            while self._left.get(key, 0) > 0 and not self._stop.is_set():
                self._changed.wait(timeout=0.5)  # the tasks waited for are calls bounded by the step's deadline


def list_folder(client: Any, workspace_path: str) -> list[dict[str, Any]] | None:
    """The objects in a workspace folder, or None if it does not exist."""
    try:
        return client.workspace.list(workspace_path)
    except NotFound:
        return None


def list_remote(
    client: Any,
    workspace_dir: str,
    wanted: frozenset[str],
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    prefetched: dict[str, list[dict[str, Any]] | None] | None = None,
) -> tuple[RemoteTree, int]:
    """List WORKSPACE_DIR and the wanted folders below it: one `workspace/list` per folder (O(folders)), all
    at once on the bounded pool rather than level by level, so the tree's depth costs no extra round trips.
    ``prefetched`` holds listings the caller already has. Returns the tree and the number of list calls made.
    """
    listings = dict(prefetched or {})
    todo = sorted((set(wanted) | {""}) - set(listings))
    answers = run_all([lambda f=f: list_folder(client, join(workspace_dir, f)) for f in todo], workers=concurrency)
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
    concurrency: int = DEFAULT_CONCURRENCY,
    progress: Progress | None = None,
    written: Written | None = None,
) -> bool:
    """Carry out a plan: deletes, folders, uploads, emptied folders, then the manifest last.

    Returns whether the manifest was written. Every confirmed write is added to `written` as it returns. Raises on
    the first failed call after the calls in flight settle; the manifest is then not written, so the next deploy
    repairs the rest.
    """
    written = written if written is not None else Written(plan=planned)
    total = max(1, planned.writes)
    done = 0

    def tick(_result: object = None) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    run_all(
        [lambda d=d: _planned_delete(client, workspace_dir, d, written) for d in planned.deletes],
        workers=concurrency,
        on_done=tick,
    )
    # Folders and uploads in ONE pool, an upload waiting only for the mkdirs call that creates its folder: no
    # barrier between the phases. One mkdirs per deepest new folder (it creates the parents), all at once.
    stop = threading.Event()
    folder_done = _Dependencies(stop)
    to_create = set(planned.folders_to_create)
    made_by: dict[str, str] = {}  # folder to create -> the mkdirs call that creates it
    for target in planned.mkdirs:
        folder_done.expect(target)
        for folder in [target, *ancestors(target), ""]:
            if folder in to_create:
                made_by.setdefault(folder, target)
    creates: dict[str, list[str]] = {target: [] for target in planned.mkdirs}
    for folder in planned.folders_to_create:
        creates[made_by[folder]].append(folder)

    def make_folder(target: str) -> None:
        with folder_done.doing(target):
            client.workspace.mkdirs(join(workspace_dir, target))
            for folder in creates[target]:
                written.add("folders_created", folder)

    def upload_one(upload: Upload) -> str:
        waits_for = made_by.get(parent_of(upload.relative_path))
        if waits_for is not None:
            folder_done.wait(waits_for)
        if stop.is_set():
            return ""
        return _upload(client, workspace_dir, upload, written)

    tasks: list[Callable[[], Any]] = [lambda t=t: make_folder(t) for t in planned.mkdirs]
    tasks += [lambda u=u: upload_one(u) for u in planned.uploads]
    results = run_all(tasks, workers=concurrency, on_done=tick, stop=stop)
    uploaded_hashes = {u.relative_path: sent for u, sent in zip(planned.uploads, results[len(planned.mkdirs) :])}
    for folder in planned.folders_to_delete:  # deepest first, one at a time: a parent waits for its children
        try:
            _delete(client, join(workspace_dir, folder))
            written.add("folders_deleted", folder)
        except ApiError as error:
            if error.error_code != "DIRECTORY_NOT_EMPTY":
                raise
            # Someone put something there since the listing: then it is no longer only ours. Leave it.
        tick()

    # An unchanged deployment keeps its manifest text (and writes nothing); after any upload the manifest is
    # written even when its text is the same, since its modified_at dates the uploads (`ManifestEntry.unlisted`).
    unchanged = next_manifest(local, planned, manifest, before, uploaded_hashes=uploaded_hashes, to_write=False)
    if not planned.uploads and manifest_to_json(unchanged, workspace_dir) == stored_text:
        return False
    new_manifest = next_manifest(local, planned, manifest, before, uploaded_hashes=uploaded_hashes)
    write_manifest(client, workspace_dir, manifest_to_json(new_manifest, workspace_dir))
    written.manifest = True
    return True


def deploy(
    client: Any,
    local: LocalTree,
    workspace_dir: str,
    *,
    full: bool = False,
    prune: bool = False,
    dry_run: bool = False,
    concurrency: int = DEFAULT_CONCURRENCY,
    progress: Progress | None = None,
    written: Written | None = None,
) -> DeployResult:
    """Deploy a scanned source tree to WORKSPACE_DIR incrementally (see the module docstring). Raises
    OperationFailed on conflicts before writing anything, and on remote failures.

    Pass a `Written` to learn, also when the deploy raises, the plan and which of its writes landed (the
    result's `written` is the same object)."""
    written = written if written is not None else Written()
    workspace_dir = check_workspace_dir(workspace_dir)
    # The manifest and the listings of the local folders are independent reads: one round for all of them, so
    # every later deploy saves a round trip per tree level. Parents come first (sorted paths), and a folder
    # whose parent was just listed as missing is missing too: a first deploy is not charged a 404 per folder.
    # The listings that wait for a free worker wait for WORKSPACE_DIR's answer too (it comes back with the first
    # round, so this costs a redeploy nothing), and a fresh deploy does not send a second round of them.
    prefetch = sorted(folders_to_list(local, None))
    missing: set[str] = set()
    root_answered = threading.Event()

    def prefetch_one(index: int, folder: str) -> list[dict[str, Any]] | None:
        if folder and index + 1 >= concurrency:
            root_answered.wait()  # set when the root listing task ends, whichever way: it runs in the first round
        if folder and any(parent in missing for parent in ["", *ancestors(folder)]):
            return None
        try:
            entries = list_folder(client, join(workspace_dir, folder))
        finally:
            if not folder:
                root_answered.set()
        if entries is None:
            missing.add(folder)
        return entries

    answers = run_all(
        [lambda: read_manifest(client, workspace_dir)]
        + [lambda i=i, f=f: prefetch_one(i, f) for i, f in enumerate(prefetch)],
        workers=concurrency,
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
        client,
        workspace_dir,
        folders_to_list(local, manifest),
        concurrency=concurrency,
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
    result.manifest_written = apply(
        client,
        workspace_dir,
        local,
        planned,
        manifest,
        stored_text,
        before,
        concurrency=concurrency,
        progress=progress,
        written=written,
    )
    return result
