"""Local workspace: the Jobs API (2.0/2.1/2.2) and run execution.

`_Jobs` is mixed into `local_workspace.Emulator`. A run gets a thread that waits for its cluster, then runs
each task (dependency order, run_if) either as a scripted outcome or in a subprocess
(local_workspace_runner.py) with the cluster's installed wheels on PYTHONPATH, under a deadline.
"""
from __future__ import annotations

import json
import os
import posixpath
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .compute import runtime_version
from .core import (
    ApiError,
    MB,
    OUTPUT_LIMIT,
    Request,
    Response,
    ScriptedOutcome,
    USER_NAME,
    decode_page_token,
    encode_page_token,
    invalid,
    invalid_state,
    normalise_dbfs_path,
    normalise_workspace_path,
    now_ms,
    ok,
    route,
    to_bool,
)

if TYPE_CHECKING:
    from .server import Emulator


# --------------------------------------------------------------------------------------------------------------
# Jobs and runs
# --------------------------------------------------------------------------------------------------------------

JOB_VERSIONS = ("2.0", "2.1", "2.2")
TERMINAL_LIFE_CYCLES = ("TERMINATED", "SKIPPED", "INTERNAL_ERROR")
TASK_TYPES = (
    "notebook_task", "spark_python_task", "python_wheel_task", "spark_jar_task", "spark_submit_task", "sql_task",
    "dbt_task", "pipeline_task", "run_job_task", "condition_task", "for_each_task", "clean_rooms_notebook_task",
    "dashboard_task", "power_bi_task", "gen_ai_compute_task",
)
EXECUTABLE_TASK_TYPES = ("notebook_task", "spark_python_task", "python_wheel_task")
RUNNER = Path(__file__).resolve().with_name("runner.py")
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
    result_state: str
    result: str | None = None
    error: str | None = None
    error_trace: str | None = None
    logs: str | None = None
    state_message: str = ""
    life_cycle_state: str = "TERMINATED"


def _page(items: list, token: Any, size: int) -> tuple[list, str | None]:
    offset = decode_page_token(token)
    rest = items[offset:offset + size]
    return rest, (encode_page_token(offset + size) if offset + size < len(items) else None)


