"""Fixture for running generated cluster init scripts: `stub_pip`, a pip that records its argv."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import script_env

__all__ = ["stub_pip"]

RunInitScript = Callable[..., "tuple[subprocess.CompletedProcess[str], list[list[str]]]"]


@pytest.fixture
def stub_pip(tmp_path: Path) -> RunInitScript:
    """``run(script, exit_code=0)`` runs an init script with bash, ``$DATABRICKS_PIP`` pointing at a stub pip.

    The stub appends its argv (JSON, one call per line) to a log and exits with `exit_code`; `run` returns
    the finished process and the list of recorded pip calls.
    """
    folder = tmp_path / "stub pip bin"
    folder.mkdir()
    log = folder / "calls.jsonl"
    pip = folder / "pip"
    pip.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        "with open(os.environ['STUB_PIP_LOG'], 'a', encoding='utf-8') as log:\n"
        "    log.write(json.dumps(sys.argv[1:]) + '\\n')\n"
        "sys.exit(int(os.environ.get('STUB_PIP_EXIT', '0')))\n",
        encoding="utf-8",
    )
    pip.chmod(0o755)

    def run(script: Path, exit_code: int = 0):
        env = script_env(DATABRICKS_PIP=str(pip), STUB_PIP_LOG=str(log), STUB_PIP_EXIT=str(exit_code))
        result = subprocess.run(
            ["bash", str(script)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
        )
        calls = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()] if log.exists() else []
        log.unlink(missing_ok=True)
        return result, calls

    return run
