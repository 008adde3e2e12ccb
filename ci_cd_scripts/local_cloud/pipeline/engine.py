"""The run: stages and jobs in ``dependsOn`` order, their conditions, variables, outputs and results.

Semantics of the docs pages "Conditions", "Define variables" and "Stages, dependencies, conditions": a stage or
job runs when its condition holds (default ``succeeded()``: every direct dependency Succeeded or
SucceededWithIssues); ``$[ ]`` variable values are evaluated when the stage or job starts, with
``dependencies.<job>.outputs['step.var']`` and ``.result`` of direct dependencies, ``stageDependencies.<stage>.
<job>.outputs[...]`` of the stages this one depends on, and for a stage ``dependencies.<stage>.outputs
['job.step.var']``; a deployment job's outputs carry its own name first (``job.step.var``). Each job runs in a
fresh folder under the work directory (its own ``Pipeline.Workspace``), as on a fresh agent. Without
``--keep-going`` nothing new starts after a job failed; with it, every stage and job whose condition holds runs.
"""

from __future__ import annotations

import platform
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import tasks
from .agent import JobRun, StepResult, worst
from .expressions import Context, ExpressionError, truthy
from .plan import Job, Plan, Stage
from .source import PipelineError
from .variables import Masker, Variables


@dataclass
class Options:
    repo_root: Path
    workdir: Path
    branch: str
    build_id: int
    commit: str = ""
    variables: dict[str, str] = field(default_factory=dict)  # --var
    secrets: dict[str, str] = field(default_factory=dict)  # --secrets-file
    extra: dict[str, str] = field(default_factory=dict)  # the runner's own (DATABRICKS_HOST...)
    extra_secrets: dict[str, str] = field(default_factory=dict)
    masked: list[str] = field(default_factory=list)  # more values to mask (the local Key Vault's token)
    azure_cli_env: dict[str, str] = field(default_factory=dict)  # what AzureCLI@2 steps get against the local cloud
    stages: list[str] = field(default_factory=list)  # --stage; empty = all
    keep_going: bool = False
    reason: str = "Manual"
    log: Callable[[str], None] = print


@dataclass
class JobOutcome:
    job: Job
    result: str = "Skipped"
    seconds: float = 0.0
    message: str = ""
    run: JobRun | None = None
    outputs: dict[str, str] = field(default_factory=dict)

    @property
    def steps(self) -> list[StepResult]:
        return self.run.steps if self.run else []


@dataclass
class StageOutcome:
    stage: Stage
    result: str = "Skipped"
    seconds: float = 0.0
    message: str = ""
    jobs: list[JobOutcome] = field(default_factory=list)


def branch_name(branch: str) -> str:
    return branch.rsplit("/", 1)[-1]


def pipeline_predefined(options: Options) -> dict[str, str]:
    """The predefined variables every job sees (docs "Predefined variables")."""
    repo = options.repo_root.name
    values = {
        "Build.BuildId": str(options.build_id),
        "Build.BuildNumber": f"{time.strftime('%Y%m%d')}.{options.build_id}",
        "Build.SourceBranch": options.branch,
        "Build.SourceBranchName": branch_name(options.branch),
        "Build.SourceVersion": options.commit,
        "Build.Reason": options.reason,
        "Build.Repository.Name": repo,
        "Build.Repository.Provider": "Git",
        "Build.DefinitionName": repo,
        "Build.RequestedFor": "local",
        "System.TeamProject": "local",
        "System.CollectionUri": "http://localhost/",
        "System.Debug": "false",
        "Agent.OS": {"Darwin": "Darwin", "Windows": "Windows_NT"}.get(platform.system(), "Linux"),
        "Agent.Name": "local",
        "Agent.MachineName": platform.node() or "local",
        "TF_BUILD": "True",
    }
    return values


