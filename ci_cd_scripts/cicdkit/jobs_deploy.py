"""Deploying the config's jobs (README, "Jobs: deploy, run, destroy"): what `deploy_jobs.py`, `run_job.py` and
`destroy.py` decide about jobs, and the calls that carry it out.

A deployed job is found by its *identity*, three tags every job this module creates carries (`IDENTITY_TAGS`: the
bundle, the target, the job key); a job without them is never read as ours, whatever its name. Pure decisions, with
fast unit tests: the desired settings of each job (`desired_jobs`: identity tags, ``permissions`` split off, task
``whl:`` libraries given in the bundle's relative form resolved against the wheels folder and rewritten to their
uploaded place under ``deploy.libraries_path``), the order jobs are written in when one references another with
``${resources.jobs.<key>.id}`` (`deploy_order`; a cycle is a `ConfigError`), the normalised settings and their diff
(`normalise`, `diff`: defaults the service fills in do not count as changes), and the permissions' comparison.
The I/O around them goes through the client's API families (Jobs 2.2, Permissions 2.0, Workspace 2.0): `plan`
reads, `apply` writes. The Jobs API reference: https://docs.databricks.com/api/azure/workspace/jobs; the
Permissions API: https://docs.databricks.com/api/azure/workspace/permissions.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import posixpath
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from . import pool
from .errors import CICDError, ConfigError, InputError, OperationFailed, ResourceDoesNotExist

IDENTITY_TAGS = ("cicd-bundle", "cicd-target", "cicd-job-key")
REFERENCE = re.compile(r"\$\{resources\.jobs\.([^.}]+)\.id\}")
# Bundle permission levels (top-level `permissions`) and job levels, as the Permissions API names them for jobs.
LEVELS = {
    "CAN_VIEW": "CAN_VIEW",
    "CAN_RUN": "CAN_MANAGE_RUN",
    "CAN_MANAGE_RUN": "CAN_MANAGE_RUN",
    "CAN_MANAGE": "CAN_MANAGE",
    "IS_OWNER": "IS_OWNER",
}
PRINCIPALS = ("user_name", "group_name", "service_principal_name")
# Values the service fills in when a job omits them (jobs/get shows them): equal to "not set" when comparing.
JOB_DEFAULTS = {"max_concurrent_runs": 1, "timeout_seconds": 0, "format": "MULTI_TASK", "edit_mode": "EDITABLE"}
TASK_DEFAULTS = {"run_if": "ALL_SUCCESS", "timeout_seconds": 0}
# Lists the service keeps by a key: compared (and diffed) by that key, not by position.
KEYED_LISTS = {
    "tasks": "task_key",
    "job_clusters": "job_cluster_key",
    "parameters": "name",
    "environments": "environment_key",
}


@dataclasses.dataclass(frozen=True)
class Identity:
    """Which deployment a job belongs to: the bundle's name and the target."""

    bundle: str
    target: str

    def tags(self, key: str) -> dict[str, str]:
        return dict(zip(IDENTITY_TAGS, (self.bundle, self.target, key)))

    def key_of(self, settings: Mapping[str, Any]) -> str | None:
        """The job key when the settings carry this deployment's identity, else None."""
        tags = settings.get("tags") or {}
        if tags.get(IDENTITY_TAGS[0]) == self.bundle and tags.get(IDENTITY_TAGS[1]) == self.target:
            return str(tags.get(IDENTITY_TAGS[2]) or "") or None
        return None


def identity(config: Any) -> Identity:
    return Identity(str((config.tree.get("bundle") or {}).get("name") or ""), str(config.target))


@dataclasses.dataclass(frozen=True)
class DesiredJob:
    """One job of the config: its settings as they will be sent (references still unresolved), its direct
    permissions (None: not managed) and the keys of the jobs it references."""

    key: str
    settings: dict[str, Any]
    acl: tuple[tuple[str, str, str], ...] | None
    references: frozenset[str]


