"""The expanded pipeline as stages → jobs → steps, checked against what the local runner supports.

Everything the runner cannot do faithfully stops here, before the first step, with
``error: FILE:LINE: <construct> is not supported by the local runner`` — a key nobody handles is never skipped.
Shapes (docs "YAML schema"): root ``stages:``, or ``jobs:`` (one implicit stage), or ``steps:`` (one implicit job);
a stage depends on the previous one unless it says ``dependsOn``; jobs depend on nothing unless they say so; a
regular job checks out ``self`` first unless it has a ``checkout:`` step; a ``deployment`` job with
``strategy: runOnce`` runs its ``deploy`` hook's steps and downloads this run's artifacts unless ``download: none``.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from typing import Any

from .expressions import ExpressionError, parse
from .source import MDict, PipelineError, key_of, mark, unsupported

_ROOT_KEYS = {"name", "trigger", "pr", "schedules", "variables", "pool", "stages", "jobs", "steps", "resources"}
_ROOT_KEYS |= {"appendCommitMessageToRunName", "lockBehavior"}
_STAGE_KEYS = {"stage", "displayName", "dependsOn", "condition", "variables", "jobs", "pool", "lockBehavior"}
_STAGE_KEYS |= {"isSkippable", "templateContext"}
_JOB_KEYS = {"job", "displayName", "dependsOn", "condition", "continueOnError", "timeoutInMinutes", "variables"}
_JOB_KEYS |= {"cancelTimeoutInMinutes", "steps", "pool", "workspace", "templateContext", "uses"}
_DEPLOYMENT_KEYS = (_JOB_KEYS - {"job", "steps", "workspace"}) | {"deployment", "environment", "strategy"}
_STEP_COMMON = {"displayName", "name", "condition", "continueOnError", "enabled", "env", "timeoutInMinutes"}
_STEP_KEYS = {
    "script": _STEP_COMMON | {"workingDirectory", "failOnStderr"},
    "bash": _STEP_COMMON | {"workingDirectory", "failOnStderr"},
    "pwsh": _STEP_COMMON | {"workingDirectory", "failOnStderr", "errorActionPreference", "ignoreLASTEXITCODE"},
    "task": _STEP_COMMON | {"inputs"},
    "checkout": _STEP_COMMON | {"clean", "fetchDepth", "fetchTags", "lfs", "submodules", "persistCredentials"},
    "download": _STEP_COMMON | {"artifact", "patterns", "path"},
    "publish": _STEP_COMMON | {"artifact"},
}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TRUE = ("true", "yes", "y", "on")
_FALSE = ("false", "no", "n", "off")


@dataclass
class Step:
    kind: str  # script, bash, pwsh, task, checkout, download, publish
    body: dict
    display_name: str
    name: str | None = None
    condition: str = "succeeded()"
    continue_on_error: bool = False
    enabled: bool = True
    timeout_minutes: float = 0
    env: dict = field(default_factory=dict)
    task: str = ""  # "name@major" for task steps, lower-cased

    @property
    def node(self) -> Any:
        return self.body


@dataclass
class Job:
    id: str
    display_name: str
    kind: str  # job or deployment
    node: Any
    depends_on: list[str] = field(default_factory=list)
    condition: str = "succeeded()"
    variables: Any = None
    steps: list[Step] = field(default_factory=list)
    timeout_minutes: float = 60
    cancel_timeout_minutes: float = 5  # what always()/canceled() steps get once the job timed out
    continue_on_error: bool = False
    environment: str = ""


@dataclass
class Stage:
    id: str
    display_name: str
    node: Any
    depends_on: list[str] = field(default_factory=list)
    condition: str = "succeeded()"
    variables: Any = None
    jobs: list[Job] = field(default_factory=list)


@dataclass
class Plan:
    stages: list[Stage]
    variables: Any
    name: str = ""


def boolean(value: Any, node: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise PipelineError(node, f"{key}: {value!r} is not true or false")


def minutes(value: Any, node: Any, key: str) -> float:
    try:
        number = float(str(value).strip())
    except ValueError:
        raise PipelineError(node, f"{key}: {value!r} is not a number of minutes") from None
    if number < 0:
        raise PipelineError(node, f"{key}: must not be negative")
    return number


def _check_keys(node: dict, allowed: set[str], what: str) -> None:
    for key in node:
        if key not in allowed:
            raise unsupported(key, f"{what} key {key!r}")


def check_condition(text: Any, node: Any) -> str:
    value = str(text).strip() if text not in (None, "") else "succeeded()"
    try:
        parse(value)
    except ExpressionError as error:
        raise PipelineError(node, f"condition: {error}") from None
    return value


def _depends(value: Any, node: Any) -> list[str]:
    if value in (None, ""):
        return []
    items = value if isinstance(value, list) else [value]
    for item in items:
        if not isinstance(item, str) or not _NAME.match(item):
            raise PipelineError(node, f"dependsOn: {item!r} is not a stage or job name")
    return [str(item) for item in items]


def _step(item: Any, index: int, pwsh_available: bool) -> Step:
    if not isinstance(item, dict):
        raise PipelineError(item, "a step must be a mapping (script:, bash:, task:...)")
    kinds = [key for key in _STEP_KEYS if key in item]
    if "powershell" in item:
        raise unsupported(key_of(item, "powershell"), "powershell: (Windows PowerShell)")
    if "template" in item:
        raise PipelineError(item, "template: was not expanded")
    if len(kinds) != 1:
        first = next(iter(item), item)
        raise (
            unsupported(first, f"step kind {str(first)!r}") if not kinds else PipelineError(item, "a step has one kind")
        )
    kind = kinds[0]
    if kind == "pwsh" and not pwsh_available:
        raise unsupported(item, "pwsh: (PowerShell is not installed on this machine)")
    _check_keys(item, _STEP_KEYS[kind] | {kind}, f"{kind} step")
    name = item.get("name")
    if name is not None and not _NAME.match(str(name)):
        raise PipelineError(name, f"step name {name!r}: letters, digits and '_' only, not starting with a digit")
    env = item.get("env") or {}
    if not isinstance(env, dict) or any(isinstance(value, (dict, list)) for value in env.values()):
        raise PipelineError(item, "env: must map names to values")
    step = Step(kind, item, "", str(name) if name is not None else None)
    step.condition = check_condition(item.get("condition"), item)
    step.continue_on_error = boolean(item.get("continueOnError", False), item, "continueOnError")
    step.enabled = boolean(item.get("enabled", True), item, "enabled")
    step.timeout_minutes = minutes(item.get("timeoutInMinutes", 0), item, "timeoutInMinutes")
    step.env = {str(key): "" if value is None else str(value) for key, value in env.items()}
    if kind == "task":
        task = str(item["task"]).strip()
        if "@" not in task:
            raise PipelineError(item["task"], f"task {task!r} needs a major version, e.g. {task}@2")
        step.task = task.lower()
        inputs = item.get("inputs") or {}
        if not isinstance(inputs, dict):
            raise PipelineError(item, "inputs: must be a mapping")
    step.display_name = str(item.get("displayName") or _default_display(kind, item, index))
    return step


def _default_display(kind: str, item: dict, index: int) -> str:
    if kind in ("script", "bash", "pwsh"):
        first = next((line for line in str(item[kind]).splitlines() if line.strip()), "")
        return f"{'Bash' if kind == 'bash' else 'CmdLine' if kind == 'script' else 'PowerShell'}: {first[:60]}"
    if kind == "task":
        return str(item["task"])
    if kind == "checkout":
        return f"Checkout {item['checkout']}"
    if kind == "download":
        return f"Download {item.get('artifact') or 'artifacts'} ({item['download']})"
    return f"Publish {item.get('artifact', '')}"


def _steps(items: Any, node: Any, pwsh: bool) -> list[Step]:
    if items in (None, ""):
        return []
    if not isinstance(items, list):
        raise PipelineError(node, "steps: must be a list")
    steps = [_step(item, index + 1, pwsh) for index, item in enumerate(items)]
    names = [step.name.casefold() for step in steps if step.name]
    duplicate = next((name for name in names if names.count(name) > 1), None)
    if duplicate:
        raise PipelineError(node, f"two steps are named {duplicate!r} in one job")
    for step in steps:
        if step.kind == "checkout" and str(step.body["checkout"]).strip().lower() not in ("self", "none"):
            raise unsupported(step.body["checkout"], f"checkout: {step.body['checkout']} (only self and none)")
        if step.kind == "download" and str(step.body["download"]).strip().lower() not in ("current", "none"):
            raise unsupported(step.body["download"], f"download: {step.body['download']} (only current and none)")
    return steps


def _job(item: Any, pwsh: bool) -> Job:
    if not isinstance(item, dict):
        raise PipelineError(item, "a job must be a mapping")
    if "template" in item:
        raise PipelineError(item, "template: was not expanded")
    if "strategy" in item and "job" in item:
        raise unsupported(key_of(item, "strategy"), "strategy: matrix/parallel")
    for key in ("container", "services"):
        if key in item:
            raise unsupported(key_of(item, key), f"{key}:")
    kind = "deployment" if "deployment" in item else "job" if "job" in item else ""
    if not kind:
        raise unsupported(next(iter(item), item), f"job kind {str(next(iter(item), ''))!r}")
    _check_keys(item, _DEPLOYMENT_KEYS if kind == "deployment" else _JOB_KEYS, kind)
    job_id = str(item[kind])
    if not _NAME.match(job_id):
        raise PipelineError(item[kind], f"job name {job_id!r}: letters, digits and '_' only")
    job = Job(job_id, str(item.get("displayName") or job_id), kind, item)
    job.depends_on = _depends(item.get("dependsOn"), item)
    job.condition = check_condition(item.get("condition"), item)
    job.variables = item.get("variables")
    job.timeout_minutes = minutes(item.get("timeoutInMinutes", 60), item, "timeoutInMinutes")
    job.cancel_timeout_minutes = minutes(item.get("cancelTimeoutInMinutes", 5), item, "cancelTimeoutInMinutes")
    job.continue_on_error = boolean(item.get("continueOnError", False), item, "continueOnError")
    if kind == "job":
        job.steps = _steps(item.get("steps"), item, pwsh)
        if not any(step.kind == "checkout" for step in job.steps):
            implicit = mark({"checkout": "self"}, item)
            job.steps.insert(0, Step("checkout", implicit, "Checkout self (implicit)"))
        return job
    environment = item.get("environment", "")
    job.environment = str(environment.get("name", "") if isinstance(environment, dict) else environment)
    strategy = item.get("strategy")
    if not isinstance(strategy, dict) or list(strategy) != ["runOnce"]:
        raise unsupported(key_of(item, "strategy"), "a deployment strategy other than runOnce")
    hooks = strategy["runOnce"] if isinstance(strategy["runOnce"], dict) else {}
    for hook in hooks:
        if hook != "deploy":
            raise unsupported(hook, f"the runOnce hook {hook!r} (only deploy)")
    deploy = hooks.get("deploy") or {}
    if not isinstance(deploy, dict):
        raise PipelineError(strategy, "runOnce: deploy: needs steps:")
    for key in deploy:
        if key not in ("steps", "pool"):
            raise unsupported(key, f"deploy hook key {key!r}")
    job.steps = _steps(deploy.get("steps"), deploy, pwsh)
    if not any(step.kind == "download" for step in job.steps):
        implicit = mark({"download": "current"}, deploy)
        job.steps.insert(0, Step("download", implicit, "Download this run's artifacts (implicit)"))
    return job


def _order(items: list, label: str) -> list:
    """`items` (with .id and .depends_on) in an order that runs every dependency first; declared order otherwise."""
    ids = {item.id.casefold(): item for item in items}
    for item in items:
        for dependency in item.depends_on:
            if dependency.casefold() not in ids:
                raise PipelineError(item.node, f"{label} {item.id} depends on {dependency}, which does not exist")
    done: list = []
    seen: set[str] = set()
    while len(done) < len(items):
        ready = [
            item
            for item in items
            if item.id.casefold() not in seen and all(d.casefold() in seen for d in item.depends_on)
        ]
        if not ready:
            rest = ", ".join(item.id for item in items if item.id.casefold() not in seen)
            raise PipelineError(items[0].node, f"the {label}s {rest} depend on each other in a cycle")
        done.append(ready[0])
        seen.add(ready[0].id.casefold())
    return done


def build(tree: MDict, pwsh_available: bool | None = None) -> Plan:
    """The plan of an expanded pipeline (templates.compile_pipeline), or `PipelineError` for what cannot run."""
    pwsh = shutil.which("pwsh") is not None if pwsh_available is None else pwsh_available
    _check_keys(tree, _ROOT_KEYS, "pipeline")
    resources = tree.get("resources")
    if resources not in (None, "", {}):
        raise unsupported(resources, "resources: (other repositories, pipelines, containers)")
    shapes = [key for key in ("stages", "jobs", "steps") if key in tree]
    if len(shapes) != 1:
        raise PipelineError(tree, "a pipeline needs exactly one of stages:, jobs: or steps:")
    if "steps" in tree:
        stage_nodes = [mark({"stage": "__default", "jobs": [mark({"job": "Job", "steps": tree["steps"]}, tree)]}, tree)]
    elif "jobs" in tree:
        stage_nodes = [mark({"stage": "__default", "jobs": tree["jobs"]}, tree)]
    else:
        stage_nodes = tree["stages"] if isinstance(tree["stages"], list) else []
    stages: list[Stage] = []
    for node in stage_nodes:
        if not isinstance(node, dict) or "stage" not in node:
            raise PipelineError(node, "a stage must be a mapping with stage:")
        _check_keys(node, _STAGE_KEYS, "stage")
        stage_id = str(node["stage"])
        if not _NAME.match(stage_id):
            raise PipelineError(node["stage"], f"stage name {stage_id!r}: letters, digits and '_' only")
        stage = Stage(stage_id, str(node.get("displayName") or stage_id), node)
        if "dependsOn" in node:
            stage.depends_on = _depends(node["dependsOn"], node)
        elif stages:
            stage.depends_on = [stages[-1].id]
        stage.condition = check_condition(node.get("condition"), node)
        stage.variables = node.get("variables")
        jobs = [_job(item, pwsh) for item in (node.get("jobs") or [])]
        if len({job.id.casefold() for job in jobs}) != len(jobs):
            raise PipelineError(node, f"two jobs have the same name in stage {stage_id}")
        stage.jobs = _order(jobs, "job")
        stages.append(stage)
    if len({stage.id.casefold() for stage in stages}) != len(stages):
        raise PipelineError(tree, "two stages have the same name")
    return Plan(_order(stages, "stage"), tree.get("variables"), str(tree.get("name", "")))