def _definitions(block: Any, ctx: Context, masker: Masker, log: Callable[[str], None]) -> list[tuple]:
    """(name, value, readonly) of a ``variables:`` block; ``$[ ]`` values evaluated in `ctx`."""
    entries: list[tuple] = []
    if block in (None, ""):
        return entries
    items = block.items() if isinstance(block, dict) else None
    if items is not None:
        pairs = [(name, value, False, block) for name, value in items]
    else:
        pairs = []
        for entry in block:
            if not isinstance(entry, dict):
                raise PipelineError(block, "a variables: entry must be a mapping")
            if "group" in entry:
                log(f"note: variable group {entry['group']}: locally its values come from --var and --secrets-file")
                continue
            if "name" not in entry:
                raise PipelineError(entry, "a variables: entry needs name: (or group:)")
            readonly = str(entry.get("readonly", "false")).strip().lower() == "true"
            pairs.append((entry["name"], entry.get("value", ""), readonly, entry))
    for name, value, readonly, node in pairs:
        if isinstance(value, (dict, list)):
            raise PipelineError(node, f"variable {name}: a value, not a list or mapping")
        text = "" if value is None else str(value)
        stripped = text.strip()
        if stripped.startswith("$[") and stripped.endswith("]"):
            try:
                result = ctx.evaluate(stripped[2:-1])
            except ExpressionError as error:
                raise PipelineError(node, f"variable {name}: {error}") from None
            text = "" if result is None else str(result) if not isinstance(result, bool) else str(result)
        entries.append((str(name), text, readonly))
    return entries


