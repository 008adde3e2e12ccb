"""Local workspace: the run state machine of the Jobs API, as pure functions of run records (dicts).

Owns the life-cycle and result states a run or task run can take, their `status`/`termination_details`
equivalents (Jobs 2.2), the order tasks run in (depends_on) and whether a task runs at all (run_if). The
records themselves and their execution are job_runs.py; the endpoints are jobs.py. States and codes follow the
public Jobs API reference (https://docs.databricks.com/api/azure/workspace/jobs).
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Any

from .wire import ApiError, normalise_dbfs_path, normalise_workspace_path

TERMINAL_LIFE_CYCLES = ("TERMINATED", "SKIPPED", "INTERNAL_ERROR")
TASK_TYPES = (
    "notebook_task",
    "spark_python_task",
    "python_wheel_task",
    "spark_jar_task",
    "spark_submit_task",
    "sql_task",
    "dbt_task",
    "pipeline_task",
    "run_job_task",
    "condition_task",
    "for_each_task",
    "clean_rooms_notebook_task",
    "dashboard_task",
    "power_bi_task",
    "gen_ai_compute_task",
)
EXECUTABLE_TASK_TYPES = ("notebook_task", "spark_python_task", "python_wheel_task")
TERMINATION = {
    "SUCCESS": ("SUCCESS", "SUCCESS", ""),
    "FAILED": ("RUN_EXECUTION_ERROR", "CLIENT_ERROR", "Workload failed, see run output for details"),
    "TIMEDOUT": ("RUN_EXECUTION_ERROR", "CLIENT_ERROR", "Run timed out"),
    "CANCELED": ("USER_CANCELED", "SUCCESS", "Run was cancelled"),
    "UPSTREAM_FAILED": ("SKIPPED", "CLIENT_ERROR", "Upstream task failed"),
    "UPSTREAM_CANCELED": ("SKIPPED", "CLIENT_ERROR", "Upstream task was cancelled"),
    "EXCLUDED": ("SKIPPED", "SUCCESS", "Task was excluded"),
    "INTERNAL_ERROR": ("INTERNAL_ERROR", "INTERNAL_ERROR", "Internal error"),
}


@dataclass
class Outcome:
    """How a task run ended: its result state, output (result, error, trace, logs) and state message."""

    result_state: str
    result: str | None = None
    error: str | None = None
    error_trace: str | None = None
    logs: str | None = None
    state_message: str = ""
    life_cycle_state: str = "TERMINATED"


def set_state(run: dict, life_cycle: str, result_state: str | None = None, message: str = "") -> None:
    """Set a run's (or task run's) `state` (2.0/2.1 shape) and `status` (2.2 shape) together."""
    state = {
        "life_cycle_state": life_cycle,
        "state_message": message,
        "user_cancelled_or_timedout": result_state in ("CANCELED", "TIMEDOUT"),
    }
    if result_state:
        state["result_state"] = result_state
    run["state"] = state
    status_state = "TERMINATED" if life_cycle in TERMINAL_LIFE_CYCLES else life_cycle
    status: dict[str, Any] = {"state": status_state}
    if status_state == "TERMINATED":
        code, kind, text = TERMINATION.get(result_state or "INTERNAL_ERROR", TERMINATION["INTERNAL_ERROR"])
        status["termination_details"] = {"code": code, "type": kind, "message": message or text}
    run["status"] = status


def dependency_order(tasks: list[dict]) -> list[dict]:
    """Tasks in dependency order (submission order among ready tasks); cycles keep submission order."""
    by_key = {t.get("task_key"): t for t in tasks}
    done: set[str] = set()
    ordered: list[dict] = []
    remaining = list(tasks)
    while remaining:
        for task in remaining:
            deps = [d.get("task_key") for d in task.get("depends_on") or [] if d.get("task_key") in by_key]
            if all(d in done for d in deps):
                break
        else:
            task = remaining[0]
        remaining.remove(task)
        done.add(task.get("task_key"))
        ordered.append(task)
    return ordered


def skip_reason(task: dict, results: dict[str, str]) -> str | None:
    """Why a task does not run given its upstream results and run_if (UPSTREAM_FAILED/_CANCELED), None when it runs."""
    deps = [results.get(d.get("task_key"), "SUCCESS") for d in task.get("depends_on") or []]
    if not deps:
        return None
    success = [d == "SUCCESS" for d in deps]
    failed = [d in ("FAILED", "TIMEDOUT", "UPSTREAM_FAILED", "INTERNAL_ERROR") for d in deps]
    run_if = task.get("run_if") or "ALL_SUCCESS"
    runs = {
        "ALL_SUCCESS": all(success),
        "ALL_DONE": True,
        "NONE_FAILED": not any(failed),
        "AT_LEAST_ONE_SUCCESS": any(success),
        "ALL_FAILED": all(failed),
        "AT_LEAST_ONE_FAILED": any(failed),
    }.get(run_if, all(success))
    if runs:
        return None
    return "UPSTREAM_CANCELED" if "CANCELED" in deps else "UPSTREAM_FAILED"


def script_key(path: str) -> str:
    """The key a scripted outcome is stored under: the path as its own store normalises it."""
    if path.startswith("dbfs:"):
        return normalise_dbfs_path(path)
    if path.startswith("/Volumes/"):
        return posixpath.normpath(path)
    try:
        return normalise_workspace_path(path)
    except ApiError:
        return path
