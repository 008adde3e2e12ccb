"""What the step kinds and task stand-ins share: the failure type, reading inputs, folders and copies."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

from .plan import Step


class TaskFailure(Exception):
    """The step failed for a reason the runner found itself (a missing input, no such file)."""


def task_inputs(step: Step, run: Any) -> dict[str, str]:
    """The task's inputs, macros expanded, keys lower-cased (input names ignore case)."""
    inputs = step.body.get("inputs") or {}
    return {str(key).lower(): run.variables.expand(value) for key, value in inputs.items()}


def pick(inputs: dict[str, str], *names: str, default: str = "") -> str:
    """The first of `names` (an input and its aliases) that has a value, else `default`."""
    for name in names:
        if inputs.get(name.lower(), "") != "":
            return inputs[name.lower()]
    return default


def flag(inputs: dict[str, str], name: str, default: bool) -> bool:
    value = inputs.get(name.lower(), "")
    return default if value == "" else value.strip().lower() in ("true", "yes", "y", "on")


def working_directory(run: Any, value: str | None) -> Path:
    folder = Path(run.variables.expand(value)) if value not in (None, "") else run.dirs["sources"]
    if not folder.is_dir():
        raise TaskFailure(f"the working directory {folder} does not exist")
    return folder


def copy_tree(source: Path, target: Path) -> None:
    """`source` (a folder's content, or one file) into the folder `target`."""
    if source.is_dir():
        shutil.copytree(source, target, dirs_exist_ok=True, symlinks=True)
    else:
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target / source.name)


def git_files(root: Path) -> list[str] | None:
    """The files git would put in a clean copy of the working tree (tracked and untracked, not ignored)."""
    try:
        result = subprocess.run(
            ["git", "-C", str(root), "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            capture_output=True,
            timeout=120,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None
    return [name for name in result.stdout.decode("utf-8", errors="surrogateescape").split("\0") if name]
