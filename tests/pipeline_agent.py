"""Just enough of the Azure Pipelines agent to run the bash steps of our templates on this machine.

Shared by tests/test_ci_pipeline_steps.py and tests/test_cd_pipeline_steps.py:

* `expand_parameters`: ``${{ parameters.NAME }}`` replaced by the template's parameter values;
* `expand_macros`: ``$(NAME)`` replaced by pipeline variables the way the agent does (unknown names stay
  literal, as on the agent);
* `agent_venv`: a virtualenv that sees exactly the packages the test interpreter sees, so a step installing
  packages does not touch the test interpreter;
* `Agent`: pipeline variables (plain and secret), the environment a step gets (plain variables exported
  upper-cased with ``.`` -> ``_``, secrets only through the step's ``env:``), ``##vso[task.setvariable]``
  lines of a step's output applied to later steps, and step ``condition:`` expressions
  (``and/or/not/eq/ne/coalesce/succeeded/succeededOrFailed/always/failed`` over ``variables['name']``) evaluated like the agent.
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

_PARAMETER = re.compile(r"\$\{\{\s*parameters\.(\w+)\s*\}\}")
_MACRO = re.compile(r"\$\(([\w.\-]+)\)")


def expand_parameters(text: str, parameters: dict[str, str]) -> str:
    return _PARAMETER.sub(lambda m: str(parameters[m.group(1)]), text)


def expand_macros(text: str, variables: dict[str, str]) -> str:
    """``$(name)`` -> value for known variables (case-insensitive, like the agent); others stay literal."""
    folded = {key.lower(): value for key, value in variables.items()}
    return _MACRO.sub(lambda m: folded.get(m.group(1).lower(), m.group(0)), text)


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
        """Evaluate a step condition (default ``succeeded()``)."""
        tokens = re.findall(r"'(?:[^']|'')*'|[\w.]+|[()\[\],]", expression or "succeeded()")
        value, rest = self._expression(tokens)
        assert not rest, f"cannot read condition {expression!r}"
        return bool(value)

    def _expression(self, tokens: list[str]):
        head, rest = tokens[0], tokens[1:]
        if head.startswith("'"):
            return head[1:-1].replace("''", "'"), rest
        if head == "variables":
            assert rest[0] == "[" and rest[2] == "]", tokens
            name = rest[1][1:-1]
            return self.variables.get(name, self.secrets.get(name)), rest[3:]
        assert rest and rest[0] == "(", f"unexpected {head!r}"
        rest, args = rest[1:], []
        while rest[0] != ")":
            value, rest = self._expression(rest)
            args.append(value)
            if rest[0] == ",":
                rest = rest[1:]
        rest = rest[1:]
        functions = {
            "succeeded": lambda: not self.failed,
            "always": lambda: True,
            "succeededorfailed": lambda: True,  # no cancellation here: a step ran either way
            "failed": lambda: self.failed,
            "and": lambda *a: all(a),
            "or": lambda *a: any(a),
            "not": lambda a: not a,
            "eq": lambda a, b: _equal(a, b),
            "ne": lambda a, b: not _equal(a, b),
            "coalesce": lambda *a: next((v for v in a if v not in (None, "")), None),
        }
        return functions[head.lower()](*args), rest


def _equal(left, right) -> bool:
    """eq(): the right value is cast to the left one's type (null <-> '' only), strings compare ignoring case."""
    if left is None:
        return right in (None, "")
    return str(left).lower() == ("" if right is None else str(right)).lower()
