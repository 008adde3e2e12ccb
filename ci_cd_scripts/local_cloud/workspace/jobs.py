"""Local workspace: the Jobs API (2.0/2.1/2.2): jobs/create, get, list, reset, update, delete, run-now and the
runs/submit, get, get-output, list, cancel and delete endpoints.

Owns request validation (tasks, clusters, idempotency tokens), job settings and their views (2.2 pages tasks
and job clusters). Runs themselves, their records and execution, are job_runs.py (`_Runs`, the emulator as
these handlers see it); their state machine is run_state.py. Shapes and messages follow the public Jobs API
reference (https://docs.databricks.com/api/azure/workspace/jobs).
"""

from __future__ import annotations

import json
import re
from typing import Any

from .job_runs import _Runs
from .run_state import TASK_TYPES, TERMINAL_LIFE_CYCLES
from .wire import (
    MB,
    OUTPUT_LIMIT,
    USER_NAME,
    Request,
    Response,
    decode_page_token,
    encode_page_token,
    invalid,
    invalid_state,
    now_ms,
    ok,
    paginate,
    route,
    to_bool,
)

JOB_VERSIONS = ("2.0", "2.1", "2.2")


def _get_job(emu: _Runs, job_id: Any) -> dict:
    try:
        job = emu.jobs.get(int(job_id))
    except (TypeError, ValueError):
        job = None
    if job is None:
        raise invalid(f"Job {job_id} does not exist.")
    return job


def _validate_tasks(tasks: Any) -> None:
    if not isinstance(tasks, list) or not tasks:
        raise invalid("tasks must be a non-empty list")
    keys = set()
    for task in tasks:
        if not isinstance(task, dict):
            raise invalid("Each task must be an object")
        key = task.get("task_key")
        if not key or not isinstance(key, str):
            raise invalid("Missing required field: task_key")
        if not re.fullmatch(r"[\w\-]{1,100}", key):
            raise invalid(f"Invalid task_key {key!r}: use letters, digits, '_' and '-' (at most 100)")
        if key in keys:
            raise invalid(f"Task key {key} is duplicated")
        keys.add(key)


def _check_clusters(emu: _Runs, tasks: list[dict]) -> None:
    for task in tasks:
        cluster_id = task.get("existing_cluster_id")
        if cluster_id and str(cluster_id) not in emu.clusters:
            raise invalid(f"Cluster {cluster_id} does not exist")
        notebook = task.get("notebook_task") or {}
        if len(json.dumps(notebook.get("base_parameters") or {})) > MB:
            raise invalid("base_parameters cannot exceed 1 MB once serialised to JSON.")


def _idempotent(emu: _Runs, request: Request) -> tuple[str | None, int | None]:
    token = request.param("idempotency_token")
    if token is None:
        return None, None
    token = str(token)
    if len(token) > 64:
        raise invalid("idempotency_token must be at most 64 characters long.")
    return token, emu.idempotency.get(token)


@route("POST", "jobs/runs/submit", JOB_VERSIONS)
def runs_submit(emu: _Runs, request: Request) -> Response:
    body = request.json()
    token, existing = _idempotent(emu, request)
    if existing is not None and existing in emu.runs:
        return ok({"run_id": existing})
    if body.get("tasks") is not None:
        _validate_tasks(body["tasks"])
        _check_clusters(emu, body["tasks"])
    elif any(kind in body for kind in TASK_TYPES):
        _check_clusters(emu, [body])
    else:
        raise invalid("A run must define tasks (or, in the single-task form, a task such as notebook_task).")
    run = emu.new_run(body, run_type="SUBMIT_RUN", run_name=str(body.get("run_name") or "Untitled"))
    if token is not None:
        emu.idempotency[token] = run["run_id"]
    return ok({"run_id": run["run_id"]})


@route("GET", "jobs/runs/get", JOB_VERSIONS)
def runs_get(emu: _Runs, request: Request) -> Response:
    run = emu.get_run(request.required("run_id"))
    return ok(emu.run_view(run, request.version, request.param("page_token")))


@route("GET", "jobs/runs/get-output", JOB_VERSIONS)
def runs_get_output(emu: _Runs, request: Request) -> Response:
    run = emu.get_run(request.required("run_id"))
    if run.get("_task_ids"):
        raise invalid(
            "Retrieving the output of runs with multiple tasks is not supported. Please retrieve the output of each "
            "individual task run instead."
        )
    body: dict[str, Any] = {"metadata": emu.run_view(run)}
    output = run.get("_output") or {}
    result_state = run["state"].get("result_state")
    if output.get("error"):
        body["error"] = output["error"]
        if output.get("error_trace"):
            body["error_trace"] = output["error_trace"]
    is_notebook = "notebook_task" in run
    if is_notebook and result_state == "SUCCESS":
        result = output.get("result")
        notebook_output: dict[str, Any] = {}
        if result is not None:
            encoded = result.encode("utf-8")
            notebook_output["result"] = encoded[:OUTPUT_LIMIT].decode("utf-8", "ignore")
            notebook_output["truncated"] = len(encoded) > OUTPUT_LIMIT
        body["notebook_output"] = notebook_output
    if not is_notebook and output.get("logs") is not None:
        logs = output["logs"]
        body["logs"] = logs
        body["logs_truncated"] = False
    return ok(body)


