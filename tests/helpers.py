"""Helpers shared by the tests: paths, a clean environment, and running a script the way a pipeline does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "ci_cd_scripts"
DATA = ROOT / "tests" / "data"  # reference files the tests read (tests/data/README.md says where each comes from)

# Variables that change how the scripts behave; tests start without them and set what they need.
_AMBIENT_PREFIXES = ("TF_BUILD", "DATABRICKS_", "BUNDLE_VAR_", "AZURE_", "ARM_", "SYSTEM_", "REQUESTS_CA_BUNDLE")


def script_env(**overrides: str | None) -> dict[str, str]:
    """The current environment without pipeline/Databricks/Azure variables, plus `overrides` (None removes)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(_AMBIENT_PREFIXES)}
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def run_script(
    name: str,
    *args: str | os.PathLike[str],
    env: dict[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    input: str | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """Run ``python ci_cd_scripts/<name> ARGS...`` as a subprocess and capture its output as text."""
    script = SCRIPTS / name
    return subprocess.run(
        [sys.executable, str(script), *map(str, args)],
        env=env if env is not None else script_env(),
        cwd=cwd,
        input=input,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int = 2, contains: str = "") -> str:
    """Assert the process failed with `code` and a single ``error: ...`` line on stderr; return that line."""
    assert result.returncode == code, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, f"expected one 'error: ' line, got stderr:\n{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    assert contains in errors[0], f"{contains!r} not in {errors[0]!r}"
    return errors[0]


def process_alive(pid: int) -> bool:
    """True while pid runs (a zombie waiting to be reaped counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")