def desired_jobs(config: Any, *, wheels_dir: Path, libraries_path: str | None) -> dict[str, DesiredJob]:
    """The target's ``resources.jobs`` as `DesiredJob`s; `ConfigError` for a bad permission, a wheel that does not
    resolve to exactly one file, or a reference to a job the config does not define."""
    jobs = (config.tree.get("resources") or {}).get("jobs") or {}
    ident = identity(config)
    top = config.tree.get("permissions")
    result: dict[str, DesiredJob] = {}
    for key, spec in jobs.items():
        if not isinstance(spec, Mapping):
            raise ConfigError(f"resources.jobs.{key} must be a map")
        settings = copy.deepcopy(dict(spec))
        own = settings.pop("permissions", None)
        entries = list(top or []) + list(own or [])
        acl = _acl(key, entries) if top is not None or own is not None else None
        settings["tags"] = {**(settings.get("tags") or {}), **ident.tags(key)}
        resolve_wheels(key, settings, wheels_dir, libraries_path)
        refs = frozenset(REFERENCE.findall(json.dumps(settings)))
        unknown = sorted(refs - set(jobs))
        if unknown:
            raise ConfigError(
                f"job {key} references ${{resources.jobs.{unknown[0]}.id}}, which is not a job of this target",
                hint="define that job under resources.jobs, or fix the reference",
            )
        result[key] = DesiredJob(key, settings, acl, refs)
    return result


def _acl(key: str, entries: Iterable[Any]) -> tuple[tuple[str, str, str], ...]:
    acl = []
    for entry in entries:
        named = [p for p in PRINCIPALS if isinstance(entry, Mapping) and entry.get(p)]
        level = LEVELS.get(str(entry.get("level") or entry.get("permission_level") or "")) if named else None
        if len(named) != 1 or level is None:
            raise ConfigError(
                f"job {key}: permission {json.dumps(entry, sort_keys=True)} needs one of {', '.join(PRINCIPALS)} and "
                f"a level ({', '.join(LEVELS)})"
            )
        acl.append((named[0], str(entry[named[0]]), level))
    return tuple(sorted(set(acl)))


def _is_remote(path: str) -> bool:
    return path.startswith(("/", "dbfs:")) or "://" in path


def resolve_wheels(key: str, settings: dict[str, Any], wheels_dir: Path, libraries_path: str | None) -> None:
    """Rewrite each task library ``whl:`` given as a relative path or glob (``../dist/*.whl``) to the one wheel
    of that name in `wheels_dir`, at its uploaded place under `libraries_path`. In place."""
    for task in settings.get("tasks") or []:
        for library in (task.get("libraries") or []) if isinstance(task, Mapping) else []:
            whl = library.get("whl") if isinstance(library, Mapping) else None
            if not isinstance(whl, str) or _is_remote(whl):
                continue
            where = f"job {key} task {task.get('task_key')}: library whl {whl!r}"
            if not libraries_path:
                raise ConfigError(f"{where} is relative but deploy.libraries_path is not set")
            pattern = posixpath.basename(whl)
            found = sorted(p.name for p in wheels_dir.glob(pattern) if p.is_file()) if wheels_dir.is_dir() else []
            if len(found) != 1:
                detail = "no wheel" if not found else f"{len(found)} wheels ({', '.join(found)})"
                raise ConfigError(
                    f"{where} matches {detail} in {wheels_dir}",
                    hint="build the wheels into --wheels-dir, or make the pattern name exactly one wheel",
                )
            library["whl"] = f"{libraries_path.rstrip('/')}/{found[0]}"


def deploy_order(jobs: Mapping[str, DesiredJob]) -> list[str]:
    """Job keys so that a referenced job comes before the jobs referencing it (config order otherwise); a cycle
    is a `ConfigError` naming it."""
    ordered: list[str] = []
    state: dict[str, str] = {}

    def visit(key: str, path: list[str]) -> None:
        if state.get(key) == "done":
            return
        if state.get(key) == "visiting":
            cycle = path[path.index(key) :] + [key]
            raise ConfigError(f"jobs reference each other in a cycle: {' -> '.join(cycle)}")
        state[key] = "visiting"
        for ref in sorted(jobs[key].references):
            visit(ref, path + [key])
        state[key] = "done"
        ordered.append(key)

    for key in jobs:
        visit(key, [])
    return ordered


