"""Local workspace: run records and their execution, mixed into the emulator as `_Runs`.

A run (runs/submit or run-now) gets a record and a thread that waits for its cluster, then runs each task
(dependency order, run_if; run_state.py) either as a scripted outcome or in a subprocess (runner.py) with the
cluster's installed wheels on PYTHONPATH, under a deadline. Owns the records' views (runs/get shapes),
cancellation and the wait for a terminal state; the endpoints are jobs.py.
"""

from __future__ import annotations

import json
import os
import posixpath
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .compute import runtime_version
from .run_state import (
    TASK_TYPES,
    TERMINAL_LIFE_CYCLES,
    TERMINATION,
    Outcome,
    dependency_order,
    script_key,
    set_state,
    skip_reason,
)
from .state import EmulatorProtocol, ScriptedOutcome
from .wire import (
    OUTPUT_LIMIT,
    USER_NAME,
    ApiError,
    invalid,
    normalise_workspace_path,
    now_ms,
    paginate,
)

RUNNER = Path(__file__).resolve().with_name("runner.py")


class _Runs(EmulatorProtocol):
    """Runs (submitted and job runs, with their task runs) and their execution threads."""

    # ---- records and views --------------------------------------------------------------------------------

    def get_run(self, run_id: Any) -> dict:
        try:
            run = self.runs.get(int(run_id))
        except (TypeError, ValueError):
            run = None
        if run is None:
            raise invalid(f"Run {run_id} does not exist.")
        return run

    def run_view(self, run: dict, version: str = "2.1", page_token: Any = None) -> dict:
        view = {k: v for k, v in run.items() if not k.startswith("_")}
        if run.get("_task_ids"):
            tasks = [self.run_view(self.runs[t]) for t in run["_task_ids"]]
            if version == "2.2" and (len(tasks) > 100 or page_token):
                tasks, next_token = paginate(tasks, page_token, 100)
                if next_token:
                    view["next_page_token"] = next_token
            view["tasks"] = tasks
        return json.loads(json.dumps(view))

    def new_run(
        self, spec: dict, *, run_type: str, run_name: str, job_id: int | None = None, params: dict | None = None
    ) -> dict:
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
                task_run.update(
                    {
                        "run_id": task_id,
                        "attempt_number": 0,
                        "start_time": 0,
                        "setup_duration": 0,
                        "execution_duration": 0,
                        "cleanup_duration": 0,
                        "run_page_url": f"{self.base_url}/#job/{job_id or run_id}/run/{task_id}",
                        "_parent": run_id,
                        "_timeout": task.get("timeout_seconds") or run["_timeout"],
                    }
                )
                set_state(task_run, "PENDING")
                self.runs[task_id] = task_run
                run["_task_ids"].append(task_id)
        else:
            run["format"] = "SINGLE_TASK"
            for key in TASK_TYPES + ("existing_cluster_id", "new_cluster", "libraries"):
                if key in spec:
                    run[key] = spec[key]
            run["task_key"] = run_name
        set_state(run, "PENDING", message="Waiting for cluster")
        self.runs[run_id] = run
        self.mark_dirty()
        thread = threading.Thread(target=self.execute_run, args=(run_id,), daemon=True, name=f"run-{run_id}")
        self.threads = [t for t in self.threads if t.is_alive()] + [thread]
        thread.start()
        return run

    def start_job_run(self, job: dict, params: dict) -> dict:
        """A JOB_RUN of `job` (run-now, a run_job_task): job parameters over their defaults; a task on a job
        cluster runs locally with that cluster's spec (its env vars and runtime version)."""
        settings = job["settings"]
        defaults = {p["name"]: p.get("default") for p in settings.get("parameters") or [] if "name" in p}
        params = dict(params, job_parameters={**defaults, **(params.get("job_parameters") or {})})
        spec = {k: v for k, v in settings.items() if k in TASK_TYPES + ("existing_cluster_id", "new_cluster")}
        spec.update({k: settings[k] for k in ("libraries", "timeout_seconds") if k in settings})
        clusters = {c.get("job_cluster_key"): c.get("new_cluster") or {} for c in settings.get("job_clusters") or []}
        if settings.get("tasks") is not None:
            spec["tasks"] = [
                dict(t, _cluster_spec=clusters[t["job_cluster_key"]]) if t.get("job_cluster_key") in clusters else t
                for t in settings["tasks"]
            ]
        name = str(settings.get("name", "Untitled"))
        return self.new_run(spec, run_type="JOB_RUN", run_name=name, job_id=job["job_id"], params=params)

    def _run_job_task(self, parent: dict, task: dict) -> Outcome:
        """A run_job_task: run the referenced job and wait for it (the task ends as that run ends)."""
        spec = task.get("run_job_task") or {}
        with self.lock:
            job = self.jobs.get(int(spec["job_id"])) if str(spec.get("job_id", "")).isdigit() else None
            if job is None:
                return Outcome("FAILED", error=f"Job {spec.get('job_id')} does not exist.")
            child = self.start_job_run(job, {"job_parameters": spec.get("job_parameters") or {}})
            task["run_job_output"] = {"run_id": child["run_id"]}
            timeout = float(task.get("_timeout") or parent.get("_timeout") or self.run_timeout)
            ended = self.wait_until(
                lambda: parent["_cancel"] or child["state"]["life_cycle_state"] in TERMINAL_LIFE_CYCLES,
                time.time() + timeout,
            )
            if not ended or parent["_cancel"]:
                self.cancel_run(child)
                if parent["_cancel"]:
                    return Outcome("CANCELED", state_message="Run was cancelled")
                return Outcome("TIMEDOUT", error=f"Run timed out after {timeout:g} seconds.")
            result = child["state"].get("result_state") or "FAILED"
            error = None if result == "SUCCESS" else f"Job run {child['run_id']} of job {job['job_id']} ended {result}."
            return Outcome(result, error=error, state_message=error or "")

    def after_load(self) -> None:
        for run in self.runs.values():
            if run["state"]["life_cycle_state"] not in TERMINAL_LIFE_CYCLES:
                set_state(
                    run, "INTERNAL_ERROR", "INTERNAL_ERROR", "The local workspace restarted while the run was active."
                )

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
                set_state(run, "INTERNAL_ERROR", "INTERNAL_ERROR", f"Local workspace error: {error}")
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
                message = (
                    f"Cluster {broken[0]} is in unexpected state {state}."
                    if broken
                    else "The local workspace is stopping."
                )
                for task in tasks:
                    if task is not parent:
                        set_state(task, "INTERNAL_ERROR", "INTERNAL_ERROR", message)
                set_state(parent, "INTERNAL_ERROR", "INTERNAL_ERROR", message)
                parent["end_time"] = now_ms()
                self.mark_dirty()
                return
            parent["setup_duration"] = setup_ms
            set_state(parent, "RUNNING", message="In run")
            self.mark_dirty()
        results: dict[str, str] = {}
        ended: dict[str, Outcome] = {}  # task key -> outcome of the tasks that ran
        for task in dependency_order(tasks):
            with self.lock:
                if parent["_cancel"]:
                    set_state(task, "TERMINATED", "CANCELED", "Run was cancelled")
                    results[task.get("task_key", "")] = "CANCELED"
                    continue
                blocked = skip_reason(task, results)
                if blocked:
                    set_state(task, "TERMINATED", blocked, TERMINATION[blocked][2])
                    results[task.get("task_key", "")] = blocked
                    self.mark_dirty()
                    continue
                task["start_time"] = now_ms()
                if task.get("existing_cluster_id"):
                    task["cluster_instance"] = {
                        "cluster_id": task["existing_cluster_id"],
                        "spark_context_id": str(7000000000000000000 + task["run_id"]),
                    }
                set_state(task, "RUNNING", message="In run")
                self.mark_dirty()
            outcome = self._run_task(parent, task)
            with self.lock:
                task["end_time"] = now_ms()
                task["execution_duration"] = task["end_time"] - task["start_time"]
                task["_output"] = {
                    "result": outcome.result,
                    "error": outcome.error,
                    "error_trace": outcome.error_trace,
                    "logs": outcome.logs,
                }
                if task is not parent:
                    set_state(task, outcome.life_cycle_state, outcome.result_state, outcome.state_message)
                results[task.get("task_key", "")] = outcome.result_state
                ended[task.get("task_key", "")] = outcome
                self.mark_dirty()
        with self.lock:
            special = [o for o in ended.values() if o.life_cycle_state in ("SKIPPED", "INTERNAL_ERROR")]
            if special and not parent["_cancel"]:
                # The run itself ends in that life-cycle state (no TERMINATING), like a service-side failure.
                kind = "INTERNAL_ERROR" if any(o.life_cycle_state == "INTERNAL_ERROR" for o in special) else "SKIPPED"
                outcome = next(o for o in special if o.life_cycle_state == kind)
                parent["end_time"] = now_ms()
                parent["run_duration"] = parent["end_time"] - parent["start_time"]
                set_state(parent, kind, outcome.result_state or None, outcome.state_message)
                self.mark_dirty()
                return
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
                set_state(task, "TERMINATED", "CANCELED", "Run was cancelled")
        set_state(parent, "TERMINATING", message="Terminating")
        self.mark_dirty()
        self.wait_until(lambda: False, time.time() + self.scaled("run_terminating"))
        parent["end_time"] = now_ms()
        parent["execution_duration"] = max(
            0, parent["end_time"] - parent["start_time"] - parent.get("setup_duration", 0)
        )
        parent["run_duration"] = parent["end_time"] - parent["start_time"]
        set_state(parent, "TERMINATED", final, message)
        self.mark_dirty()

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
                return Outcome(
                    "FAILED",
                    error=(
                        f'Unable to access the notebook "{path}". Either it does not exist, or the identity used to run '
                        f"this job, {USER_NAME}, lacks the required permissions."
                    ),
                )
            if node.get("language", "PYTHON") != "PYTHON":
                return Outcome(
                    "FAILED",
                    error=f"Only Python notebooks can be executed by the local workspace ({path} is {node['language']}).",
                )
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
        return self.scripted.get(script_key(path))

    def script(self, path: str, outcome: ScriptedOutcome) -> None:
        with self.lock:
            self.scripted[script_key(path)] = outcome

    def _run_task(self, parent: dict, task: dict) -> Outcome:
        if "run_job_task" in task:
            return self._run_job_task(parent, task)
        with self.lock:
            scripted = self.scripted_outcome(task)
            if scripted is not None:
                deadline = time.time() + self.scaled(scripted.duration_seconds)
                self.wait_until(lambda: parent["_cancel"], deadline)
                if parent["_cancel"]:
                    return Outcome("CANCELED", state_message="Run was cancelled")
                if scripted.result_state in ("SKIPPED", "INTERNAL_ERROR"):
                    # Life-cycle outcomes of the whole run, as the service reports them: a skipped run has no
                    # result_state; an internal error (the platform failed, not the code) ends FAILED.
                    skipped = scripted.result_state == "SKIPPED"
                    return Outcome(
                        "" if skipped else "FAILED",
                        error=None if skipped else scripted.error,
                        error_trace=scripted.error_trace,
                        state_message=scripted.error or ("Run skipped" if skipped else "Internal error"),
                        life_cycle_state=scripted.result_state,
                    )
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
                        return Outcome(
                            "FAILED",
                            error=f"Library {library['whl']} does not exist.",
                            state_message="Library installation failed",
                        )
                    wheels.append((posixpath.basename(str(library["whl"])), content))
            cluster = self.clusters.get(cluster_id) if cluster_id else None
            cluster_spec = cluster or task.get("new_cluster") or task.get("_cluster_spec") or {}
            params = dict((task.get("notebook_task") or {}).get("base_parameters") or {})
            params.update(parent.get("_params", {}).get("job_parameters") or {})
            params.update(parent.get("_params", {}).get("notebook_params") or {})
            timeout = float(task.get("_timeout") or parent.get("_timeout") or self.run_timeout)
            spec = {"kind": kind, "path": path, "parameters": {str(k): str(v) for k, v in params.items()}}
            if kind == "python_file":
                # run-now python_params replace the task's own parameters, as on the service
                spec["argv"] = [
                    str(a)
                    for a in (
                        parent.get("_params", {}).get("python_params")
                        or task["spark_python_task"].get("parameters")
                        or []
                    )
                ]
            if kind == "python_wheel":
                wheel_task = task["python_wheel_task"] or {}
                spec["package_name"] = str(wheel_task.get("package_name", ""))
                spec["entry_point"] = str(wheel_task.get("entry_point", ""))
                named = wheel_task.get("named_parameters") or {}
                positional = parent.get("_params", {}).get("python_params") or wheel_task.get("parameters") or []
                spec["argv"] = [f"--{k}={v}" for k, v in named.items()] or [str(a) for a in positional]
            env_vars = dict(cluster_spec.get("spark_env_vars") or {})
            env_vars["DATABRICKS_RUNTIME_VERSION"] = ".".join(
                map(str, runtime_version(cluster_spec.get("spark_version", "15.4")))
            )
            run_dir = self.work_dir / f"run-{task['run_id']}"
        return self._spawn(parent, task, run_dir, spec, data, wheels, env_vars, timeout)

    def _spawn(
        self,
        parent: dict,
        task: dict,
        run_dir: Path,
        spec: dict,
        source: bytes,
        wheels: list[tuple[str, bytes]],
        env_vars: dict,
        timeout: float,
    ) -> Outcome:
        """Execute one task in a subprocess (runner.py) under a deadline."""
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
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DATABRICKS_", "AZURE_", "ARM_", "LOCAL_WORKSPACE_", "SYSTEM_ACCESSTOKEN"))
        }
        env.update({str(k): str(v) for k, v in env_vars.items()})
        env["PYTHONPATH"] = os.pathsep.join(paths)
        env["PYTHONUNBUFFERED"] = "1"
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        log_path = run_dir / "output.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [sys.executable, str(RUNNER), str(spec_file)],
                cwd=run_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
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
                    outcome = Outcome(
                        "TIMEDOUT",
                        error=f"Run timed out after {timeout:g} seconds.",
                        state_message=f"Run timed out after {timeout:g} seconds.",
                    )
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
            return Outcome(
                "FAILED",
                error=f"The Python process exited with code {process.returncode} without a result.",
                error_trace=tail,
                logs=logs,
                state_message="Workload failed",
            )
        if result.get("status") == "success":
            return Outcome("SUCCESS", result=result.get("result"), logs=logs)
        return Outcome(
            "FAILED",
            error=result.get("error"),
            error_trace=result.get("error_trace"),
            logs=logs,
            state_message=result.get("error") or "Workload failed",
        )

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
