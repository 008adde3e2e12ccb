"""What the workspace holds, what the previous deploy recorded, and what a notebook deploy changes.

This module owns the decisions of `deploy_notebooks.py` (README "How incremental deploys work") as pure
functions over dataclasses: the model of the `workspace/list` answers (`assemble_tree`), the deployment
manifest and its JSON form, the `plan` of uploads and deletes, and the manifest to store afterwards. It makes no
call: the listings come in and the plan goes out through `workspace_sync`; the local tree is `workspace_sync_scan`.
"""

from __future__ import annotations

import dataclasses
import json
import posixpath
from dataclasses import dataclass, field
from typing import Any

from .errors import OperationFailed
from .workspace_sync_scan import DIRECTORY, FILE, NOTEBOOK, LocalObject, LocalTree, ancestors, depth, parent_of

MANIFEST_NAME = ".deploy-manifest.json"
MANIFEST_VERSION = 1


# --- records ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ManifestEntry:
    """What the previous deployment put at one path, and how the workspace described it afterwards."""

    object_type: str
    sha256: str
    modified_at: int | None = None
    object_id: int | None = None
    language: str | None = None
    # Uploaded by the deploy that wrote this manifest and not listed since: modified_at/object_id are not known,
    # and the object is unchanged while the workspace's modified_at is not later than the manifest's own (the
    # manifest is written after every upload returned). Saves re-reading every uploaded folder after a deploy.
    unlisted: bool = False


@dataclass(frozen=True)
class Manifest:
    """The deployment manifest stored in the workspace next to the deployment."""

    objects: dict[str, ManifestEntry] = field(default_factory=dict)
    folders: frozenset[str] = frozenset()  # folders the deployments created (candidates for prune)
    # +1 at every write: a manifest written after uploads always changes, so its modified_at moves past theirs
    # even where the workspace would keep the time of a file re-imported with the same content.
    generation: int = 0


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
    manifest_modified_at: int | None = None  # the stored manifest's modified_at, from WORKSPACE_DIR's listing

    def children(self, folder: str) -> list[str]:
        prefix = f"{folder}/" if folder else ""
        return [path for path in self.objects if path.startswith(prefix) and "/" not in path[len(prefix) :]]


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
    def mkdirs(self) -> list[str]:
        """The folders to pass to `workspace/mkdirs`: those to create that hold no other folder to create (mkdirs
        creates the parents), parents' order kept."""
        above = {parent for folder in self.folders_to_create if folder for parent in ["", *ancestors(folder)]}
        return [folder for folder in self.folders_to_create if folder not in above]

    @property
    def writes(self) -> int:
        """Number of write calls the plan needs, not counting the manifest."""
        replaced = sum(1 for upload in self.uploads if upload.replace)
        return len(self.uploads) + replaced + len(self.deletes) + len(self.mkdirs) + len(self.folders_to_delete)

    @property
    def empty(self) -> bool:
        return self.writes == 0


# --- remote listing -----------------------------------------------------------------------------------------


def remote_object(info: dict[str, Any]) -> RemoteObject:
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
    manifest_modified_at = None
    for folder in sorted(listings, key=lambda path: (depth(path), path)):
        entries = listings[folder]
        if entries is None:
            continue
        if folder and (parent_of(folder) not in listed or not _is_folder(objects.get(folder))):
            continue
        listed.add(folder)
        for info in entries:
            name = posixpath.basename(str(info.get("path", "")).rstrip("/"))
            if folder == "" and name == MANIFEST_NAME:
                manifest_modified_at = remote_object(info).modified_at
                continue
            if name:
                objects[f"{folder}/{name}" if folder else name] = remote_object(info)
    return RemoteTree(objects, frozenset(listed), root_exists=True, manifest_modified_at=manifest_modified_at)


def _is_folder(found: RemoteObject | None) -> bool:
    return found is not None and found.object_type == DIRECTORY


