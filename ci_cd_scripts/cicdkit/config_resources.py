"""What happens to ``resources`` after the target is merged: modes, presets, API defaults, local paths.

Part of the config loader (see `config`). Rules: README "Configuration", **Modes and presets** (and "Not supported
(and why)" for path translation); the reference is the Databricks CLI, databricks/cli
``bundle/config/mutator/process_target_mode.go``, ``apply_presets.go`` and ``translate_paths.go``.

* ``mode: development`` fills preset defaults (name prefix ``[dev <short_name>] ``, ``dev`` tag, 4 concurrent
  runs, schedules paused, pipelines in development) and may swap task compute for ``bundle.cluster_id``.
* Presets (any mode) rename and tag resources, set ``max_concurrent_runs`` and pause statuses.
* After resolution, jobs get the reference's API defaults and local notebook/file paths become workspace
  paths under ``workspace.file_path``; then mode checks run.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any

from .errors import ConfigError

MODES = ("development", "production")
PAUSE_STATUSES = ("PAUSED", "UNPAUSED")
NOTEBOOK_SUFFIXES = (".py", ".ipynb", ".sql", ".scala", ".r")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)

# resource type -> name field for a plain prefix
_PLAIN_PREFIX = {
    "jobs": "name",
    "pipelines": "name",
    "models": "name",
    "clusters": "cluster_name",
    "instance_pools": "instance_pool_name",
    "dashboards": "display_name",
    "alerts": "display_name",
    "sql_warehouses": "name",
}
# resource types whose names must be identifiers: prefix normalised
_IDENTIFIER_PREFIX = ("schemas", "registered_models", "model_serving_endpoints")


def normalise_name(text: str) -> str:
    """Lower-case, runs of anything but letters and digits become one ``_``, no ``_`` at either end."""
    return re.sub(r"[\W_]+", "_", text.lower()).strip("_")


def identifier_prefix(prefix: str) -> str:
    """``"[dev tester] "`` -> ``dev_tester_``; ``"prefix-"`` -> ``prefix``; ``"[prefix]"`` -> ``prefix_``."""
    stripped = prefix.replace("[", "").strip(" ")
    return normalise_name(stripped) + ("_" if stripped.endswith("]") else "")


def is_service_principal(user_name: str) -> bool:
    return bool(_UUID.match(user_name or ""))


def user_record(current_user: Any) -> dict | None:
    """``workspace.current_user`` from a userName string or a SCIM ``Me`` document."""
    if current_user is None:
        return None
    record = {"userName": current_user} if isinstance(current_user, str) else dict(current_user)
    user_name = str(record.get("userName") or "")
    if not user_name:
        raise ConfigError("the current user has no userName", hint="pass --current-user NAME@DOMAIN")
    name = user_name
    if is_service_principal(user_name) and record.get("displayName"):
        name = str(record["displayName"])
    record["short_name"] = normalise_name(name.split("@", 1)[0])
    record.setdefault("domain_friendly_name", record["short_name"])
    return record


def _each(resources: dict, kind: str) -> list[dict]:
    """The resources of one type (``jobs``, ``pipelines``...) that are maps."""
    section = resources.get(kind)
    return [body for body in section.values() if isinstance(body, dict)] if isinstance(section, dict) else []


def development_defaults(tree: dict, user: dict | None) -> None:
    """Fill presets for ``mode: development`` where the config did not set them."""
    bundle = tree.setdefault("bundle", {})
    lock = bundle.setdefault("deployment", {}).setdefault("lock", {})
    if lock.get("enabled") is not True:
        lock["enabled"] = False
    short_name = user["short_name"] if user else "${workspace.current_user.short_name}"
    presets = tree.setdefault("presets", {})
    if not presets.get("name_prefix"):
        presets["name_prefix"] = f"[dev {short_name}] "
    tags = presets.setdefault("tags", {})
    if isinstance(tags, dict) and "dev" not in tags:
        tags["dev"] = short_name
    if not presets.get("jobs_max_concurrent_runs"):
        presets["jobs_max_concurrent_runs"] = 4
    if not presets.get("trigger_pause_status"):
        presets["trigger_pause_status"] = "PAUSED"
    if presets.get("pipelines_development") is not False:
        presets["pipelines_development"] = True


def override_compute(resources: dict, cluster_id: str) -> None:
    """Run every job task that has compute on `cluster_id` (``bundle.cluster_id``)."""
    for job in _each(resources, "jobs"):
        for task in job.get("tasks") or []:
            if not isinstance(task, dict):
                continue
            if any(key in task for key in ("new_cluster", "job_cluster_key", "environment_key", "existing_cluster_id")):
                for key in ("new_cluster", "job_cluster_key", "environment_key"):
                    task.pop(key, None)
                task["existing_cluster_id"] = cluster_id


def apply_presets(resources: dict, presets: dict) -> None:
    """Prefix names, add tags, set concurrency and pause statuses (README "Configuration", **Modes and presets**)."""
    prefix = presets.get("name_prefix") or ""
    tags = presets.get("tags") if isinstance(presets.get("tags"), dict) else {}
    pause = presets.get("trigger_pause_status")
    if pause is not None and pause not in PAUSE_STATUSES:
        raise ConfigError("Invalid value for trigger_pause_status, should be PAUSED or UNPAUSED")
    max_runs = presets.get("jobs_max_concurrent_runs")
    if prefix:
        for kind, field in _PLAIN_PREFIX.items():
            for resource in _each(resources, kind):
                resource[field] = prefix + str(resource.get(field) or "")
        for kind in _IDENTIFIER_PREFIX:
            for resource in _each(resources, kind):
                resource["name"] = identifier_prefix(prefix) + str(resource.get("name") or "")
        for experiment in _each(resources, "experiments"):
            if experiment.get("name"):
                head, _, last = str(experiment["name"]).rpartition("/")
                experiment["name"] = f"{head}/{prefix}{last}" if head else prefix + last
    for job in _each(resources, "jobs"):
        job_tags = job.setdefault("tags", {}) if tags else job.get("tags")
        for key, value in tags.items():
            if isinstance(job_tags, dict):
                job_tags.setdefault(key, value)
        if max_runs and not job.get("max_concurrent_runs"):
            job["max_concurrent_runs"] = max_runs
        if pause:
            for trigger in ("schedule", "trigger", "continuous"):
                if isinstance(job.get(trigger), dict) and not job[trigger].get("pause_status"):
                    job[trigger]["pause_status"] = pause
    for pipeline in _each(resources, "pipelines"):
        if presets.get("pipelines_development") and "development" not in pipeline:
            pipeline["development"] = True
        if pause == "PAUSED":
            pipeline["continuous"] = False
        for key, value in tags.items():
            pipeline.setdefault("tags", {}).setdefault(key, value)
    for kind in ("models", "experiments"):
        for resource in _each(resources, kind):
            existing = resource.setdefault("tags", []) if tags else resource.get("tags") or []
            for key, value in tags.items():
                if not any(isinstance(tag, dict) and tag.get("key") == key for tag in existing):
                    existing.append({"key": key, "value": value})
    for cluster in _each(resources, "clusters"):
        for key, value in tags.items():
            cluster.setdefault("custom_tags", {}).setdefault(key, value)


def apply_run_as(resources: dict, run_as: Any) -> None:
    """The top-level ``run_as`` identity becomes each job's ``run_as`` unless the job sets its own."""
    if not isinstance(run_as, dict) or not run_as:
        return
    for job in _each(resources, "jobs"):
        job.setdefault("run_as", dict(run_as))


