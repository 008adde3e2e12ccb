"""One job's agent: runs its steps in fresh processes and applies what their output says, as the Azure Pipelines
agent does (README "Running the pipeline locally" → Agent emulation).

Each script step gets a new environment built when it starts (so a variable set by step N is visible from step
N+1, never in step N itself), runs under bash (``script:``, ``bash:``, Bash@3, CmdLine@2), python (PythonScript@0)
or pwsh, with a deadline (``timeoutInMinutes`` of the step, else what is left of the job's). Every line of stdout
and stderr is read with the agent's decoder (decoder.py) and the command applied: ``task.setvariable``
(``issecret`` masks the value from then on and keeps it out of the environment; ``isoutput`` sets
``<step>.<var>``), ``task.setsecret``, ``task.logissue``, ``task.complete``, ``task.uploadsummary``,
``task.prependpath``, ``build.addbuildtag``, ``build.updatebuildnumber``; ``##[group]``/``##[endgroup]`` fold the
log. Everything printed is masked and neutralised (it may be read by a real agent when this runs in a pipeline).
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cicdkit import ado

from . import tasks
from .decoder import has_command, parse_line
from .expressions import Context, ExpressionError, truthy
from .plan import Job, Step
from .task_support import TaskFailure
from .variables import Masker, Variables

RESULTS = ("Succeeded", "SucceededWithIssues", "Failed", "Canceled", "Skipped")
_RANK = {"Succeeded": 0, "SucceededWithIssues": 1, "Failed": 2}
_KILL_GRACE_SECONDS = 5


def worst(a: str, b: str) -> str:
    return a if _RANK.get(a, 0) >= _RANK.get(b, 0) else b


@dataclass
class StepResult:
    display_name: str
    result: str = "Skipped"
    seconds: float = 0.0
    message: str = ""


@dataclass
class JobRun:
    """What one job's steps share: variables, folders, the masker, and what the steps reported."""

    job: Job
    variables: Variables
    masker: Masker
    dirs: dict[str, Path]
    artifacts: Path
    cache: Path
    log: Callable[[str], None]
    deadline: float
    result: str = "Succeeded"
    canceled: bool = False  # the job ran past its timeout: only always()/canceled() steps run, by cancel_deadline
    cancel_deadline: float = 0.0
    outputs: dict[str, str] = field(default_factory=dict)
    path_prefix: list[str] = field(default_factory=list)
    summaries: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    tests: dict[str, Any] = field(default_factory=lambda: {"passed": 0, "failed": 0, "skipped": 0, "files": []})
    post_job: list[Callable[[], None]] = field(default_factory=list)
    steps: list[StepResult] = field(default_factory=list)
    base_env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    azure_cli_env: dict[str, str] = field(default_factory=dict)
    feeds: Path = Path("feeds")  # UniversalPackages@0: the local feeds, kept between runs

    # ---- output --------------------------------------------------------------------------------------------

    def say(self, text: str) -> None:
        """One line of the live log, masked and neutralised."""
        self.log(ado.neutralise(self.masker.mask(text)))

    # ---- the environment of a step -------------------------------------------------------------------------

    def environment(self, mapping: dict[str, str], extra: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(self.base_env)
        env.update(self.variables.environment())
        env["TF_BUILD"] = "True"
        if self.job.kind == "deployment" and self.job.environment:
            env["ENVIRONMENT_NAME"] = self.job.environment
        for key, value in mapping.items():
            env[key] = self.variables.expand(value)
        env.update(extra or {})
        if self.path_prefix:
            env["PATH"] = os.pathsep.join([*reversed(self.path_prefix), env.get("PATH", "")])
        return env

    # ---- processes -----------------------------------------------------------------------------------------

    def run_process(
        self, argv: list[str], cwd: Path, env: dict[str, str], seconds: float, step: Step, fail_on_stderr: bool = False
    ) -> tuple[int | None, str]:
        """(exit code or None when killed by the deadline, result from task.complete/issues)."""
        state = _StepState(step)
        try:
            process = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as error:
            self.say(f"error: cannot start {argv[0]}: {error.strerror or error}")
            return 1, "Failed"
        lock = threading.Lock()
        readers = [
            threading.Thread(target=self._read, args=(process.stdout, False, state, lock), daemon=True),
            threading.Thread(target=self._read, args=(process.stderr, True, state, lock), daemon=True),
        ]
        for reader in readers:
            reader.start()
        try:
            code: int | None = process.wait(timeout=max(seconds, 0.001))
        except subprocess.TimeoutExpired:
            _kill(process)
            code = None
        for reader in readers:
            reader.join(timeout=_KILL_GRACE_SECONDS)
        if fail_on_stderr and state.stderr_seen:
            state.result = worst(state.result, "Failed")
            self.say("error: the step wrote to stderr and failOnStderr is true")
        return code, state.result

    def _read(self, stream, is_stderr: bool, state: _StepState, lock: threading.Lock) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", errors="replace").rstrip("\n").rstrip("\r")
            with lock:
                if is_stderr and line.strip():
                    state.stderr_seen = True
                self.line(line, state)
        stream.close()

    # ---- one line of output --------------------------------------------------------------------------------

    def line(self, line: str, state: _StepState) -> None:
        stripped = line.lstrip()
        if stripped.startswith("##[group]"):
            self.say(f"  ▸ {stripped[len('##[group]') :]}")
            state.in_group = True
            return
        if stripped.startswith("##[endgroup]"):
            state.in_group = False
            return
        if not has_command(line):
            self.say(f"  {'│ ' if state.in_group else ''}{line}")
            return
        command = parse_line(line)
        if command is None:
            self.say(f"warning: a line holds '##vso[' but is no valid logging command: {line}")
            return
        try:
            self.apply(command, state)
        except ValueError as error:
            state.result = "Failed"
            self.say(f"error: {command.area}.{command.event}: {error}")

    def apply(self, command, state: _StepState) -> None:
        props, data = command.properties, command.data
        name = f"{command.area}.{command.event}"
        if name == "task.setvariable":
            self._set_variable(props, data, state.step)
        elif name == "task.setsecret":
            self.masker.add(data)
        elif name in ("task.logissue", "task.issue"):
            kind = props.get("type", "").lower()
            if kind not in ("error", "warning"):
                raise ValueError(f"type must be error or warning, not {props.get('type')!r}")
            place = props.get("sourcepath", "")
            if place and props.get("linenumber"):
                place += f"({props['linenumber']}{',' + props['columnnumber'] if props.get('columnnumber') else ''})"
            self.say(f"{kind}: {place + ': ' if place else ''}{data}")
            if kind == "error":
                state.errors += 1
        elif name == "task.complete":
            result = props.get("result", "")
            if result not in ("Succeeded", "SucceededWithIssues", "Failed"):
                raise ValueError(f"result must be Succeeded, SucceededWithIssues or Failed, not {result!r}")
            state.result = worst(state.result, result)
        elif name == "task.uploadsummary":
            path = Path(data)
            if not path.is_absolute() or not path.is_file():
                raise ValueError(f"the summary {data!r} is not an existing file given by its absolute path")
            self.summaries.append(str(path))
            self.say(f"  [summary] {path}")
        elif name == "task.prependpath":
            if not data.strip():
                raise ValueError("prependpath needs a directory")
            self.path_prefix.append(data.strip())
        elif name == "build.addbuildtag":
            self.tags.append(data.strip())
            self.say(f"  [build tag] {data.strip()}")
        elif name == "build.updatebuildnumber":
            self.variables.set("Build.BuildNumber", data.strip(), force=True)
        elif name in ("task.setprogress", "task.debug", "task.uploadfile", "task.addattachment", "task.logdetail"):
            if name == "task.debug" and truthy(self.variables.value("System.Debug")):
                self.say(f"  [debug] {data}")
        else:
            self.say(f"warning: logging command {name} is not known to the local runner; ignored")

    def _set_variable(self, props: dict[str, str], data: str, step: Step) -> None:
        variable = props.get("variable", "").strip()
        if not variable:
            raise ValueError("setvariable needs variable=")
        secret = props.get("issecret", "").strip().lower() == "true"
        output = props.get("isoutput", "").strip().lower() == "true"
        readonly = props.get("isreadonly", "").strip().lower() == "true"
        if secret:
            allowed = truthy(self.variables.value("SYSTEM_UNSAFEALLOWMULTILINESECRET"))
            if ("\n" in data or "\r" in data) and not allowed:
                raise ValueError("Secrets cannot contain multiple lines")
            self.masker.add(data)
        current = self.variables.get(variable)
        if current is not None and current.secret:
            secret = True
        if output:
            if not step.name:
                raise ValueError(f"output variable {variable} needs the step to have a name:")
            qualified = f"{step.name}.{variable}"
            self.variables.set(qualified, data, secret=secret, readonly=True, force=True)
            self.outputs[qualified] = data
            return
        if not self.variables.set(variable, data, secret=secret, readonly=readonly):
            self.say(f"warning: variable {variable} is read-only; the new value is ignored")

    # ---- steps ---------------------------------------------------------------------------------------------

    def status(self, name: str, args: list) -> bool:
        if args:
            raise ExpressionError(f"{name}() of a step takes no arguments")
        if name == "always":
            return True
        if name == "canceled":
            return self.canceled
        if name == "succeededorfailed":
            return not self.canceled
        if name == "failed":
            return self.result == "Failed" and not self.canceled
        return self.result in ("Succeeded", "SucceededWithIssues") and not self.canceled

    def should_run(self, step: Step) -> tuple[bool, str]:
        if not step.enabled:
            return False, "disabled (enabled: false)"
        ctx = Context({"variables": self.variables.as_mapping()}, self.status)
        try:
            value = truthy(ctx.evaluate(self.variables.expand(step.condition)))
        except ExpressionError as error:
            raise TaskFailure(f"condition {step.condition!r}: {error}") from None
        return value, "" if value else f"condition {step.condition} is false"

    def run_step(self, step: Step, index: int, total: int) -> StepResult:
        record = StepResult(self.variables.expand(step.display_name))
        self.steps.append(record)
        try:
            run, why = self.should_run(step)
        except TaskFailure as error:
            run, why = False, str(error)
            self.result = "Failed"
        if not run:
            record.message = "condition is false" if why.startswith("condition ") and why.endswith(" is false") else why
            if self.canceled and record.message == "condition is false":
                record.message, why = "job timed out", f"the job timed out ({why})"
            self.say(f"── step {index}/{total}: {record.display_name} — skipped: {why}")
            return record
        self.say(f"── step {index}/{total}: {record.display_name}")
        started = time.monotonic()
        limit = (self.cancel_deadline if self.canceled else self.deadline) - started
        if step.timeout_minutes:
            limit = min(limit, step.timeout_minutes * 60)
        try:
            code, result = tasks.run(step, self, limit)
        except TaskFailure as error:
            code, result = 1, "Failed"
            self.say(f"error: {error}")
        record.seconds = time.monotonic() - started
        if code is None:
            result = "Failed"
            if self.canceled:
                record.message = f"stopped by the job's cancel timeout ({self.job.cancel_timeout_minutes:g} minute(s))"
                self.say(f"error: the step was {record.message}")
            else:
                minutes_ = step.timeout_minutes or self.job.timeout_minutes
                record.message = f"timed out after {minutes_:g} minute(s)"
                self.say(f"error: the step was stopped: it ran past its timeout ({record.message})")
            if not self.canceled and time.monotonic() >= self.deadline:
                # As Azure DevOps does: the job is canceled, and its always()/canceled() steps still run, for
                # cancelTimeoutInMinutes at most (default 5).
                self.canceled = True
                self.cancel_deadline = time.monotonic() + self.job.cancel_timeout_minutes * 60
        elif code != 0:
            result = "Failed"
            record.message = f"exit code {code}"
            self.say(f"error: the step exited with code {code}")
        if result == "Failed" and step.continue_on_error:
            result = "SucceededWithIssues"
            record.message += " (continueOnError)"
        record.result = result
        self.result = worst(self.result, result)
        self.say(f"   {record.result} in {record.seconds:.1f} s")
        return record


@dataclass
class _StepState:
    step: Step
    result: str = "Succeeded"
    errors: int = 0
    in_group: bool = False
    stderr_seen: bool = False


def _kill(process: subprocess.Popen) -> None:
    """End the step's whole process group: TERM, then KILL after a grace period."""
    for sig, wait in ((signal.SIGTERM, _KILL_GRACE_SECONDS), (signal.SIGKILL, _KILL_GRACE_SECONDS)):
        try:
            os.killpg(process.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
