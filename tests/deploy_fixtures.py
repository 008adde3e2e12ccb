"""Fixtures and helpers for the deploy_notebooks / upload_files tests: a local workspace with a known token,
the environment a pipeline step gets, request-log queries and sample source trees."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import script_env

KNOWN_TOKEN = "dapi-deploy-KNOWN-7f3c9a1e5b2d4c6f8a0b"
WRITE_METHODS = ("POST", "PUT", "DELETE", "PATCH")
PY_HEADER = "# Databricks notebook source\n"
# Scripts run here so that a config.json in the repo root does not supply defaults.
NO_CONFIG = Path(tempfile.mkdtemp(prefix="deploy-tests-cwd-"))


@pytest.fixture
def deploy_workspace() -> Iterator:
    """A fresh local workspace (no latency, no clusters) that accepts `KNOWN_TOKEN`."""
    from local_cloud.workspace.server import LocalWorkspace

    with LocalWorkspace(token=KNOWN_TOKEN, time_scale=0, clusters=[], seed=11) as workspace:
        yield workspace


@pytest.fixture
def deploy_env(deploy_workspace, tmp_path: Path) -> dict[str, str]:
    """The environment of a CD step pointed at the local workspace (summary files under tmp_path)."""
    return script_env(
        DATABRICKS_HOST=deploy_workspace.url,
        DATABRICKS_TOKEN=KNOWN_TOKEN,
        CICD_SUMMARY_DIR=str(tmp_path / "summary"),
    )


def reset_log(workspace) -> None:
    """Start counting requests from now (the local workspace logs every request before answering it)."""
    workspace.clear_log()


def api_requests(workspace) -> list:
    return [record for record in workspace.requests if _field(record, "path").startswith("/api/")]


def write_requests(workspace) -> list:
    """Requests that could change the workspace (anything but GET/HEAD)."""
    return [record for record in api_requests(workspace) if _field(record, "method") in WRITE_METHODS]


def count(workspace, method: str, path_suffix: str) -> int:
    return sum(
        1
        for record in api_requests(workspace)
        if _field(record, "method") == method and _field(record, "path").endswith(path_suffix)
    )


def _field(record, name: str):
    return record[name] if isinstance(record, dict) else getattr(record, name)


def set_faults(workspace, spec: str) -> None:
    """Replace the fault rules of a running local workspace ('' clears them)."""
    workspace.set_faults(spec or None)


def sdk(workspace):
    """A databricks-sdk WorkspaceClient on the local workspace (what a user or the UI stand-in uses)."""
    from databricks.sdk import WorkspaceClient

    return WorkspaceClient(host=workspace.url, token=KNOWN_TOKEN, auth_type="pat")


def write_notebook(root: Path, relative: str, body: str = "print('hello')\n", header: str = PY_HEADER) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + body, encoding="utf-8")
    return path


def make_notebooks(root: Path, count_: int, folders: int) -> dict[str, Path]:
    """`count_` Python notebooks spread over `folders` folders; returns workspace-relative path -> source."""
    made = {}
    for index in range(count_):
        relative = f"folder_{index % folders:03d}/notebook_{index:04d}"
        made[relative] = write_notebook(root, relative + ".py", f"# cell {index}\nvalue = {index}\nprint(value)\n")
    return made


def manifest_of(workspace, workspace_dir: str) -> dict:
    content = sdk(workspace).workspace.download(f"{workspace_dir}/.deploy-manifest.json").read()
    return json.loads(content)
