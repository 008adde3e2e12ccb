"""Removing a deployment from its target (README, "Jobs: deploy, run, destroy"): what `destroy.py` removes.

What this deployment created, found from the config and the deployment's own records, never by a guess: its jobs
(by their identity tags, `jobs_deploy.find_deployed`), the init script entry on each of ``deploy.clusters`` (the
cluster's other init scripts kept, its other settings untouched: `cluster_spec.without_init_script`), the init
script file at ``deploy.init_script_path``, the uploaded wheels (``*.whl``) and requirements (``requirements*.txt``)
in ``deploy.libraries_path``, and the notebooks and files the deploy manifest of ``deploy.notebooks_path`` records
(then the manifest, then the folders the deployments created). A folder goes only once it is empty: whatever
someone else put there stays, and so does the folder. `plan` only reads and lists what exists; `Item.remove`
deletes one thing. Absent things are not an error (a second destroy finds nothing to do).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import posixpath
from collections.abc import Callable
from typing import Any

from . import cluster_spec, jobs_deploy, workspace_sync
from .dbclient import remote_path
from .errors import ApiError, NotFound

LIBRARY_PATTERNS = ("*.whl", "requirements*.txt")
NOT_EMPTY = ("DIRECTORY_NOT_EMPTY", "IO_ERROR")


@dataclasses.dataclass(frozen=True)
class Item:
    """One thing to remove: what it is, and the call that removes it (True: removed; False: kept, not empty)."""

    what: str
    remove: Callable[[], bool] = dataclasses.field(repr=False, compare=False)


def _done(call: Callable[[], Any]) -> Callable[[], bool]:
    def remove() -> bool:
        try:
            call()
        except NotFound:
            pass  # already gone: the goal is reached
        return True

    return remove


def _if_empty(call: Callable[[], Any]) -> Callable[[], bool]:
    def remove() -> bool:
        try:
            call()
        except NotFound:
            return True
        except ApiError as error:
            if error.error_code in NOT_EMPTY:
                return False
            raise
        return True

    return remove


def plan(client: Any, config: Any, *, notes: list[str]) -> list[Item]:
    """What would go, in the order it goes: jobs, cluster init script entries, then files and folders."""
    deploy = config.deploy or {}
    items: list[Item] = []
    for key, job in sorted(jobs_deploy.find_deployed(client, jobs_deploy.identity(config)).items()):
        job_id = int(job["job_id"])
        name = (job.get("settings") or {}).get("name") or key
        items.append(Item(f"job {key} ({job_id}): {name}", _done(lambda job_id=job_id: client.jobs.delete(job_id))))
    script = deploy.get("init_script_path")
    for cluster_id in deploy.get("clusters") or [] if script else []:
        try:
            details = client.clusters.get(str(cluster_id))
        except NotFound:
            notes.append(f"cluster {cluster_id} does not exist: no init script entry to remove")
            continue
        spec, attached = cluster_spec.without_init_script(details, remote_path(script).path)
        if attached:
            what = f"init script entry {script} on cluster {cluster_id}"
            items.append(Item(what, _done(lambda spec=spec: client.clusters.edit(spec))))
    if script:
        items += _files(client, remote_path(str(script)), "init script", lambda name: True, folder=False)
    if deploy.get("libraries_path"):
        wanted = lambda name: any(fnmatch.fnmatchcase(name, p) for p in LIBRARY_PATTERNS)  # noqa: E731
        items += _files(client, remote_path(str(deploy["libraries_path"])), "library", wanted, folder=True)
    if deploy.get("notebooks_path"):
        items += _notebooks(client, remote_path(str(deploy["notebooks_path"])).path, notes)
    return items


def _files(client: Any, remote: Any, what: str, wanted: Callable[[str], bool], *, folder: bool) -> list[Item]:
    """The file `remote` (folder=False), or the wanted files directly in the folder `remote` and then the folder."""
    family = {"workspace": client.workspace, "dbfs": client.dbfs}.get(remote.kind)
    if not folder:
        if remote.kind == "volumes":
            exists = client.files.head(remote.path) is not None
            remove = lambda: client.files.delete(remote.path)  # noqa: E731
        else:
            exists = _exists(family, remote.path)
            remove = lambda: family.delete(remote.path)  # noqa: E731
        return [Item(f"{what} {remote.path}", _done(remove))] if exists else []
    try:
        if remote.kind == "volumes":
            entries = [(e["path"], not e.get("is_directory")) for e in client.files.list_directory(remote.path)]
        elif remote.kind == "workspace":
            entries = [(o["path"], o.get("object_type") == "FILE") for o in client.workspace.list(remote.path)]
        else:
            entries = [(f["path"], not f.get("is_dir")) for f in client.dbfs.list(remote.path)]
    except NotFound:
        return []
    items = []
    for path, is_file in sorted(entries):
        if is_file and wanted(posixpath.basename(path)):
            remove = (
                (lambda p=path: client.files.delete(p))
                if remote.kind == "volumes"
                else (lambda p=path: family.delete(p))
            )
            items.append(Item(f"{what} {path}", _done(remove)))
    if remote.kind == "volumes":
        rmdir = lambda: client.files.delete_directory(remote.path)  # noqa: E731
    else:
        rmdir = lambda: family.delete(remote.path, recursive=False)  # noqa: E731
    items.append(Item(f"folder {remote.path} (once empty)", _if_empty(rmdir)))
    return items


def _exists(family: Any, path: str) -> bool:
    try:
        family.get_status(path)
    except NotFound:
        return False
    return True


def _notebooks(client: Any, folder: str, notes: list[str]) -> list[Item]:
    """The objects the deploy manifest of `folder` records, the manifest, then the deployments' folders and `folder`
    itself, deepest first, each once empty."""
    if not _exists(client.workspace, folder):
        return []
    manifest, _, note = workspace_sync.read_manifest(client, folder)
    if manifest is None:
        notes.append(f"no usable deploy manifest in {folder} ({note.split(':')[0]}): its notebooks are left in place")
        return []
    items = []
    for relative in sorted(manifest.objects):
        path = posixpath.join(folder, relative)
        items.append(Item(f"notebook or file {path}", _done(lambda p=path: client.workspace.delete(p))))
    manifest_path = posixpath.join(folder, workspace_sync.MANIFEST_NAME)
    items.append(Item(f"deploy manifest {manifest_path}", _done(lambda: client.workspace.delete(manifest_path))))
    folders = sorted({posixpath.join(folder, f) for f in manifest.folders if f} | {folder}, key=lambda p: -p.count("/"))
    for path in folders:
        remove = _if_empty(lambda p=path: client.workspace.delete(p, recursive=False))
        items.append(Item(f"folder {path} (once empty)", remove))
    return items
