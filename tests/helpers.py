"""Helpers shared by the tests: paths, a clean environment, and running a script the way a pipeline does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
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


def write_hanging_setup(project: Path, pid_file: Path) -> Path:
    """A package whose setup.py records its pid in `pid_file`, then never returns (a build that hangs)."""
    project.mkdir(parents=True, exist_ok=True)
    (project / "setup.py").write_text(
        "import os, threading\n"
        f"open({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
        "threading.Event().wait()  # never returns\n"
    )
    return project


def stop_with_sigterm(
    command: list[str], started: Callable[[], bool], *, env: dict[str, str], cwd: Path | None = None
) -> tuple[int, str, str]:
    """Run a step as a runner does, send it SIGTERM once `started()` holds (checked for 120 s), and return its exit
    code, stdout and stderr; it must end within 60 s of the signal."""
    process = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not started() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.1)
        assert started(), "the step never got to the point the test stops it at"
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    return process.returncode, stdout, stderr
