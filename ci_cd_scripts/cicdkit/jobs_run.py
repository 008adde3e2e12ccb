"""Running one deployed job by its key (README, "Jobs: deploy, run, destroy"): what `run_job.py` does.

The job is found by this deployment's identity (`jobs_deploy.find_deployed`), started with Jobs 2.2 ``run-now``
(job parameters, and an idempotency token from the build and the request, so a call retried after a lost answer
never starts a second run while a re-run of the stage does), followed with the client's deadline-bounded poll (1 s
growing), cancelled when the deadline passes, and recorded in the format `run_results` defines, so that
`evaluate_runs.py` judges it like a test notebook's run: the run, and the output of its first task that did not
succeed (else of its last task).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

from . import jobs_deploy, notebook_runs, run_results
from .errors import CICDError, ConfigError, OperationFailed, WaitTimedOut

CANCEL_GRACE_SECONDS = notebook_runs.CANCEL_GRACE_SECONDS


@dataclasses.dataclass(frozen=True)
class Event:
    """A line worth printing: ``started`` (run id), ``page`` (the run's URL), ``state`` (a change), ``task`` (a
    task's state changed, with its error when it ended badly), ``timeout``, ``interrupted`` (Ctrl-C or SIGTERM)."""

    kind: str
    text: str


def find_job(client: Any, ident: jobs_deploy.Identity, key: str) -> int:
    """The id of the deployed job `key`; `ConfigError` when this deployment has no such job."""
    deployed = jobs_deploy.find_deployed(client, ident)
    if key not in deployed:
        raise ConfigError(
            f"job {key} of {ident.bundle}/{ident.target} is not deployed"
            + (f" (deployed: {', '.join(sorted(deployed))})" if deployed else ""),
            hint="deploy it first with deploy_jobs.py, or check the key and -t",
        )
    return int(deployed[key]["job_id"])


def idempotency_token(job_id: int, parameters: Mapping[str, str], build: Mapping[str, str]) -> str:
    """At most 64 characters; the same for a retried call of one build attempt, new for another attempt."""
    text = json.dumps({"job_id": job_id, "parameters": dict(parameters), "build": dict(build)}, sort_keys=True)
    return "cicd-" + hashlib.sha256(text.encode()).hexdigest()[:48]


def run_job(
    client: Any,
    job_id: int,
    *,
    key: str,
    parameters: Mapping[str, str],
    token: str,
    timeout: float,
    wait: bool = True,
    on_event: Callable[[Event], None] = lambda event: None,
) -> dict[str, Any]:
    """Start the run and (with `wait`) follow it until it ends or `timeout` passes (then cancel it); the record."""

    def record(run: Mapping[str, Any] | None, output: Any = None, timed_out: bool = False, error: Any = None) -> dict:
        return run_results.record(
            notebook_path=f"job {key}",
            name=key,
            run=run,
            output=output,
            timed_out=timed_out,
            timeout_seconds=timeout,
            error=error,
        )

    try:
        run_id = client.jobs.run_now(job_id, job_parameters=parameters or None, idempotency_token=token)
    except CICDError as error:
        raise OperationFailed(f"run-now of job {key} ({job_id}) failed: {error.one_line()}") from None
    on_event(Event("started", f"run {run_id} of job {key} ({job_id})"))
    seen: dict[str, Any] = {}

    def observe(run: Mapping[str, Any], elapsed: float | None = None) -> None:
        if not seen.get("page") and run.get("run_page_url"):
            seen["page"] = True
            on_event(Event("page", str(run["run_page_url"])))
        label = notebook_runs.state_label(run)
        if label != seen.get("state"):
            seen["state"] = label
            on_event(Event("state", label))
        for task in run.get("tasks") or []:
            task_label = notebook_runs.state_label(task)
            if seen.get(("task", task.get("task_key"))) != task_label:
                seen[("task", task.get("task_key"))] = task_label
                message = (task.get("state") or {}).get("state_message") or ""
                bad = (task.get("state") or {}).get("result_state") not in (None, "SUCCESS")
                on_event(
                    Event("task", f"{task.get('task_key')}: {task_label}" + (f": {message}" if bad and message else ""))
                )

    if not wait:
        run = client.jobs.get_run(run_id)
        observe(run)
        return record(run)
    timed_out = False
    try:
        run = client.jobs.wait_for_run(run_id, timeout=timeout, on_poll=observe)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM (`cli.Terminated`): the run must not go on without us
        on_event(Event("interrupted", f"interrupted: cancelling run {run_id}"))
        with contextlib.suppress(CICDError):
            client.jobs.cancel_run(run_id)
        raise
    except WaitTimedOut:
        timed_out = True
        on_event(Event("timeout", f"the --timeout of {timeout:g}s passed: cancelling run {run_id}"))
        run = notebook_runs.cancel_and_settle(client, run_id)
        if run is None:
            return record(None, timed_out=True, error=f"run {run_id} could not be read after cancelling it")
    observe(run)
    output, error = notebook_runs.task_output(client, run)
    return record(run, output, timed_out=timed_out, error=error)