def substitute(value: Any, ids: Mapping[str, int | None]) -> Any:
    """`value` with every ``${resources.jobs.<key>.id}`` replaced by the job's id (an int when it is the whole
    string; ``<id of KEY>`` for a job not created yet)."""
    if isinstance(value, str):
        whole = REFERENCE.fullmatch(value)
        if whole and ids.get(whole.group(1)) is not None:
            return int(ids[whole.group(1)])  # type: ignore[arg-type]
        return REFERENCE.sub(lambda m: str(ids[m.group(1)]) if ids.get(m.group(1)) else f"<id of {m.group(1)}>", value)
    if isinstance(value, Mapping):
        return {k: substitute(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, ids) for v in value]
    return value


def normalise(settings: Mapping[str, Any], *, keep_run_as: bool = True) -> dict[str, Any]:
    """Settings in a comparable form: empty values and the service's defaults dropped, keyed lists (tasks, job
    clusters, parameters) as maps by their key, numbers as the service stores them."""

    def clean(value: Any, defaults: Mapping[str, Any] | None = None) -> Any:
        if isinstance(value, Mapping):
            out = {}
            for k, v in value.items():
                if k in KEYED_LISTS and isinstance(v, list):
                    v = {str(item.get(KEYED_LISTS[k])): item for item in v if isinstance(item, Mapping)}
                    v = {ik: clean(iv, TASK_DEFAULTS if k == "tasks" else None) for ik, iv in v.items()}
                else:
                    v = clean(v)
                if v in (None, {}, []) or (defaults is not None and k in defaults and v == defaults[k]):
                    continue
                out[str(k)] = v
            return out
        if isinstance(value, list):
            return [clean(v) for v in value]
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value

    result = clean(dict(settings), JOB_DEFAULTS)
    for task in (result.get("tasks") or {}).values():
        if (task.get("notebook_task") or {}).get("source") == "WORKSPACE":
            task["notebook_task"].pop("source")
    if not keep_run_as:
        result.pop("run_as", None)
    return result


def diff(old: Any, new: Any, path: str = "") -> list[str]:
    """The setting paths whose values differ (``tasks[report].notebook_task.notebook_path``), sorted."""
    if isinstance(old, dict) and isinstance(new, dict):
        changes = []
        for key in sorted(set(old) | set(new)):
            keyed = path.rsplit(".", 1)[-1] in KEYED_LISTS
            child = f"{path}[{key}]" if keyed else (f"{path}.{key}" if path else str(key))
            if key not in old or key not in new:
                changes.append(child)
            else:
                changes.extend(diff(old[key], new[key], child))
        return changes
    return [] if old == new else [path or "(settings)"]


def acl_of(permissions: Mapping[str, Any]) -> tuple[tuple[str, str, str], ...]:
    """The direct (not inherited) permissions of a Permissions API answer, as sorted (kind, name, level)."""
    acl = set()
    for entry in permissions.get("access_control_list") or []:
        named = next((p for p in PRINCIPALS if entry.get(p)), None)
        for level in entry.get("all_permissions") or []:
            if named and not level.get("inherited"):
                acl.add((named, str(entry[named]), str(level.get("permission_level"))))
    return tuple(sorted(acl))


def acl_differs(current: Iterable[tuple[str, str, str]], desired: Iterable[tuple[str, str, str]]) -> bool:
    """Whether a PUT of `desired` would change `current`; the owner counts only when `desired` names one."""
    desired = set(desired)
    names_owner = any(level == "IS_OWNER" for _, _, level in desired)
    current = {entry for entry in current if names_owner or entry[2] != "IS_OWNER"}
    return current != desired