def job_defaults(resources: dict, state_path: str) -> None:
    """The defaults the reference shows for every job after initialize."""
    for job in _each(resources, "jobs"):
        job.setdefault("name", "Untitled")
        if not job.get("max_concurrent_runs"):
            job["max_concurrent_runs"] = 1
        job.setdefault("queue", {"enabled": True})
        for trigger in ("schedule", "trigger", "continuous"):
            if isinstance(job.get(trigger), dict) and not job[trigger].get("pause_status"):
                job[trigger]["pause_status"] = "UNPAUSED"
        job.setdefault("edit_mode", "UI_LOCKED")
        job.setdefault("format", "MULTI_TASK")
        job["deployment"] = {"kind": "BUNDLE", "metadata_file_path": f"{state_path}/metadata.json"}


def is_local_path(value: Any) -> bool:
    return (
        isinstance(value, str)
        and bool(value)
        and not value.startswith(("/", "~", "${"))
        and "://" not in value
        and not re.match(r"^[a-zA-Z]+:", value)
    )


def local_path_fields(resources: dict):
    """(container, key, kind) for every field that may hold a local notebook or file path."""
    for job in _each(resources, "jobs"):
        for task in job.get("tasks") or []:
            if not isinstance(task, dict):
                continue
            notebook = task.get("notebook_task")
            if isinstance(notebook, dict) and notebook.get("source") != "GIT":
                yield notebook, "notebook_path", "notebook"
            python = task.get("spark_python_task")
            if isinstance(python, dict) and python.get("source") != "GIT":
                yield python, "python_file", "file"
            for library in task.get("libraries") or []:
                if isinstance(library, dict):
                    for key in ("whl", "jar", "requirements"):
                        if key in library:
                            yield library, key, "file"
    for pipeline in _each(resources, "pipelines"):
        for library in pipeline.get("libraries") or []:
            if isinstance(library, dict):
                for kind in ("notebook", "file"):
                    if isinstance(library.get(kind), dict) and "path" in library[kind]:
                        yield library[kind], "path", kind