def not_a_folder(workspace_path: str, entries: list[dict[str, Any]] | None) -> str | None:
    """The object type if a listing of `workspace_path` shows that the path itself is not a folder.

    `workspace/list` on a notebook or file answers that one object, with the path itself; a folder's entries
    all have longer paths. ``/Workspace/Shared/x`` and ``/Shared/x`` name the same object.
    """

    def plain(path: str) -> str:
        path = path.rstrip("/")
        return path[len("/Workspace") :] if path.startswith("/Workspace/") else path

    for info in entries or []:
        if plain(str(info.get("path", ""))) == plain(workspace_path) and info.get("object_type") != DIRECTORY:
            return str(info.get("object_type") or "object")
    return None


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
        "generation": manifest.generation,
        "objects": {
            path: {key: value for key, value in dataclasses.asdict(entry).items() if value not in (None, False)}
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
                unlisted=entry.get("unlisted", False) is True,
            )
        except (KeyError, TypeError, ValueError):
            raise ManifestError(f"bad entry {path!r}") from None
    if not all(isinstance(folder, str) and _safe_relative(folder) for folder in folders_json):
        raise ManifestError("bad folder entry")
    generation = document.get("generation", 0)
    if isinstance(generation, bool) or not isinstance(generation, int) or generation < 0:
        raise ManifestError("'generation' must be a non-negative integer")
    return Manifest(objects=objects, folders=frozenset(folders_json), generation=generation)


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


def _drifted(entry: ManifestEntry, remote: RemoteObject, manifest_modified_at: int | None) -> bool:
    """Whether the workspace changed an object since the deploy that recorded it. A time the workspace does not
    give (none is documented for every object type) cannot show drift; the type always can."""
    if remote.object_type != entry.object_type:
        return True
    if entry.unlisted:
        known = remote.modified_at is not None and manifest_modified_at is not None
        return known and remote.modified_at > manifest_modified_at
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
            result.conflicts.append(
                f"{folder!r} is a {found.object_type.lower()} in the workspace but a folder locally"
            )
    for folder in sorted({""} | set(local.folders), key=lambda path: (depth(path), path)):
        exists = remote.root_exists if folder == "" else _is_folder(remote.objects.get(folder))
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
        elif _drifted(entry, found, remote.manifest_modified_at):
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
    *,
    uploaded_hashes: dict[str, str] | None = None,
    to_write: bool = True,
) -> Manifest:
    """The manifest to store after applying ``planned`` (``to_write``), or with ``to_write`` False the manifest as
    it stands if this deploy writes none, to compare with the stored text.

    Uploaded objects are recorded `unlisted` (the manifest, written after them, dates them). Skipped objects take
    their entry from the listing ``before`` the deploy, except, when not ``to_write``, an `unlisted` entry of the
    previous manifest, which is kept (an unchanged deployment's text stays identical). A manifest to write is the
    next `generation`. Stale objects kept without ``--prune`` stay recorded, so a later ``--prune`` can still
    remove them. Raises OperationFailed if a skipped object is not listed as what it is locally (the plan would
    have uploaded it).
    """
    previous = manifest.objects if manifest is not None else {}
    uploaded = {upload.relative_path for upload in planned.uploads}
    hashes = uploaded_hashes or {}
    objects: dict[str, ManifestEntry] = {}
    for path, item in local.objects.items():
        if path in uploaded:
            objects[path] = ManifestEntry(
                item.object_type, hashes.get(path, item.sha256), language=item.language, unlisted=True
            )
            continue
        found = before.objects.get(path)
        if found is None or found.object_type != item.object_type:
            raise OperationFailed(
                f"{path!r} was not uploaded but the workspace does not list it as a {item.object_type.lower()}"
            )
        kept = previous.get(path)
        if not to_write and kept is not None and kept.unlisted:
            objects[path] = kept
            continue
        objects[path] = ManifestEntry(
            object_type=item.object_type,
            sha256=item.sha256,
            modified_at=found.modified_at,
            object_id=found.object_id,
            language=item.language,
        )
    for path in planned.stale:
        objects[path] = previous[path]
    created = set(planned.folders_to_create) - {""}
    kept_folders = set(manifest.folders) if manifest is not None else set()
    kept_folders -= set(planned.folders_to_delete)
    kept_folders = {f for f in kept_folders if f in local.folders or _is_folder(before.objects.get(f))}
    generation = (manifest.generation if manifest is not None else 0) + (1 if to_write else 0)
    return Manifest(objects=objects, folders=frozenset(created | kept_folders), generation=generation)