def acl_body(acl: Iterable[tuple[str, str, str]]) -> list[dict[str, str]]:
    return [{kind: name, "permission_level": level} for kind, name, level in acl]


# ---- reading the workspace ----------------------------------------------------------------------------------


def find_deployed(client: Any, ident: Identity) -> dict[str, dict[str, Any]]:
    """This deployment's jobs by key (Jobs 2.2 list, every page): ``{key: <listed job>}``. Two jobs with one
    identity are an `OperationFailed` naming both."""
    found: dict[str, dict[str, Any]] = {}
    for job in client.jobs.list_jobs():
        key = ident.key_of(job.get("settings") or {})
        if key is None:
            continue
        if key in found:
            raise OperationFailed(
                f"two jobs carry the identity of job {key} of {ident.bundle}/{ident.target}: "
                f"{found[key]['job_id']} and {job['job_id']}",
                hint="delete the one that should not exist, then deploy again",
            )
        found[key] = job
    return found


def source_paths(jobs: Mapping[str, DesiredJob]) -> dict[str, str]:
    """Workspace paths the jobs' tasks run (notebooks, Python files in the workspace) → the job key naming it."""
    paths: dict[str, str] = {}
    for key, job in jobs.items():
        for task in job.settings.get("tasks") or []:
            notebook = task.get("notebook_task") or {}
            if notebook.get("notebook_path") and str(notebook.get("source") or "WORKSPACE").upper() == "WORKSPACE":
                paths.setdefault(str(notebook["notebook_path"]), key)
            python_file = str((task.get("spark_python_task") or {}).get("python_file") or "")
            if python_file.startswith("/") and not python_file.startswith("/Volumes/"):
                paths.setdefault(python_file, key)
    return paths


def check_sources(client: Any, jobs: Mapping[str, DesiredJob], *, concurrency: int) -> None:
    """`InputError` (before any write) for a notebook or file a task runs that is not in the workspace."""
    paths = source_paths(jobs)

    def missing(path: str) -> str | None:
        try:
            client.workspace.get_status(path)
        except ResourceDoesNotExist:
            return path
        return None

    absent = [p for p in pool.run_all([lambda p=p: missing(p) for p in paths], workers=concurrency) if p]
    if absent:
        raise InputError(
            f"job {paths[absent[0]]} runs {absent[0]}, which is not in the workspace"
            + (f" (and {len(absent) - 1} more missing)" if len(absent) > 1 else ""),
            hint="deploy the notebooks first (deploy_notebooks.py), or fix the task's path",
        )


@dataclasses.dataclass
class Action:
    """What happens to one job: ``create``, ``update`` (with the changed setting paths), ``unchanged`` or
    ``delete``; and whether its permissions are set."""

    key: str
    kind: str
    name: str
    job_id: int | None = None
    changes: list[str] = dataclasses.field(default_factory=list)
    job: DesiredJob | None = None
    set_acl: bool = False

    def describe(self) -> str:
        where = f" (job {self.job_id})" if self.job_id else ""
        text = f"{'' if self.kind == 'unchanged' else self.kind + ' '}{self.key}{where}: {self.name}"
        if self.changes:
            shown = self.changes[:8]
            text += f" — changed: {', '.join(shown)}" + (
                f" and {len(self.changes) - 8} more" if len(self.changes) > 8 else ""
            )
        if self.set_acl:
            text += " — permissions " + ("set" if self.kind == "create" else "changed")
        return text