def rebase_local_paths(resources: dict, file_dir: str) -> None:
    """Make local paths in one file's resources relative to the bundle root (they are relative to the file)."""
    if not file_dir:
        return
    for container, key, _ in list(local_path_fields(resources)):
        if is_local_path(container[key]) and not any(ch in container[key] for ch in "*?["):
            container[key] = posixpath.normpath(posixpath.join(file_dir, container[key]))


def translate_paths(resources: dict, bundle_root: Path, sync_root: Path, file_path: str) -> None:
    """Local notebook/file paths become ``<file_path>/<path>``; a missing local file is an error."""
    for container, key, kind in list(local_path_fields(resources)):
        value = container[key]
        if not is_local_path(value) or any(ch in value for ch in "*?["):
            continue
        local = (bundle_root / value).resolve()
        if not local.is_file():
            raise ConfigError(
                f"{kind} {value} not found", hint=f"no such file {local}; paths are relative to the config file"
            )
        remote = (
            local.relative_to(sync_root.resolve()).as_posix() if local.is_relative_to(sync_root.resolve()) else value
        )
        if kind == "notebook" and remote.lower().endswith(NOTEBOOK_SUFFIXES):
            remote = remote.rsplit(".", 1)[0]
        container[key] = f"{file_path}/{remote}"


def _contains_user(text: str, user: dict) -> bool:
    return any(
        token and token in text
        for token in (user.get("userName"), user.get("short_name"), user.get("domain_friendly_name"))
    )


def check_development(tree: dict, user: dict | None) -> None:
    """Errors for ``mode: development`` (README "Configuration", **Modes and presets**)."""
    presets = tree.get("presets") or {}
    if presets.get("trigger_pause_status") == "UNPAUSED":
        raise ConfigError("target with 'mode: development' cannot set trigger pause status to UNPAUSED by default")
    if user is None:
        return
    prefix = presets.get("name_prefix") or ""
    if prefix and not _contains_user(prefix, user):
        raise ConfigError(
            "prefix should contain the current username or ${workspace.current_user.short_name} to ensure "
            "uniqueness when using 'mode: development'"
        )
    workspace = tree.get("workspace") or {}
    for field in ("root_path", "file_path", "resource_path", "artifact_path", "state_path"):
        value = str(workspace.get(field) or "")
        if value and not _contains_user(value, user):
            if field == "artifact_path" and value.startswith("/Volumes/"):
                raise ConfigError(
                    "artifact_path should contain the current username or ${workspace.current_user.short_name} "
                    "to ensure uniqueness when using 'mode: development'"
                )
            raise ConfigError(
                f"{field} must start with '~/' or contain the current username to ensure uniqueness when using "
                "'mode: development'"
            )


def check_production(tree: dict, user: dict | None, root_path_in_target: bool, warnings: list[str]) -> None:
    """Checks for ``mode: production`` (README "Configuration", **Modes and presets**)."""
    resources = tree.get("resources") or {}
    for pipeline in _each(resources, "pipelines"):
        if pipeline.get("development") is True:
            raise ConfigError("target with 'mode: production' cannot include a pipeline with 'development: true'")
    if (tree.get("bundle") or {}).get("cluster_id"):
        warnings.append("Setting a cluster override for a target that uses 'mode: production' is not recommended")
    if root_path_in_target:
        return
    service_principal = bool(user) and is_service_principal(str(user.get("userName")))
    all_run_as = all(job.get("run_as") for job in _each(resources, "jobs"))
    detail = (
        "A common practice is to use a username or principal name in this path, i.e. use "
        "root_path: /Workspace/Users/<userName>/.bundle/${bundle.name}/${bundle.target}"
    )
    if service_principal or all_run_as:
        warnings.append(
            "target with 'mode: production' should set 'workspace.root_path' to make sure only one copy is deployed. "
            + detail
        )
        return
    raise ConfigError(
        "target with 'mode: production' must set 'workspace.root_path' to make sure only one copy is deployed",
        hint=detail,
    )