class Engine:
    def __init__(self, plan: Plan, options: Options) -> None:
        self.plan = plan
        self.options = options
        self.masker = Masker()
        for value in [*options.secrets.values(), *options.extra_secrets.values(), *options.masked]:
            self.masker.add(value, with_base64=True)
        self.stopped = False
        self.root = options.workdir / "run"
        self.artifacts = self.root / "artifacts"
        self.cache = options.workdir / "cache"
        for step in (step for stage in plan.stages for job in stage.jobs for step in job.steps):
            tasks.check(step)

    def say(self, text: str) -> None:
        from cicdkit import ado

        self.options.log(ado.neutralise(self.masker.mask(text)))

    # ---- variables -----------------------------------------------------------------------------------------

    def _overlay(self, variables: Variables) -> None:
        for name, value in {**self.options.extra, **self.options.variables}.items():
            variables.set(name, value, force=True)
        for name, value in {**self.options.extra_secrets, **self.options.secrets}.items():
            variables.set(name, value, secret=True, force=True)

    def pipeline_variables(self) -> Variables:
        variables = Variables()
        for name, value in pipeline_predefined(self.options).items():
            variables.set(name, value, readonly=name.startswith(("Build.", "Agent.")))
        self._overlay(variables)
        for name, value, readonly in _definitions(self.plan.variables, Context({}), self.masker, self.say):
            variables.set(name, value, readonly=readonly, force=True)
        self._overlay(variables)
        return variables

    # ---- conditions ----------------------------------------------------------------------------------------

    @staticmethod
    def _status(results: dict[str, str]) -> Callable[[str, list], bool]:
        def status(name: str, args: list) -> bool:
            chosen = results
            if args:
                chosen = {str(a).casefold(): results.get(str(a).casefold(), "Skipped") for a in args}
            values = list(chosen.values())
            if name == "always":
                return True
            if name == "canceled":
                return any(value == "Canceled" for value in values)
            if name == "failed":
                return any(value == "Failed" for value in values)
            if name == "succeededorfailed":
                return not any(value == "Canceled" for value in values)
            return all(value in ("Succeeded", "SucceededWithIssues") for value in values)

        return status

    def _check(self, condition: str, ctx: Context, node: Any) -> bool:
        try:
            return truthy(ctx.evaluate(condition))
        except ExpressionError as error:
            raise PipelineError(node, f"condition {condition!r}: {error}") from None

    # ---- the run -------------------------------------------------------------------------------------------

    def run(self) -> list[StageOutcome]:
        shutil.rmtree(self.root, ignore_errors=True)
        self.artifacts.mkdir(parents=True)
        self.cache.mkdir(parents=True, exist_ok=True)
        base = self.pipeline_variables()
        selected = {name.casefold() for name in self.options.stages}
        outcomes: dict[str, StageOutcome] = {}
        ordered: list[StageOutcome] = []
        for stage in self.plan.stages:
            outcome = StageOutcome(stage)
            ordered.append(outcome)
            outcomes[stage.id.casefold()] = outcome
            if selected and stage.id.casefold() not in selected:
                outcome.result, outcome.message = "Skipped", "not selected (--stage)"
                continue
            deps = {
                d.casefold(): outcomes[d.casefold()]
                for d in stage.depends_on
                if not selected or d.casefold() in selected
            }
            if self.stopped:
                outcome.message = "not run: an earlier job failed (--keep-going runs the rest)"
                continue
            ctx = Context(
                {
                    "variables": base.as_mapping(),
                    "dependencies": {
                        dep.stage.id: {"result": dep.result, "outputs": _stage_outputs(dep)} for dep in deps.values()
                    },
                },
                self._status({key: dep.result for key, dep in deps.items()}),
            )
            if not self._check(stage.condition, ctx, stage.node):
                outcome.message = f"condition {stage.condition} is false"
                self.say(f"══ stage {stage.id}: {stage.display_name} — skipped: {outcome.message}")
                continue
            self._run_stage(outcome, base, deps)
        return ordered

    def _run_stage(self, outcome: StageOutcome, base: Variables, deps: dict[str, StageOutcome]) -> None:
        stage = outcome.stage
        self.say(f"══ stage {stage.id}: {stage.display_name}")
        started = time.monotonic()
        variables = base.copy()
        variables.set("System.StageName", stage.id, force=True)
        variables.set("System.StageDisplayName", stage.display_name, force=True)
        variables.set("System.StageAttempt", "1", force=True)
        stage_deps = {
            dep.stage.id: {job.job.id: {"result": job.result, "outputs": job.outputs} for job in dep.jobs}
            for dep in deps.values()
        }
        ctx = Context({"variables": variables.as_mapping(), "stageDependencies": stage_deps})
        for name, value, readonly in _definitions(stage.variables, ctx, self.masker, self.say):
            variables.set(name, value, readonly=readonly, force=True)
        self._overlay(variables)
        results: dict[str, JobOutcome] = {}
        for job in stage.jobs:
            job_outcome = JobOutcome(job)
            outcome.jobs.append(job_outcome)
            results[job.id.casefold()] = job_outcome
            if self.stopped:
                job_outcome.message = "not run: an earlier job failed (--keep-going runs the rest)"
                continue
            job_deps = {d.casefold(): results[d.casefold()] for d in job.depends_on}
            job_ctx = Context(
                {
                    "variables": variables.as_mapping(),
                    "dependencies": {d.job.id: {"result": d.result, "outputs": d.outputs} for d in job_deps.values()},
                    "stageDependencies": stage_deps,
                },
                self._status({key: d.result for key, d in job_deps.items()}),
            )
            if not self._check(job.condition, job_ctx, job.node):
                job_outcome.message = f"condition {job.condition} is false"
                self.say(f"── job {job.id}: {job.display_name} — skipped: {job_outcome.message}")
                continue
            self._run_job(job_outcome, stage, variables, job_ctx)
            if job_outcome.result in ("Failed", "Canceled") and not self.options.keep_going:
                self.stopped = True
        outcome.seconds = time.monotonic() - started
        ran = [job.result for job in outcome.jobs if job.result != "Skipped"]
        outcome.result = "Skipped" if not ran else "Succeeded"
        for result in ran:
            outcome.result = "Failed" if result in ("Failed", "Canceled") else worst(outcome.result, result)

    def _run_job(self, outcome: JobOutcome, stage: Stage, stage_vars: Variables, ctx: Context) -> None:
        job = outcome.job
        kind = "deployment" if job.kind == "deployment" else "job"
        self.say(f"── {kind} {job.id}: {job.display_name}")
        if job.environment:
            self.say(f"   environment {job.environment} (approvals and checks live in Azure DevOps, not here)")
        folder = self.root / "jobs" / f"{stage.id}.{job.id}"
        dirs = {
            "workspace": folder,
            "sources": folder / "s",
            "staging": folder / "a",
            "binaries": folder / "b",
            "temp": folder / "_temp",
            "tools": folder / "_tool",
            "repo": self.options.repo_root,
            "root": self.options.workdir,
        }
        for name in ("sources", "staging", "binaries", "temp", "tools"):
            dirs[name].mkdir(parents=True, exist_ok=True)
        variables = stage_vars.copy()
        for name, value in {
            "Pipeline.Workspace": folder,
            "Agent.BuildDirectory": folder,
            "Agent.WorkFolder": folder,
            "Build.SourcesDirectory": dirs["sources"],
            "Build.Repository.LocalPath": dirs["sources"],
            "System.DefaultWorkingDirectory": dirs["sources"],
            "Build.ArtifactStagingDirectory": dirs["staging"],
            "Build.StagingDirectory": dirs["staging"],
            "Build.BinariesDirectory": dirs["binaries"],
            "Agent.TempDirectory": dirs["temp"],
            "Agent.ToolsDirectory": dirs["tools"],
            "System.JobName": job.id,
            "Agent.JobName": job.display_name,
            "System.JobDisplayName": job.display_name,
            "System.JobAttempt": "1",
            "Agent.JobStatus": "Succeeded",
        }.items():
            variables.set(name, str(value), force=True)
        if job.environment:
            variables.set("Environment.Name", job.environment, force=True)
        job_ctx = ctx.child(variables=variables.as_mapping())
        for name, value, readonly in _definitions(job.variables, job_ctx, self.masker, self.say):
            variables.set(name, value, readonly=readonly, force=True)
        self._overlay(variables)
        variables.resolve_nested()
        started = time.monotonic()
        deadline = started + (job.timeout_minutes * 60 if job.timeout_minutes else 360 * 60)
        run = JobRun(job, variables, self.masker, dirs, self.artifacts, self.cache, self.options.log, deadline)
        run.azure_cli_env = dict(self.options.azure_cli_env)
        run.feeds = self.options.workdir / "feeds"
        outcome.run = run
        total = len(job.steps)
        for index, step in enumerate(job.steps, 1):
            if run.canceled and time.monotonic() >= run.cancel_deadline:
                message = "job timed out; its cancel timeout passed"
                name = variables.expand(step.display_name)
                run.steps.append(StepResult(name, "Skipped", 0, message))
                run.say(f"── step {index}/{total}: {name} — skipped: {message}")
                continue
            variables.set("Agent.JobStatus", "Canceled" if run.canceled else run.result, force=True)
            run.run_step(step, index, total)
        for action in run.post_job:
            action()
        outcome.seconds = time.monotonic() - started
        result = "Canceled" if run.canceled else run.result
        if result == "Failed" and job.continue_on_error:
            result = "SucceededWithIssues"
        outcome.result = result
        prefix = f"{job.id}." if job.kind == "deployment" else ""
        outcome.outputs = {f"{prefix}{key}": value for key, value in run.outputs.items()}
        self.say(f"   {kind} {job.id}: {outcome.result} in {outcome.seconds:.1f} s")


def _stage_outputs(outcome: StageOutcome) -> dict[str, str]:
    """``dependencies.<stage>.outputs['job.step.var']`` of a finished stage."""
    return {f"{job.job.id}.{key}": value for job in outcome.jobs for key, value in job.outputs.items()}