def plan(
    client: Any,
    jobs: Mapping[str, DesiredJob],
    ident: Identity,
    *,
    only: Iterable[str] = (),
    prune: bool = False,
    concurrency: int,
) -> tuple[list[Action], dict[str, int]]:
    """The actions, in the order `apply` performs them (creates and updates in `deploy_order`, deletes last), and
    the ids of the deployed jobs by key. Read-only calls: list, get per deployed job, permissions per managed job."""
    chosen = select(jobs, only)
    selected = [k for k in deploy_order(jobs) if k in chosen]
    deployed = find_deployed(client, ident)
    ids: dict[str, int | None] = {k: int(j["job_id"]) for k, j in deployed.items()}

    def read(key: str) -> tuple[dict[str, Any], tuple | None]:
        job_id = ids[key]
        current = client.jobs.get_job(job_id)
        acl = acl_of(client.permissions.get("jobs", job_id)) if jobs[key].acl is not None else None
        return current, acl

    existing = [k for k in selected if ids.get(k) is not None]
    reads = dict(zip(existing, pool.run_all([lambda k=k: read(k) for k in existing], workers=concurrency)))
    actions = []
    for key in selected:
        job = jobs[key]
        name = str(job.settings.get("name") or key)
        if key not in reads:
            actions.append(Action(key, "create", name, job=job, set_acl=bool(job.acl is not None and job.acl)))
            continue
        current, acl = reads[key]
        keep = "run_as" in job.settings
        changes = diff(
            normalise(current.get("settings") or {}, keep_run_as=keep), normalise(substitute(job.settings, ids))
        )
        set_acl = acl is not None and acl_differs(acl, job.acl or ())
        actions.append(Action(key, "update" if changes else "unchanged", name, ids[key], changes, job, set_acl))
    if prune:
        for key, listed in deployed.items():
            if key not in jobs:
                name = str((listed.get("settings") or {}).get("name") or key)
                actions.append(Action(key, "delete", name, int(listed["job_id"])))
    return actions, {k: v for k, v in ids.items() if v is not None}


def select(jobs: Mapping[str, DesiredJob], only: Iterable[str]) -> dict[str, DesiredJob]:
    """The jobs named by --job (all when none is) and the jobs they reference; `ConfigError` for an unknown key."""
    only = set(only)
    unknown = sorted(only - set(jobs))
    if unknown:
        raise ConfigError(f"--job {unknown[0]} is not a job of this target", hint=f"jobs: {', '.join(jobs) or 'none'}")
    return {k: j for k, j in jobs.items() if not only or k in only or _needed_by(k, only, jobs)}


def _needed_by(key: str, only: set[str], jobs: Mapping[str, DesiredJob]) -> bool:
    """Whether a selected job references `key` (directly or through others): it is deployed with them."""
    seen, todo = set(), list(only)
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        if key in jobs[current].references:
            return True
        todo.extend(jobs[current].references)
    return False


def apply(
    client: Any, actions: list[Action], ids: dict[str, int], *, on_done: Callable[[Action], None] = lambda a: None
) -> dict[str, int]:
    """Carry the actions out in order; returns the job ids by key. A refused call is an `OperationFailed` naming
    the job key (what was written before it stays; the next deploy finds it by identity)."""
    ids = dict(ids)
    for action in actions:
        try:
            if action.kind == "delete":
                client.jobs.delete(action.job_id)
                ids.pop(action.key, None)
            elif action.kind in ("create", "update"):
                settings = substitute(action.job.settings, ids)
                if action.kind == "create":
                    action.job_id = client.jobs.create(settings)
                else:
                    client.jobs.reset(action.job_id, settings)
            if action.set_acl:
                client.permissions.set("jobs", action.job_id, acl_body(action.job.acl or ()))
        except CICDError as error:  # the service's refusal, or a lost connection / the step's deadline
            verb = {"create": "creating", "update": "updating", "delete": "deleting"}.get(action.kind)
            what = f"{verb} job {action.key}" if verb else f"setting the permissions of job {action.key}"
            raise OperationFailed(f"{what} ({action.name}) failed: {error.one_line()}") from None
        if action.job_id is not None and action.kind != "delete":
            ids[action.key] = action.job_id
        on_done(action)
    return ids


def page_url(host: str, job_id: int) -> str:
    return f"{host.rstrip('/')}/#job/{job_id}"