@route("POST", "jobs/runs/cancel", JOB_VERSIONS)
def runs_cancel(emu: _Runs, request: Request) -> Response:
    run = emu.get_run(request.required("run_id"))
    if "_parent" in run:
        run = emu.runs[run["_parent"]]
    emu.cancel_run(run)
    return ok()


@route("POST", "jobs/runs/delete", JOB_VERSIONS)
def runs_delete(emu: _Runs, request: Request) -> Response:
    run = emu.get_run(request.required("run_id"))
    if run["state"]["life_cycle_state"] not in TERMINAL_LIFE_CYCLES:
        raise invalid_state(f"Run {run['run_id']} is still active and cannot be deleted.")
    for task_id in run.get("_task_ids", []):
        emu.runs.pop(task_id, None)
    emu.runs.pop(run["run_id"], None)
    emu.mark_dirty()
    return ok()


@route("GET", "jobs/runs/list", JOB_VERSIONS)
def runs_list(emu: _Runs, request: Request) -> Response:
    limit = request.int_param("limit", 25)
    if limit is None or not 0 <= limit <= 25:
        raise invalid(f"limit must be between 1 and 25, got {limit}")
    limit = limit or 25
    runs = [r for r in emu.runs.values() if "_parent" not in r]
    job_id = request.param("job_id")
    if job_id not in (None, ""):
        runs = [r for r in runs if str(r.get("job_id")) == str(job_id)]
    if to_bool(request.param("active_only")):
        runs = [r for r in runs if r["state"]["life_cycle_state"] not in TERMINAL_LIFE_CYCLES]
    if to_bool(request.param("completed_only")):
        runs = [r for r in runs if r["state"]["life_cycle_state"] in TERMINAL_LIFE_CYCLES]
    run_type = request.param("run_type")
    if run_type:
        runs = [r for r in runs if r.get("run_type") == run_type]
    runs.sort(key=lambda r: r["run_id"], reverse=True)
    offset = request.int_param("offset", 0) or 0
    token = request.param("page_token")
    start = decode_page_token(token) if token else offset
    page = runs[start : start + limit]
    expand = to_bool(request.param("expand_tasks"))
    views = []
    for run in page:
        view = emu.run_view(run)
        if not expand:
            view.pop("tasks", None)
        views.append(view)
    body: dict[str, Any] = {"has_more": start + limit < len(runs)}
    if views:
        body["runs"] = views
    if body["has_more"]:
        body["next_page_token"] = encode_page_token(start + limit)
    if start > 0:
        body["prev_page_token"] = encode_page_token(max(0, start - limit))
    return ok(body)


def _job_settings(settings: Any) -> dict:
    if not isinstance(settings, dict):
        raise invalid("Job settings must be an object.")
    settings = json.loads(json.dumps(settings))
    settings.pop("job_id", None)
    if settings.get("tasks") is not None:
        _validate_tasks(settings["tasks"])
    settings.setdefault("name", "Untitled")
    settings.setdefault("email_notifications", {})
    settings.setdefault("max_concurrent_runs", 1)
    settings.setdefault("timeout_seconds", 0)
    settings["format"] = (
        "MULTI_TASK"
        if settings.get("tasks") is not None or not any(k in settings for k in TASK_TYPES)
        else "SINGLE_TASK"
    )
    run_as = settings.get("run_as")
    if run_as is not None:
        names = [run_as.get(k) for k in ("user_name", "service_principal_name")] if isinstance(run_as, dict) else []
        if sum(bool(n) for n in names) != 1:
            raise invalid("run_as must name exactly one of user_name or service_principal_name.")
    return settings


def _run_as_name(settings: dict) -> str:
    run_as = settings.get("run_as") or {}
    return str(run_as.get("user_name") or run_as.get("service_principal_name") or USER_NAME)


def _job_view(job: dict, version: str, page_token: Any = None, expand_tasks: bool = True) -> dict:
    view = json.loads(json.dumps({k: v for k, v in job.items() if not k.startswith("_")}))
    settings = view["settings"]
    if not expand_tasks:
        settings.pop("tasks", None)
        settings.pop("job_clusters", None)
    elif version == "2.2":
        for key in ("tasks", "job_clusters"):
            items = settings.get(key)
            if items is not None and (len(items) > 100 or page_token):
                settings[key], next_token = paginate(items, page_token, 100)
                if next_token:
                    view["next_page_token"] = next_token
    return view


