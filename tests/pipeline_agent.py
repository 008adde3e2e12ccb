"""Just enough of the Azure Pipelines agent to run the bash steps of our templates on this machine.

Shared by tests/test_ci_pipeline_steps.py and tests/test_cd_pipeline_steps.py:

* `expand_parameters`: ``${{ parameters.NAME }}`` replaced by the template's parameter values;
* `expand_macros`: ``$(NAME)`` replaced by pipeline variables the way the agent does (unknown names stay
  literal, as on the agent);
* `agent_venv`: a virtualenv that sees exactly the packages the test interpreter sees, so a step installing
  packages does not touch the test interpreter;
* `Agent`: pipeline variables (plain and secret), the environment a step gets (plain variables exported
  upper-cased with ``.`` -> ``_``, secrets only through the step's ``env:``), ``##vso[task.setvariable]``
  lines of a step's output applied to later steps, and step ``condition:`` expressions evaluated with the local
  pipeline runner's expression language (local_cloud/pipeline/expressions.py).
"""

from __future__ import annotations

import os
import re
import site
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from agent_decoder import parse_output
from helpers import script_env

from local_cloud.pipeline.expressions import Context, truthy
from local_cloud.pipeline.variables import Variables

_PARAMETER = re.compile(r"\$\{\{\s*parameters\.(\w+)\s*\}\}")
_MACRO = re.compile(r"\$\(([\w.\-]+)\)")


def expand_parameters(text: str, parameters: dict[str, str]) -> str:
    return _PARAMETER.sub(lambda m: str(parameters[m.group(1)]), text)


def expand_macros(text: str, variables: dict[str, str]) -> str:
    """``$(name)`` -> value for known variables (case-insensitive, like the agent); others stay literal."""
    known = Variables()
    for name, value in variables.items():
        known.set(name, value)
    return known.expand(text)


def agent_venv(tmp_path: Path) -> Path:
    """A virtualenv standing in for UsePythonVersion's Python: it sees the test interpreter's packages, installs apart.

    The agent's Python has the packages a pipeline installed before the step; here those are the test interpreter's,
    wherever they live (a fresh venv, the base interpreter, a user site). A .pth file in the virtualenv's own
    site-packages adds each of the test interpreter's site directories after it (``site.addsitedir``, so their own
    .pth files, e.g. editable installs, apply too). pip run by this Python installs into the virtualenv's
    site-packages, which comes first on sys.path, and never uninstalls what lies outside it.
    """
    venv = tmp_path / "agent python"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    own = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    lines = [f"import site; site.addsitedir({ascii(directory)})\n" for directory in _site_directories()]
    (Path(own) / "_test_interpreter_site.pth").write_text("".join(lines), encoding="ascii")
    return venv


def _site_directories() -> list[str]:
    """Where the test interpreter finds its installed packages, in its own order."""
    directories = list(site.getsitepackages())
    if site.ENABLE_USER_SITE:
        directories.append(site.getusersitepackages())
    return [directory for directory in dict.fromkeys(directories) if os.path.isdir(directory)]


def env_name(variable: str) -> str:
    return re.sub(r"[. ]", "_", variable).upper()


@dataclass
class Agent:
    """Pipeline variables and the step runner of one job."""

    venv: Path
    variables: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    failed: bool = False

    def macros(self) -> dict[str, str]:
        return {**self.variables, **self.secrets}

    def step_env(self, mapping: dict[str, str] | None) -> dict[str, str]:
        env = script_env(PATH=f"{self.venv / 'bin'}{os.pathsep}{os.environ['PATH']}", PIP_NO_INDEX="1", TF_BUILD="True")
        for name, value in self.variables.items():  # plain variables are exported; secrets are not
            env[env_name(name)] = value
        for key, value in (mapping or {}).items():
            expanded = expand_macros(str(value), self.macros())
            assert not _MACRO.search(expanded), f"unknown macro in env {key}: {value}"
            env[key] = expanded
        return env

    def run_bash(
        self, script: str, env: dict[str, str] | None = None, cwd: str | Path | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """Run one bash step (script macros expanded) and apply the variables it sets."""
        script = expand_macros(script, self.macros())
        cwd = expand_macros(str(cwd), self.macros()) if cwd is not None else None
        result = subprocess.run(
            ["bash", "--noprofile", "--norc", "-c", script],
            cwd=cwd,
            env=self.step_env(env),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        for command in parse_output(result.stdout):
            if (command.area, command.event) == ("task", "setvariable") and "variable" in command.properties:
                target = self.secrets if command.properties.get("issecret", "").lower() == "true" else self.variables
                target[command.properties["variable"]] = command.data
        if result.returncode != 0:
            self.failed = True
        return result

    # ---- conditions ---------------------------------------------------------------------------------------

    def condition(self, expression: str | None) -> bool:
        """Evaluate a step condition (default ``succeeded()``) with the local runner's expression language."""

        def status(name: str, args: list) -> bool:
            assert not args, f"{name}() with arguments is not a step status"
            if name == "failed":
                return self.failed
            if name == "succeeded":
                return not self.failed
            return True  # always(), succeededOrFailed(); canceled() never happens here

        context = Context({"variables": {**self.secrets, **self.variables}}, status)
        return truthy(context.evaluate(expression or "succeeded()"))


_DIRECTIVE = re.compile(r"^\$\{\{\s*(if|elseif|else)\b(.*?)\}\}$", re.S)


def chosen_items(items: list, parameters: dict[str, object]) -> list:
    """A template's list with its ``${{ if }}`` / ``${{ elseif }}`` / ``${{ else }}`` items resolved for
    `parameters`, the way the service compiles them (the expressions are the product's evaluator); other
    items are kept as they are."""
    context = Context({"parameters": parameters})
    chosen: list = []
    taken: bool | None = None  # None: not inside an if/elseif/else chain
    for item in items:
        key = next(iter(item)) if isinstance(item, dict) and len(item) == 1 else None
        directive = _DIRECTIVE.match(key.strip()) if isinstance(key, str) else None
        if directive is None:
            chosen.append(item)
            taken = None
            continue
        kind, condition = directive.group(1), directive.group(2).strip()
        if kind == "if":
            taken = False
        assert taken is not None, f"{kind} without an if: {key}"
        if not taken and (kind == "else" or truthy(context.evaluate(condition))):
            chosen += chosen_items(item[key], parameters)
            taken = True
    return chosen