class _Jobs:
    """Jobs, runs and their execution threads."""

    # ---- records and views --------------------------------------------------------------------------------

    def get_run(self, run_id: Any) -> dict:
        try:
            run = self.runs.get(int(run_id))
        except (TypeError, ValueError):
            run = None
        if run is None:
            raise invalid(f"Run {run_id} does not exist.")
        return run

    def get_job(self, job_id: Any) -> dict:
        try:
            job = self.jobs.get(int(job_id))
        except (TypeError, ValueError):
            job = None
        if job is None:
            raise invalid(f"Job {job_id} does not exist.")
        return job

    @staticmethod
    def set_state(run: dict, life_cycle: str, result_state: str | None = None, message: str = "") -> None:
        state = {"life_cycle_state": life_cycle, "state_message": message, "user_cancelled_or_timedout": result_state in ("CANCELED", "TIMEDOUT")}
        if result_state:
            state["result_state"] = result_state
        run["state"] = state
        status_state = "TERMINATED" if life_cycle in TERMINAL_LIFE_CYCLES else life_cycle
        status: dict[str, Any] = {"state": status_state}
        if status_state == "TERMINATED":
            code, kind, text = TERMINATION.get(result_state or "INTERNAL_ERROR", TERMINATION["INTERNAL_ERROR"])
            status["termination_details"] = {"code": code, "type": kind, "message": message or text}
        run["status"] = status

    def run_view(self, run: dict, version: str = "2.1", page_token: Any = None) -> dict:
        view = {k: v for k, v in run.items() if not k.startswith("_")}
        if run.get("_task_ids"):
            tasks = [self.run_view(self.runs[t]) for t in run["_task_ids"]]
            if version == "2.2" and (len(tasks) > 100 or page_token):
                tasks, next_token = _page(tasks, page_token, 100)
                if next_token:
                    view["next_page_token"] = next_token
            view["tasks"] = tasks
        return json.loads(json.dumps(view))

    def new_run(self, spec: dict, *, run_type: str, run_name: str, job_id: int | None = None, params: dict | None = None) -> dict:
        run_id = self.new_id("run")
        run = {
            "run_id": run_id,
            "number_in_job": run_id,
            "original_attempt_run_id": run_id,
            "creator_user_name": USER_NAME,
            "run_name": run_name,
            "run_type": run_type,
            "start_time": now_ms(),
            "setup_duration": 0,
            "execution_duration": 0,
            "cleanup_duration": 0,
            "run_page_url": f"{self.base_url}/#job/{job_id or run_id}/run/{run_id}",
            "attempt_number": 0,
            "_params": params or {},
            "_timeout": spec.get("timeout_seconds") or 0,
            "_cancel": False,
        }
        if job_id is not None:
            run["job_id"] = job_id
        if spec.get("tasks") is not None:
            run["format"] = "MULTI_TASK"
            run["_task_ids"] = []
            for task in spec["tasks"]:
                task_id = self.new_id("run")
                task_run = {k: v for k, v in task.items() if k != "idempotency_token"}
                task_run.update({
                    "run_id": task_id,
                    "attempt_number": 0,
                    "start_time": 0,
                    "setup_duration": 0,
                    "execution_duration": 0,
                    "cleanup_duration": 0,
                    "run_page_url": f"{self.base_url}/#job/{job_id or run_id}/run/{task_id}",
                    "_parent": run_id,
                    "_timeout": task.get("timeout_seconds") or run["_timeout"],
                })
                self.set_state(task_run, "PENDING")
                self.runs[task_id] = task_run
                run["_task_ids"].append(task_id)
        else:
            run["format"] = "SINGLE_TASK"
            for key in TASK_TYPES + ("existing_cluster_id", "new_cluster", "libraries"):
                if key in spec:
                    run[key] = spec[key]
            run["task_key"] = run_name
        self.set_state(run, "PENDING", message="Waiting for cluster")
        self.runs[run_id] = run
        self.mark_dirty()
        thread = threading.Thread(target=self.execute_run, args=(run_id,), daemon=True, name=f"run-{run_id}")
        self.threads = [t for t in self.threads if t.is_alive()] + [thread]
        thread.start()
        return run

    def after_load(self) -> None:
        for run in self.runs.values():
            if run["state"]["life_cycle_state"] not in TERMINAL_LIFE_CYCLES:
                self.set_state(run, "INTERNAL_ERROR", "INTERNAL_ERROR", "The local workspace restarted while the run was active.")

    # ---- execution ----------------------------------------------------------------------------------------

    def wait_until(self, predicate: Callable[[], bool], deadline: float) -> bool:
        """Under self.lock: wait (condition variable, bounded by deadline) until predicate() holds."""
        while not predicate():
            remaining = deadline - time.time()
            if remaining <= 0 or self.stopping.is_set():
                return predicate()
            self.changed.wait(min(remaining, 0.05))
        return True

    def execute_run(self, run_id: int) -> None:
        try:
            self._execute_run(run_id)
        except Exception as error:  # never leave a run hanging on an emulator bug
            import traceback

            traceback.print_exc(file=sys.stderr)
            with self.lock:
                run = self.runs[run_id]
                self.set_state(run, "INTERNAL_ERROR", "INTERNAL_ERROR", f"Local workspace error: {error}")
                run["end_time"] = now_ms()
                self.mark_dirty()
        self.persist_hook()

    def _execute_run(self, run_id: int) -> None:
        with self.lock:
            parent = self.runs[run_id]
            tasks = [self.runs[t] for t in parent.get("_task_ids", [])] or [parent]
            cluster_ids = {t.get("existing_cluster_id") for t in tasks if t.get("existing_cluster_id")}
            for cluster_id in cluster_ids:
                cluster = self.clusters.get(cluster_id)
                if cluster is not None:
                    self.advance_cluster(cluster)
                    if cluster["state"] == "TERMINATED":  # runs start their cluster, as the service does
                        self.start_cluster(cluster)
            pending_until = time.time() + self.scaled("run_pending")
            cluster_deadline = pending_until + self.scaled("cluster_start") + self.scaled("cluster_restart") + 30

            def clusters_ready() -> bool:
                for cid in cluster_ids:
                    cluster = self.clusters.get(cid)
                    if cluster is None:
                        continue
                    self.advance_cluster(cluster)
                    if cluster["state"] in ("ERROR", "UNKNOWN", "TERMINATED"):
                        return True  # it will not come up by itself: stop waiting, the run fails below
                    if cluster["state"] != "RUNNING":
                        return False
                return time.time() >= pending_until or parent["_cancel"]

            self.wait_until(clusters_ready, cluster_deadline)
            setup_ms = now_ms() - parent["start_time"]
            if parent["_cancel"]:
                return self._finish(parent, tasks, "CANCELED", "Run cancelled before it started.")
            broken = [cid for cid in cluster_ids if cid in self.clusters and self.clusters[cid]["state"] != "RUNNING"]
            if broken or self.stopping.is_set():
                state = self.clusters[broken[0]]["state"].title() if broken else "Stopping"
                message = f"Cluster {broken[0]} is in unexpected state {state}." if broken else "The local workspace is stopping."
                for task in tasks:
                    if task is not parent:
                        self.set_state(task, "INTERNAL_ERROR", "INTERNAL_ERROR", message)
                self.set_state(parent, "INTERNAL_ERROR", "INTERNAL_ERROR", message)
                parent["end_time"] = now_ms()
                self.mark_dirty()
                return
            parent["setup_duration"] = setup_ms
            self.set_state(parent, "RUNNING", message="In run")
            self.mark_dirty()
        results: dict[str, str] = {}
        for task in self._ordered(tasks):
            with self.lock:
                if parent["_cancel"]:
                    self.set_state(task, "TERMINATED", "CANCELED", "Run was cancelled")
                    results[task.get("task_key", "")] = "CANCELED"
                    continue
                blocked = self._blocked(task, results)
                if blocked:
                    self.set_state(task, "TERMINATED", blocked, TERMINATION[blocked][2])
                    results[task.get("task_key", "")] = blocked
                    self.mark_dirty()
                    continue
                task["start_time"] = now_ms()
                if task.get("existing_cluster_id"):
                    task["cluster_instance"] = {"cluster_id": task["existing_cluster_id"], "spark_context_id": str(7000000000000000000 + task["run_id"])}
                self.set_state(task, "RUNNING", message="In run")
                self.mark_dirty()
            outcome = self._run_task(parent, task)
            with self.lock:
                task["end_time"] = now_ms()
                task["execution_duration"] = task["end_time"] - task["start_time"]
                task["_output"] = {"result": outcome.result, "error": outcome.error, "error_trace": outcome.error_trace, "logs": outcome.logs}
                if task is not parent:
                    self.set_state(task, outcome.life_cycle_state, outcome.result_state, outcome.state_message)
                results[task.get("task_key", "")] = outcome.result_state
                self.mark_dirty()
        with self.lock:
            states = list(results.values())
            if parent["_cancel"] or "CANCELED" in states:
                final = "CANCELED"
            elif "TIMEDOUT" in states:
                final = "TIMEDOUT"
            elif any(s != "SUCCESS" for s in states):
                final = "FAILED"
            else:
                final = "SUCCESS"
            message = ""
            if parent.get("format") == "SINGLE_TASK":
                message = (parent.get("_output") or {}).get("error") or ""
            self._finish(parent, tasks, final, message)

    def _finish(self, parent: dict, tasks: list[dict], final: str, message: str) -> None:
        """Under self.lock: TERMINATING for a moment, then TERMINATED with `final`."""
        for task in tasks:
            if task is not parent and task["state"]["life_cycle_state"] not in TERMINAL_LIFE_CYCLES:
                self.set_state(task, "TERMINATED", "CANCELED", "Run was cancelled")
        self.set_state(parent, "TERMINATING", message="Terminating")
        self.mark_dirty()
        self.wait_until(lambda: False, time.time() + self.scaled("run_terminating"))
        parent["end_time"] = now_ms()
        parent["execution_duration"] = max(0, parent["end_time"] - parent["start_time"] - parent.get("setup_duration", 0))
        parent["run_duration"] = parent["end_time"] - parent["start_time"]
        self.set_state(parent, "TERMINATED", final, message)
        self.mark_dirty()

    @staticmethod
    def _ordered(tasks: list[dict]) -> list[dict]:
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

    @staticmethod
    def _blocked(task: dict, results: dict[str, str]) -> str | None:
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

    def _task_source(self, task: dict) -> tuple[str, str, bytes] | Outcome:
        """(kind, path, source bytes) for an executable task, or a failed Outcome."""
        if "notebook_task" in task:
            notebook = task["notebook_task"] or {}
            path = str(notebook.get("notebook_path", ""))
            if (notebook.get("source") or "WORKSPACE").upper() == "GIT":
                return Outcome("FAILED", error="Notebooks from git_source are not supported by the local workspace.")
            try:
                key = normalise_workspace_path(path)
            except ApiError:
                return Outcome("FAILED", error=f"Invalid notebook path: {path}")
            node = self.workspace.get(key)
            if node is None or node["type"] != "NOTEBOOK":
                return Outcome("FAILED", error=(
                    f"Unable to access the notebook \"{path}\". Either it does not exist, or the identity used to run "
                    f"this job, {USER_NAME}, lacks the required permissions."
                ))
            if node.get("language", "PYTHON") != "PYTHON":
                return Outcome("FAILED", error=f"Only Python notebooks can be executed by the local workspace ({path} is {node['language']}).")
            return "notebook", key, node["data"]
        if "spark_python_task" in task:
            path = str((task["spark_python_task"] or {}).get("python_file", ""))
            data = self.read_uri(path) if path.startswith(("/", "dbfs:")) else None
            if data is None:
                return Outcome("FAILED", error=f"File {path} does not exist or is not accessible.")
            return "python_file", path, data
        if "python_wheel_task" in task:
            return "python_wheel", "", b""
        kind = next((t for t in TASK_TYPES if t in task), "unknown")
        return Outcome("FAILED", error=f"Task type {kind} is not supported by the local workspace.")

    def scripted_outcome(self, task: dict) -> ScriptedOutcome | None:
        path = None
        if "notebook_task" in task:
            path = str((task["notebook_task"] or {}).get("notebook_path", ""))
        elif "spark_python_task" in task:
            path = str((task["spark_python_task"] or {}).get("python_file", ""))
        if not path:
            return None
        return self.scripted.get(_script_key(path))

    def script(self, path: str, outcome: ScriptedOutcome) -> None:
        with self.lock:
            self.scripted[_script_key(path)] = outcome

    def _run_task(self, parent: dict, task: dict) -> Outcome:
        with self.lock:
            scripted = self.scripted_outcome(task)
            if scripted is not None:
                deadline = time.time() + self.scaled(scripted.duration_seconds)
                self.wait_until(lambda: parent["_cancel"], deadline)
                if parent["_cancel"]:
                    return Outcome("CANCELED", state_message="Run was cancelled")
                return Outcome(
                    scripted.result_state,
                    result=scripted.result,
                    error=scripted.error,
                    error_trace=scripted.error_trace,
                    state_message=scripted.error or "",
                )
            source = self._task_source(task)
            if isinstance(source, Outcome):
                source.state_message = source.error or ""
                return source
            kind, path, data = source
            cluster_id = task.get("existing_cluster_id")
            wheels = self.installed_wheels(cluster_id)
            for library in task.get("libraries") or []:
                if isinstance(library, dict) and "whl" in library:
                    content = self.read_uri(str(library["whl"]))
                    if content is None:
                        return Outcome("FAILED", error=f"Library {library['whl']} does not exist.", state_message="Library installation failed")
                    wheels.append((posixpath.basename(str(library["whl"])), content))
            cluster = self.clusters.get(cluster_id) if cluster_id else None
            cluster_spec = cluster or task.get("new_cluster") or {}
            params = dict((task.get("notebook_task") or {}).get("base_parameters") or {})
            params.update(parent.get("_params", {}).get("job_parameters") or {})
            params.update(parent.get("_params", {}).get("notebook_params") or {})
            timeout = float(task.get("_timeout") or parent.get("_timeout") or self.run_timeout)
            spec = {"kind": kind, "path": path, "parameters": {str(k): str(v) for k, v in params.items()}}
            if kind == "python_file":
                # run-now python_params replace the task's own parameters, as on the service
                spec["argv"] = [str(a) for a in (parent.get("_params", {}).get("python_params") or task["spark_python_task"].get("parameters") or [])]
            if kind == "python_wheel":
                wheel_task = task["python_wheel_task"] or {}
                spec["package_name"] = str(wheel_task.get("package_name", ""))
                spec["entry_point"] = str(wheel_task.get("entry_point", ""))
                named = wheel_task.get("named_parameters") or {}
                positional = parent.get("_params", {}).get("python_params") or wheel_task.get("parameters") or []
                spec["argv"] = [f"--{k}={v}" for k, v in named.items()] or [str(a) for a in positional]
            env_vars = dict(cluster_spec.get("spark_env_vars") or {})
            env_vars["DATABRICKS_RUNTIME_VERSION"] = ".".join(map(str, runtime_version(cluster_spec.get("spark_version", "15.4"))))
            run_dir = self.work_dir / f"run-{task['run_id']}"
        return self._spawn(parent, task, run_dir, spec, data, wheels, env_vars, timeout)

    def _spawn(self, parent: dict, task: dict, run_dir: Path, spec: dict, source: bytes, wheels: list[tuple[str, bytes]], env_vars: dict, timeout: float) -> Outcome:
        """Execute one task in a subprocess (local_workspace_runner.py) under a deadline."""
        libs = run_dir / "libs"
        libs.mkdir(parents=True, exist_ok=True)
        paths = []
        for index, (name, content) in enumerate(wheels):
            target = libs / f"{index:02d}-{name}"
            target.write_bytes(content)
            paths.append(str(target))
        # Named after the notebook/file so tracebacks in error_trace point at it, not at a temp name.
        name = posixpath.basename(spec["path"]) or "main"
        source_file = run_dir / "src" / (name if name.endswith(".py") else name + ".py")
        source_file.parent.mkdir(parents=True, exist_ok=True)
        source_file.write_bytes(source)
        result_file = run_dir / "result.json"
        spec.update({"source_file": str(source_file), "result_file": str(result_file), "wheels": paths})
        spec_file = run_dir / "spec.json"
        spec_file.write_text(json.dumps(spec), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABRICKS_", "AZURE_", "ARM_", "LOCAL_WORKSPACE_", "SYSTEM_ACCESSTOKEN"))}
        env.update({str(k): str(v) for k, v in env_vars.items()})
        env["PYTHONPATH"] = os.pathsep.join(paths)
        env["PYTHONUNBUFFERED"] = "1"
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        log_path = run_dir / "output.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [sys.executable, str(RUNNER), str(spec_file)],
                cwd=run_dir, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )
        with self.lock:
            self.processes[task["run_id"]] = process
        deadline = time.monotonic() + timeout
        outcome: Outcome | None = None
        try:
            while True:
                try:
                    process.wait(timeout=min(0.05, max(0.0, deadline - time.monotonic())))
                    break
                except subprocess.TimeoutExpired:
                    pass
                if parent["_cancel"] or self.stopping.is_set():
                    outcome = Outcome("CANCELED", state_message="Run was cancelled")
                elif time.monotonic() >= deadline:
                    outcome = Outcome("TIMEDOUT", error=f"Run timed out after {timeout:g} seconds.", state_message=f"Run timed out after {timeout:g} seconds.")
                if outcome is not None:
                    process.kill()
                    process.wait(timeout=10)
                    break
        finally:
            with self.lock:
                self.processes.pop(task["run_id"], None)
        logs = log_path.read_bytes()[-OUTPUT_LIMIT:].decode("utf-8", "replace")
        if outcome is not None:
            outcome.logs = logs
            return outcome
        try:
            result = json.loads(result_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            tail = logs[-2000:]
            return Outcome("FAILED", error=f"The Python process exited with code {process.returncode} without a result.", error_trace=tail, logs=logs, state_message="Workload failed")
        if result.get("status") == "success":
            return Outcome("SUCCESS", result=result.get("result"), logs=logs)
        return Outcome("FAILED", error=result.get("error"), error_trace=result.get("error_trace"), logs=logs, state_message=result.get("error") or "Workload failed")

    def cancel_run(self, run: dict) -> None:
        if run["state"]["life_cycle_state"] in TERMINAL_LIFE_CYCLES:
            return
        run["_cancel"] = True
        for task_id in run.get("_task_ids", []) + [run["run_id"]]:
            process = self.processes.get(task_id)
            if process is not None and process.poll() is None:
                process.kill()
        self.mark_dirty()

    def wait_run(self, run_id: int, timeout: float) -> dict:
        deadline = time.time() + timeout
        with self.lock:
            run = self.get_run(run_id)
            if not self.wait_until(lambda: run["state"]["life_cycle_state"] in TERMINAL_LIFE_CYCLES, deadline):
                raise TimeoutError(f"run {run_id} is still {run['state']['life_cycle_state']} after {timeout} s")
            return self.run_view(run)

    def shutdown_runs(self) -> None:
        with self.lock:
            for run in self.runs.values():
                if "_parent" not in run:
                    self.cancel_run(run)
            threads, self.threads = self.threads, []
        for thread in threads:
            thread.join(timeout=15)

    def shutdown(self) -> None:
        self.stopping.set()
        with self.lock:
            self.changed.notify_all()
        self.shutdown_runs()

    def summary(self) -> dict:
        return {
            "workspace_objects": len(self.workspace.nodes),
            "dbfs_objects": len(self.dbfs.nodes),
            "volume_objects": len(self.volumes.nodes),
            "clusters": {cid: self.cluster_details(c)["state"] for cid, c in self.clusters.items()},
            "jobs": len(self.jobs),
            "runs": {rid: r["state"]["life_cycle_state"] for rid, r in self.runs.items() if "_parent" not in r},
            "scripted": sorted(self.scripted),
        }


def _script_key(path: str) -> str:
    if path.startswith("dbfs:"):
        return normalise_dbfs_path(path)
    if path.startswith("/Volumes/"):
        return posixpath.normpath(path)
    try:
        return normalise_workspace_path(path)
    except ApiError:
        return path


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


def _check_clusters(emu: Emulator, tasks: list[dict]) -> None:
    for task in tasks:
        cluster_id = task.get("existing_cluster_id")
        if cluster_id and str(cluster_id) not in emu.clusters:
            raise invalid(f"Cluster {cluster_id} does not exist")
        notebook = task.get("notebook_task") or {}
        if len(json.dumps(notebook.get("base_parameters") or {})) > MB:
            raise invalid("base_parameters cannot exceed 1 MB once serialised to JSON.")


def _idempotent(emu: Emulator, request: Request) -> tuple[str | None, int | None]:
    token = request.param("idempotency_token")
    if token is None:
        return None, None
    token = str(token)
    if len(token) > 64:
        raise invalid("idempotency_token must be at most 64 characters long.")
    return token, emu.idempotency.get(token)


@route("POST", "jobs/runs/submit", JOB_VERSIONS)
def runs_submit(emu: Emulator, request: Request) -> Response:
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
def runs_get(emu: Emulator, request: Request) -> Response:
    run = emu.get_run(request.required("run_id"))
    return ok(emu.run_view(run, request.version, request.param("page_token")))


@route("GET", "jobs/runs/get-output", JOB_VERSIONS)
def runs_get_output(emu: Emulator, request: Request) -> Response:
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
def runs_cancel(emu: Emulator, request: Request) -> Response:
    run = emu.get_run(request.required("run_id"))
    if "_parent" in run:
        run = emu.runs[run["_parent"]]
    emu.cancel_run(run)
    return ok()


@route("POST", "jobs/runs/delete", JOB_VERSIONS)
def runs_delete(emu: Emulator, request: Request) -> Response:
    run = emu.get_run(request.required("run_id"))
    if run["state"]["life_cycle_state"] not in TERMINAL_LIFE_CYCLES:
        raise invalid_state(f"Run {run['run_id']} is still active and cannot be deleted.")
    for task_id in run.get("_task_ids", []):
        emu.runs.pop(task_id, None)
    emu.runs.pop(run["run_id"], None)
    emu.mark_dirty()
    return ok()


@route("GET", "jobs/runs/list", JOB_VERSIONS)
def runs_list(emu: Emulator, request: Request) -> Response:
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
    page = runs[start:start + limit]
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
    settings["format"] = "MULTI_TASK" if settings.get("tasks") is not None or not any(k in settings for k in TASK_TYPES) else "SINGLE_TASK"
    return settings


def _job_view(job: dict, version: str, page_token: Any = None, expand_tasks: bool = True) -> dict:
    view = json.loads(json.dumps(job))
    settings = view["settings"]
    if not expand_tasks:
        settings.pop("tasks", None)
        settings.pop("job_clusters", None)
    elif version == "2.2":
        for key in ("tasks", "job_clusters"):
            items = settings.get(key)
            if items is not None and (len(items) > 100 or page_token):
                settings[key], next_token = _page(items, page_token, 100)
                if next_token:
                    view["next_page_token"] = next_token
    return view


@route("POST", "jobs/create", JOB_VERSIONS)
def jobs_create(emu: Emulator, request: Request) -> Response:
    body = dict(request.json())
    body.pop("access_control_list", None)
    settings = _job_settings(body)
    job_id = emu.new_id("job")
    emu.jobs[job_id] = {
        "job_id": job_id,
        "creator_user_name": USER_NAME,
        "run_as_user_name": USER_NAME,
        "created_time": now_ms(),
        "settings": settings,
    }
    emu.mark_dirty()
    return ok({"job_id": job_id})


@route("GET", "jobs/get", JOB_VERSIONS)
def jobs_get(emu: Emulator, request: Request) -> Response:
    job = emu.get_job(request.required("job_id"))
    return ok(_job_view(job, request.version, request.param("page_token")))


@route("POST", "jobs/reset", JOB_VERSIONS)
def jobs_reset(emu: Emulator, request: Request) -> Response:
    job = emu.get_job(request.required("job_id"))
    job["settings"] = _job_settings(request.required("new_settings"))
    emu.mark_dirty()
    return ok()


@route("POST", "jobs/update", JOB_VERSIONS)
def jobs_update(emu: Emulator, request: Request) -> Response:
    job = emu.get_job(request.required("job_id"))
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
    emu.mark_dirty()
    return ok()


@route("POST", "jobs/delete", JOB_VERSIONS)
def jobs_delete(emu: Emulator, request: Request) -> Response:
    job = emu.get_job(request.required("job_id"))
    emu.jobs.pop(job["job_id"], None)
    emu.mark_dirty()
    return ok()


@route("GET", "jobs/list", JOB_VERSIONS)
def jobs_list(emu: Emulator, request: Request) -> Response:
    limit = request.int_param("limit", 20)
    if limit is None or not 1 <= limit <= 100:
        raise invalid(f"The limit must be between 1 and 100, got {limit}.")
    jobs = sorted(emu.jobs.values(), key=lambda j: j["job_id"])
    name = request.param("name")
    if name:
        jobs = [j for j in jobs if str(j["settings"].get("name", "")).lower() == str(name).lower()]
    token = request.param("page_token")
    start = decode_page_token(token) if token else (request.int_param("offset", 0) or 0)
    page = jobs[start:start + limit]
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
def jobs_run_now(emu: Emulator, request: Request) -> Response:
    job = emu.get_job(request.required("job_id"))
    token, existing = _idempotent(emu, request)
    if existing is not None and existing in emu.runs:
        return ok({"run_id": existing, "number_in_job": existing})
    settings = job["settings"]
    defaults = {p["name"]: p.get("default") for p in settings.get("parameters") or [] if isinstance(p, dict) and "name" in p}
    defaults.update(request.param("job_parameters") or {})
    params = {
        "notebook_params": request.param("notebook_params") or {},
        "python_params": request.param("python_params") or [],
        "job_parameters": defaults,
    }
    tasks = settings.get("tasks")
    if tasks is not None:
        _check_clusters(emu, tasks)
    spec = {k: v for k, v in settings.items() if k in TASK_TYPES + ("tasks", "existing_cluster_id", "new_cluster", "libraries", "timeout_seconds")}
    run = emu.new_run(spec, run_type="JOB_RUN", run_name=str(settings.get("name", "Untitled")), job_id=job["job_id"], params=params)
    if token is not None:
        emu.idempotency[token] = run["run_id"]
    return ok({"run_id": run["run_id"], "number_in_job": run["number_in_job"]})
