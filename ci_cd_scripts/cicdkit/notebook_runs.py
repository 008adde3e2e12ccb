"""Test notebooks run on a cluster: find them, submit one one-time run each, wait for all under one deadline.

`find_notebooks` turns workspace paths (notebooks, or folders searched for names matching a pattern) into the list
to run, checking that each exists before anything is submitted. `run_notebooks` submits them concurrently (Jobs
2.1 ``runs/submit`` with one ``notebook_task`` task and an idempotency token, so a retried submit never starts a
second run), waits for each with the client's deadline-bounded poll (1 s growing to the poll maximum), cancels
what is still running when the deadline comes, and returns one record per notebook (`run_results.record`) with
the ``runs/get`` result and the task run's ``runs/get-output``. It never raises for one notebook's failure: a
run that could not be submitted or read is a record saying why, so every notebook gets its verdict.

It owns the orchestration only: HTTP, retries and waits are the client's (`dbclient`), the verdicts are
`run_results.judge`'s, printing is the caller's (through the `on_event` callback).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import json
import math
import posixpath
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from . import pool, run_results
from .errors import CICDError, InputError, ResourceDoesNotExist, WaitTimedOut

DEFAULT_PATTERN = "test_*"
DEFAULT_POLL_MAX_SECONDS = 15.0
# After the deadline: time to cancel the late runs and read their final state and output.
CANCEL_GRACE_SECONDS = 30.0
TASK_KEY = "notebook"


@dataclasses.dataclass(frozen=True)
class Notebook:
    """A notebook to run: its workspace path and the name its results go by (relative to the notebooks folder)."""

    path: str
    name: str


def resolve_paths(entries: Sequence[str], notebooks_path: str | None) -> list[str]:
    """Workspace paths for `entries`: absolute ones as they are, relative ones under `notebooks_path`."""
    paths = []
    for entry in entries:
        entry = str(entry).strip()
        if not entry:
            raise InputError("an empty notebook path was given", hint="check deploy.test_notebooks")
        if entry.startswith("/"):
            paths.append(posixpath.normpath(entry))
        elif notebooks_path:
            paths.append(posixpath.normpath(posixpath.join(str(notebooks_path), entry)))
        else:
            raise InputError(
                f"notebook path {entry!r} is relative and there is no deploy.notebooks_path to resolve it under",
                hint="pass an absolute workspace path, or set deploy.notebooks_path",
            )
    return list(dict.fromkeys(paths))


def display_name(path: str, notebooks_path: str | None) -> str:
    base = posixpath.normpath(str(notebooks_path)) if notebooks_path else None
    if base and path.startswith(base.rstrip("/") + "/"):
        return path[len(base.rstrip("/")) + 1 :]
    return path


def find_notebooks(
    client: Any,
    paths: Sequence[str],
    *,
    notebooks_path: str | None = None,
    pattern: str = DEFAULT_PATTERN,
    concurrency: int = 8,
) -> list[Notebook]:
    """The notebooks to run, in the order given (a folder's in path order); `InputError` for a path that does not
    exist, is not a notebook or folder, or a folder without a notebook matching `pattern`. Read-only calls."""

    def expand(path: str) -> list[str]:
        try:
            status = client.workspace.get_status(path)
        except ResourceDoesNotExist:
            raise InputError(
                f"notebook {path} does not exist in the workspace",
                hint="deploy the notebooks first (deploy_notebooks.py), or fix the path / deploy.test_notebooks",
            ) from None
        kind = status.get("object_type")
        if kind == "NOTEBOOK":
            return [path]
        if kind != "DIRECTORY":
            raise InputError(f"{path} is a {str(kind).lower()}, not a notebook or folder")
        found = sorted(_walk_notebooks(client, path))
        matching = [p for p in found if fnmatch.fnmatchcase(posixpath.basename(p), pattern)]
        if not matching:
            raise InputError(
                f"folder {path} holds no notebook matching {pattern!r} ({len(found)} notebooks in it)",
                hint="deploy the test notebooks first, or pass --pattern",
            )
        return matching

    expanded = pool.run_all([lambda p=p: expand(p) for p in paths], workers=concurrency)
    ordered = list(dict.fromkeys(p for group in expanded for p in group))
    return [Notebook(path=p, name=display_name(p, notebooks_path)) for p in ordered]


def _walk_notebooks(client: Any, folder: str) -> list[str]:
    """Notebooks below `folder`, spelled under `folder` as given (the service may answer /Shared/... for a
    /Workspace/Shared/... folder)."""
    found, pending = [], [folder]
    while pending:
        current = pending.pop()
        for item in client.workspace.list(current):
            path = posixpath.join(current, posixpath.basename(str(item.get("path", "")).rstrip("/")))
            if item.get("object_type") == "NOTEBOOK":
                found.append(path)
            elif item.get("object_type") == "DIRECTORY":
                pending.append(path)
    return found


def submit_spec(
    notebook: Notebook,
    *,
    cluster: Mapping[str, Any],
    parameters: Mapping[str, str],
    run_name_prefix: str = "ci-cd test",
) -> dict[str, Any]:
    """The ``runs/submit`` body (without timeout and token): one notebook task on the given cluster.

    `cluster` is ``{"existing_cluster_id": ID}`` or ``{"new_cluster": {...}}``."""
    task: dict[str, Any] = {
        "task_key": TASK_KEY,
        "notebook_task": {"notebook_path": notebook.path, "base_parameters": dict(parameters), "source": "WORKSPACE"},
        **cluster,
    }
    return {"run_name": f"{run_name_prefix}: {notebook.name}"[:4096], "tasks": [task]}


def idempotency_token(spec: Mapping[str, Any], build: Mapping[str, str]) -> str:
    """A token (64 hex characters, the service's maximum) from the build and the run's spec: the same submit
    retried gets the same run; another build, stage attempt, target or parameters get a run of their own."""
    material = json.dumps({"build": dict(build), "spec": spec}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


def build_identity(environ: Mapping[str, str], target: str | None) -> dict[str, str]:
    """What makes one pipeline attempt's runs its own: the build id and attempts Azure Pipelines sets, the stage and
    job, and the target; outside a pipeline a fresh id per invocation (so each local try runs anew)."""
    keys = (
        "BUILD_BUILDID",
        "SYSTEM_STAGENAME",
        "SYSTEM_STAGEATTEMPT",
        "SYSTEM_JOBNAME",
        "SYSTEM_JOBATTEMPT",
        "SYSTEM_COLLECTIONURI",
        "SYSTEM_TEAMPROJECT",
    )
    identity = {key: environ[key] for key in keys if environ.get(key)}
    if "BUILD_BUILDID" not in identity:
        identity["invocation"] = uuid.uuid4().hex
    identity["target"] = target or ""
    return identity


@dataclasses.dataclass(frozen=True)
class Event:
    """Something worth a line in the log: ``submitted``, ``page`` (the run's URL, once), ``state`` (a change),
    ``timeout`` (the deadline came: cancelling)."""

    kind: str
    notebook: Notebook
    text: str
    run: Mapping[str, Any] | None = None


class _Interrupted(Exception):
    """Internal: the step is stopping (Ctrl-C); the worker cancels its run."""


def run_notebooks(
    client: Any,
    notebooks: Sequence[Notebook],
    *,
    cluster: Mapping[str, Any],
    parameters: Mapping[str, str],
    build: Mapping[str, str],
    timeout: float,
    concurrency: int,
    on_event: Callable[[Event], None] = lambda event: None,
    on_record: Callable[[dict[str, Any]], None] = lambda record: None,
) -> list[dict[str, Any]]:
    """Run every notebook (at most `concurrency` at once) by a deadline `timeout` seconds from now; returns their
    records in notebook order. ``on_record`` gets each record as its run settles (write it there)."""
    deadline = time.monotonic() + timeout
    stopping = threading.Event()

    def one(notebook: Notebook) -> dict[str, Any]:
        record = _run_one(
            client,
            notebook,
            cluster=cluster,
            parameters=parameters,
            build=build,
            deadline=deadline,
            timeout=timeout,
            stopping=stopping,
            on_event=on_event,
        )
        on_record(record)
        return record

    try:
        return pool.run_all([lambda nb=nb: one(nb) for nb in notebooks], workers=concurrency, stop=stopping)
    finally:
        stopping.set()


def _run_one(
    client: Any,
    notebook: Notebook,
    *,
    cluster: Mapping[str, Any],
    parameters: Mapping[str, str],
    build: Mapping[str, str],
    deadline: float,
    timeout: float,
    stopping: threading.Event,
    on_event: Callable[[Event], None],
) -> dict[str, Any]:
    def record(
        run: Mapping[str, Any] | None,
        output: Mapping[str, Any] | None = None,
        *,
        timed_out: bool = False,
        error: str | None = None,
    ) -> dict[str, Any]:
        return run_results.record(
            notebook_path=notebook.path,
            name=notebook.name,
            run=run,
            output=output,
            timed_out=timed_out,
            timeout_seconds=timeout,
            error=error,
        )

    left = deadline - time.monotonic()
    if left < 1 or stopping.is_set():
        why = "the step was interrupted" if stopping.is_set() else "the --timeout passed before its turn came"
        return record(None, error=f"{why} (raise --timeout or --concurrency)")
    spec = submit_spec(notebook, cluster=cluster, parameters=parameters)
    token = idempotency_token(spec, build)
    spec["timeout_seconds"] = max(1, math.ceil(left))  # the service stops it too, should we not be there to cancel
    try:
        run_id = client.jobs.submit(spec, idempotency_token=token)
    except CICDError as error:
        return record(None, error=error.one_line())
    on_event(Event("submitted", notebook, f"run {run_id}"))

    seen: dict[str, Any] = {}

    def observe(run: Mapping[str, Any], elapsed: float | None = None) -> None:
        if not seen.get("page") and run.get("run_page_url"):
            seen["page"] = True
            on_event(Event("page", notebook, str(run["run_page_url"]), run))
        state = state_label(run)
        if state != seen.get("state"):
            seen["state"] = state
            on_event(Event("state", notebook, state, run))
        if stopping.is_set():
            raise _Interrupted

    last: Mapping[str, Any] | None = None
    timed_out = False
    try:
        last = client.jobs.wait_for_run(run_id, timeout=max(0.0, deadline - time.monotonic()), on_poll=observe)
    except (WaitTimedOut, _Interrupted) as stop:
        timed_out = isinstance(stop, WaitTimedOut)
        on_event(
            Event("timeout", notebook, "the --timeout passed: cancelling" if timed_out else "interrupted: cancelling")
        )
        last = cancel_and_settle(client, run_id)
    except CICDError as error:
        # The run's state cannot be read (the workspace refuses runs/get): cancel it rather than leave it running.
        settled = cancel_and_settle(client, run_id)
        return record(settled, error=f"cannot follow run {run_id}: {error.one_line()}")
    if last is None:
        return record(None, timed_out=timed_out, error=f"run {run_id} could not be read after cancelling it")
    observe_final = dict(last)
    if state_label(observe_final) != seen.get("state"):
        seen["state"] = state_label(observe_final)
        on_event(Event("state", notebook, seen["state"], observe_final))
    output, output_error = task_output(client, observe_final)
    result = record(observe_final, output, timed_out=timed_out, error=output_error)
    return result


def cancel_and_settle(client: Any, run_id: int) -> dict[str, Any] | None:
    """Cancel the run and wait (briefly, within the client's step deadline) for it to end; the last state read."""
    try:
        client.jobs.cancel_run(run_id)
        return client.jobs.wait_for_run(run_id, timeout=CANCEL_GRACE_SECONDS)
    except CICDError:
        try:
            return client.jobs.get_run(run_id)
        except CICDError:
            return None


def task_output(client: Any, run: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """``runs/get-output`` of one task run (never the parent's: the service refuses that for task runs): the first
    task that did not succeed, else the last (for a one-task run, its task); and why it could not be read."""
    tasks = [task for task in run.get("tasks") or [] if isinstance(task, Mapping) and task.get("run_id")]
    if not tasks:
        return None, None
    failed = [task for task in tasks if (task.get("state") or {}).get("result_state") != "SUCCESS"]
    task = failed[0] if failed else tasks[-1]
    try:
        return client.jobs.get_output(int(task["run_id"])), None
    except CICDError as error:
        return None, f"cannot read the output of task run {task['run_id']}: {error.one_line()}"


def state_label(run: Mapping[str, Any]) -> str:
    state = run.get("state") if isinstance(run.get("state"), Mapping) else {}
    return (
        " ".join(str(part) for part in (state.get("life_cycle_state"), state.get("result_state")) if part) or "UNKNOWN"
    )