@route("POST", "jobs/create", JOB_VERSIONS)
def jobs_create(emu: _Runs, request: Request) -> Response:
    body = dict(request.json())
    body.pop("access_control_list", None)
    settings = _job_settings(body)
    job_id = emu.new_id("job")
    emu.jobs[job_id] = {
        "job_id": job_id,
        "creator_user_name": USER_NAME,
        "run_as_user_name": _run_as_name(settings),
        "created_time": now_ms(),
        "settings": settings,
        "_acl": [{"user_name": USER_NAME, "permission_level": "IS_OWNER"}],
    }
    emu.mark_dirty()
    return ok({"job_id": job_id})


@route("GET", "jobs/get", JOB_VERSIONS)
def jobs_get(emu: _Runs, request: Request) -> Response:
    job = _get_job(emu, request.required("job_id"))
    return ok(_job_view(job, request.version, request.param("page_token")))


@route("POST", "jobs/reset", JOB_VERSIONS)
def jobs_reset(emu: _Runs, request: Request) -> Response:
    job = _get_job(emu, request.required("job_id"))
    job["settings"] = _job_settings(request.required("new_settings"))
    job["run_as_user_name"] = _run_as_name(job["settings"])
    emu.mark_dirty()
    return ok()


@route("POST", "jobs/update", JOB_VERSIONS)
def jobs_update(emu: _Runs, request: Request) -> Response:
    job = _get_job(emu, request.required("job_id"))
    settings = json.loads(json.dumps(job["settings"]))
    new = request.param("new_settings") or {}
    if not isinstance(new, dict):
        raise invalid("new_settings must be an object.")
    for field_name in request.param("fields_to_remove") or []:
        top, _, key = str(field_name).partition("/")
        if key and isinstance(settings.get(top), list):
            id_key = "task_key" if top == "tasks" else "job_cluster_key"
            settings[top] = [item for item in settings[top] if item.get(id_key) != key]
        elif not key:
            settings.pop(top, None)
    for key, value in new.items():
        if key in ("tasks", "job_clusters") and isinstance(value, list) and isinstance(settings.get(key), list):
            id_key = "task_key" if key == "tasks" else "job_cluster_key"
            merged = {item.get(id_key): item for item in settings[key]}
            for item in value:
                merged[item.get(id_key)] = item
            settings[key] = list(merged.values())
        else:
            settings[key] = value
    job["settings"] = _job_settings(settings)
    job["run_as_user_name"] = _run_as_name(job["settings"])
    emu.mark_dirty()
    return ok()


@route("POST", "jobs/delete", JOB_VERSIONS)
def jobs_delete(emu: _Runs, request: Request) -> Response:
    job = _get_job(emu, request.required("job_id"))
    emu.jobs.pop(job["job_id"], None)
    emu.mark_dirty()
    return ok()


@route("GET", "jobs/list", JOB_VERSIONS)
def jobs_list(emu: _Runs, request: Request) -> Response:
    limit = request.int_param("limit", 20)
    if limit is None or not 1 <= limit <= 100:
        raise invalid(f"The limit must be between 1 and 100, got {limit}.")
    jobs = sorted(emu.jobs.values(), key=lambda j: j["job_id"])
    name = request.param("name")
    if name:
        jobs = [j for j in jobs if str(j["settings"].get("name", "")).lower() == str(name).lower()]
    token = request.param("page_token")
    start = decode_page_token(token) if token else (request.int_param("offset", 0) or 0)
    page = jobs[start : start + limit]
    expand = to_bool(request.param("expand_tasks"))
    has_more = start + limit < len(jobs)
    body: dict[str, Any] = {"has_more": has_more}
    if page:
        body["jobs"] = [_job_view(job, request.version, expand_tasks=expand) for job in page]
    if has_more:
        body["next_page_token"] = encode_page_token(start + limit)
    if start > 0:
        body["prev_page_token"] = encode_page_token(max(0, start - limit))
    return ok(body)


@route("POST", "jobs/run-now", JOB_VERSIONS)
def jobs_run_now(emu: _Runs, request: Request) -> Response:
    job = _get_job(emu, request.required("job_id"))
    token, existing = _idempotent(emu, request)
    if existing is not None and existing in emu.runs:
        return ok({"run_id": existing, "number_in_job": existing})
    tasks = job["settings"].get("tasks")
    if tasks is not None:
        _check_clusters(emu, tasks)
    params = {
        "notebook_params": request.param("notebook_params") or {},
        "python_params": request.param("python_params") or [],
        "job_parameters": request.param("job_parameters") or {},
    }
    if not all(isinstance(params[k], t) for k, t in (("notebook_params", dict), ("job_parameters", dict))):
        raise invalid("notebook_params and job_parameters must be objects.")
    run = emu.start_job_run(job, params)
    if token is not None:
        emu.idempotency[token] = run["run_id"]
    return ok({"run_id": run["run_id"], "number_in_job": run["number_in_job"]})
