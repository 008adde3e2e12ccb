"""What each step kind does locally: scripts, and local stand-ins for the tasks the repository's templates use.

Input names, aliases and defaults follow each task's ``task.json`` in microsoft/azure-pipelines-tasks (README
"Running the pipeline locally" → Tasks). Scripts: ``script:`` / CmdLine@2 and ``bash:`` / Bash@3 run
``bash --noprofile --norc FILE`` (no ``-e``: the script's own exit code decides), PythonScript@0 runs the running
Python, ``pwsh:`` runs ``pwsh -NoProfile -NonInteractive -File FILE``. The tasks: UsePythonVersion@0 checks
this machine's Python against ``versionSpec`` and puts it first on PATH; Cache@2 keeps a cache folder under the
work directory; PublishTestResults@2 reads the JUnit files and prints totals and failures;
PublishPipelineArtifact@1 / ``publish:``, DownloadPipelineArtifact@2 / ``download:`` copy under the work
directory; AzureCLI@2 runs its script with no Azure login; ``checkout: self`` copies the working tree as git sees
it (tracked and untracked files, ``.gitignore`` honoured).
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import task_stand_ins as stand_ins
from .plan import Step
from .source import unsupported
from .task_support import TaskFailure, pick, task_inputs, working_directory

SCRIPT_TASKS = ("bash@3", "cmdline@2", "pythonscript@0")


def run_script_text(
    run: Any, step: Step, text: str, shell: str, cwd: Path, limit: float, extra_env: dict[str, str] | None = None
) -> tuple[int | None, str]:
    """Write `text` (macros expanded) to a file under Agent.TempDirectory and run it with `shell`."""
    body = run.variables.expand(text)
    suffix = {"bash": ".sh", "python": ".py", "pwsh": ".ps1"}[shell]
    temp = run.dirs["temp"]
    with tempfile.NamedTemporaryFile("w", suffix=suffix, dir=temp, delete=False, encoding="utf-8") as handle:
        handle.write(body)
    argv = {
        "bash": ["bash", "--noprofile", "--norc", handle.name],
        "python": [sys.executable, handle.name],
        "pwsh": ["pwsh", "-NoLogo", "-NoProfile", "-NonInteractive", "-File", handle.name],
    }[shell]
    try:
        env = run.environment(step.env, extra_env)
        fail_on_stderr = str(step.body.get("failOnStderr", "false")).strip().lower() == "true"
        return run.run_process(argv, cwd, env, limit, step, fail_on_stderr)
    finally:
        Path(handle.name).unlink(missing_ok=True)


def run_file(
    run: Any, step: Step, argv: list[str], cwd: Path, limit: float, extra_env: dict[str, str] | None = None
) -> tuple[int | None, str]:
    return run.run_process(argv, cwd, run.environment(step.env, extra_env), limit, step)


# ---- script tasks --------------------------------------------------------------------------------------------


def _bash_task(step: Step, run: Any, limit: float) -> tuple[int | None, str]:
    inputs = task_inputs(step, run)
    cwd = working_directory(run, pick(inputs, "workingDirectory") or None)
    if pick(inputs, "targetType", default="filePath").lower() == "inline":
        return run_script_text(run, step, step.body["inputs"].get("script", ""), "bash", cwd, limit)
    path = pick(inputs, "filePath")
    if not path:
        raise TaskFailure("Bash@3 with targetType filePath needs filePath")
    return run_file(run, step, ["bash", "--noprofile", "--norc", path, *_split(pick(inputs, "arguments"))], cwd, limit)


def _cmdline_task(step: Step, run: Any, limit: float) -> tuple[int | None, str]:
    inputs = task_inputs(step, run)
    cwd = working_directory(run, pick(inputs, "workingDirectory") or None)
    return run_script_text(run, step, (step.body.get("inputs") or {}).get("script", ""), "bash", cwd, limit)


def _python_task(step: Step, run: Any, limit: float) -> tuple[int | None, str]:
    inputs = task_inputs(step, run)
    cwd = working_directory(run, pick(inputs, "workingDirectory") or None)
    if pick(inputs, "scriptSource", default="filePath").lower() == "inline":
        return run_script_text(run, step, (step.body.get("inputs") or {}).get("script", ""), "python", cwd, limit)
    path = pick(inputs, "scriptPath")
    if not path:
        raise TaskFailure("PythonScript@0 with scriptSource filePath needs scriptPath")
    interpreter = pick(inputs, "pythonInterpreter", default=sys.executable)
    return run_file(run, step, [interpreter, path, *_split(pick(inputs, "arguments"))], cwd, limit)


def _split(arguments: str) -> list[str]:
    import shlex

    try:
        return shlex.split(arguments)
    except ValueError as error:
        raise TaskFailure(f"arguments {arguments!r}: {error}") from None


def _azure_cli(step: Step, run: Any, limit: float) -> tuple[int | None, str]:
    inputs = task_inputs(step, run)
    script_type = pick(inputs, "scriptType").lower()
    if script_type not in ("bash", "pscore"):
        raise TaskFailure(f"AzureCLI@2 scriptType {script_type or '(missing)'}: only bash and pscore run locally")
    connection = pick(inputs, "azureSubscription", "connectedServiceNameARM") or "(none)"
    extra = dict(run.azure_cli_env)
    if extra:
        run.say(
            f"  AzureCLI@2: no Azure login (service connection {connection} is not used): the script gets a stand-in "
            "az holding the local Key Vault's throwaway token, and *.vault.azure.net leads to the local Key Vault"
        )
        extra["PATH"] = f"{extra.pop('LOCAL_CLOUD_AZ_DIR')}{os.pathsep}{run.base_env.get('PATH', '')}"
        extra["AZURE_CONFIG_DIR"] = str(run.dirs["temp"] / ".azclitask")
    else:
        run.say(
            f"  AzureCLI@2: no Azure login locally (service connection {connection} is not used); the script runs "
            "with this machine's own az login and environment, if any"
        )
    cwd = working_directory(run, pick(inputs, "workingDirectory") or None)
    shell = "bash" if script_type == "bash" else "pwsh"
    if pick(inputs, "scriptLocation", default="scriptPath").lower() == "inlinescript":
        script = (step.body.get("inputs") or {}).get("inlineScript", "")
        return run_script_text(run, step, script, shell, cwd, limit, extra)
    path = pick(inputs, "scriptPath")
    if not path:
        raise TaskFailure("AzureCLI@2 with scriptLocation scriptPath needs scriptPath")
    argv = ["bash", path] if shell == "bash" else ["pwsh", "-NoProfile", "-File", path]
    return run_file(run, step, [*argv, *_split(pick(inputs, "arguments", "scriptArguments"))], cwd, limit, extra)


# ---- dispatch ------------------------------------------------------------------------------------------------

Handler = Callable[[Step, Any, float], "tuple[int | None, str]"]
TASKS: dict[str, Handler] = {
    "bash@3": _bash_task,
    "cmdline@2": _cmdline_task,
    "pythonscript@0": _python_task,
    "azurecli@2": _azure_cli,
    "usepythonversion@0": stand_ins.use_python_version,
    "cache@2": stand_ins.cache,
    "publishtestresults@2": stand_ins.publish_test_results,
    "publishpipelineartifact@1": stand_ins.publish_artifact,
    "downloadpipelineartifact@2": stand_ins.download_artifact,
    "universalpackages@0": stand_ins.universal_packages,
}


def supported_tasks() -> list[str]:
    names = {
        "bash@3": "Bash@3",
        "cmdline@2": "CmdLine@2",
        "pythonscript@0": "PythonScript@0",
        "azurecli@2": "AzureCLI@2",
        "usepythonversion@0": "UsePythonVersion@0",
        "cache@2": "Cache@2",
        "publishtestresults@2": "PublishTestResults@2",
        "publishpipelineartifact@1": "PublishPipelineArtifact@1",
        "downloadpipelineartifact@2": "DownloadPipelineArtifact@2",
        "universalpackages@0": "UniversalPackages@0",
    }
    return [names[key] for key in TASKS]


def check(step: Step) -> None:
    """Refuse, before anything runs, a task the runner has no stand-in for."""
    if step.kind == "task" and step.task not in TASKS:
        raise unsupported(
            step.body["task"],
            f"task {step.body['task']}",
            hint=f"supported tasks: {', '.join(supported_tasks())}",
        )


def run(step: Step, job_run: Any, limit: float) -> tuple[int | None, str]:
    """Run one step; (exit code, None if it ran past `limit` seconds; result)."""
    if step.kind in ("script", "bash", "pwsh"):
        cwd = working_directory(job_run, step.body.get("workingDirectory"))
        shell = "pwsh" if step.kind == "pwsh" else "bash"
        return run_script_text(job_run, step, str(step.body[step.kind]), shell, cwd, limit)
    if step.kind == "checkout":
        return stand_ins.checkout(step, job_run)
    if step.kind == "download":
        return stand_ins.download_shortcut(step, job_run)
    if step.kind == "publish":
        return stand_ins.publish_shortcut(step, job_run)
    return TASKS[step.task](step, job_run, limit)
