"""Removing a deployment from its target (README, "Jobs: deploy, run, destroy"): what `destroy.py` removes.

What this deployment created, found from the config, never by a guess: its jobs (by their identity tags,
`jobs_deploy.find_deployed`), the init script entry on each of ``deploy.clusters`` (the cluster's other init
scripts kept, its other settings untouched: `cluster_spec.without_init_script`), the init script file at
``deploy.init_script_path``, the folder ``deploy.libraries_path`` (the uploaded wheels and requirements) and the
folder ``deploy.notebooks_path`` with the deployment manifest in it. `plan` only reads and lists what exists;
`Item.remove` deletes one thing. Absent things are not an error (a second destroy finds nothing to do).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from . import cluster_spec, jobs_deploy
from .dbclient import remote_path
from .errors import NotFound, ResourceDoesNotExist


@dataclasses.dataclass(frozen=True)
class Item:
    """One thing to remove: what it is, and the call that removes it."""

    what: str
    remove: Callable[[], None] = dataclasses.field(repr=False, compare=False)


def plan(client: Any, config: Any, *, notes: list[str]) -> list[Item]:
    """What would go, in the order it goes: jobs, cluster init script entries, then files and folders."""
    deploy = config.deploy or {}
    items: list[Item] = []
    for key, job in sorted(jobs_deploy.find_deployed(client, jobs_deploy.identity(config)).items()):
        job_id = int(job["job_id"])
        name = (job.get("settings") or {}).get("name") or key
        items.append(Item(f"job {key} ({job_id}): {name}", lambda job_id=job_id: client.jobs.delete(job_id)))
    script = deploy.get("init_script_path")
    for cluster_id in deploy.get("clusters") or [] if script else []:
        try:
            details = client.clusters.get(str(cluster_id))
        except (ResourceDoesNotExist, NotFound):
            notes.append(f"cluster {cluster_id} does not exist: no init script entry to remove")
            continue
        spec, attached = cluster_spec.without_init_script(details, remote_path(script).path)
        if attached:
            items.append(
                Item(
                    f"init script entry {script} on cluster {cluster_id}", lambda spec=spec: client.clusters.edit(spec)
                )
            )
    for what, path in (
        ("init script", script),
        ("libraries folder", deploy.get("libraries_path")),
        ("notebooks folder (and its deploy manifest)", deploy.get("notebooks_path")),
    ):
        if path:
            item = _path_item(client, what, str(path))
            if item is not None:
                items.append(item)
    return items


def _path_item(client: Any, what: str, path: str) -> Item | None:
    remote = remote_path(path)
    if remote.kind == "volumes":
        metadata = client.files.head(remote.path)
        if metadata is not None:
            return Item(f"{what} {remote.path}", lambda: client.files.delete(remote.path))
        try:
            entries = list(client.files.list_directory(remote.path))
        except (ResourceDoesNotExist, NotFound):
            return None
        return Item(
            f"{what} {remote.path} ({len(entries)} entries)", lambda: _remove_volume_folder(client, remote.path)
        )
    family = client.workspace if remote.kind == "workspace" else client.dbfs
    try:
        status = family.get_status(remote.path)
    except (ResourceDoesNotExist, NotFound):
        return None
    folder = status.get("object_type") == "DIRECTORY" or status.get("is_dir")
    return Item(f"{what} {remote.path}", lambda: family.delete(remote.path, recursive=bool(folder)))


def _remove_volume_folder(client: Any, path: str) -> None:
    """The Files API deletes only files and empty directories: depth first."""
    for entry in list(client.files.list_directory(path)):
        if entry.get("is_directory"):
            _remove_volume_folder(client, entry["path"])
        else:
            client.files.delete(entry["path"])
    client.files.delete_directory(path)
