"""Fixtures for the deploy_jobs / run_job / destroy tests: a local workspace, a bundle config in a temporary
folder with its notebooks deployed, and helpers to run the steps and count their writes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from deploy_fixtures import KNOWN_TOKEN, sdk, write_requests
from helpers import run_script, script_env

NOTEBOOKS = "/Workspace/Shared/app/{target}/notebooks"
LIBRARIES = "/Workspace/Shared/app/{target}/libraries"
INIT = "/Workspace/Shared/app/{target}/init.sh"
CLUSTER = "0101-000000-jobs0001"
HEADER = b"# Databricks notebook source\n"
__all__ = ["jobs_env"]


def job(path: str = "etl/load", **extra) -> dict:
    """A job with one notebook task on a job cluster."""
    spec = {
        "name": extra.pop("name", "load (${bundle.target})"),
        "job_clusters": [{"job_cluster_key": "main", "new_cluster": {"spark_version": "15.4.x-scala2.12"}}],
        "tasks": [
            {
                "task_key": "main",
                "job_cluster_key": "main",
                "notebook_task": {"notebook_path": "${var.notebooks}/" + path},
            }
        ],
    }
    spec.update(extra)
    return spec


def bundle(jobs: dict, **top) -> dict:
    """A config with targets `local` (default), `dev` (development mode) and `prod` (production mode)."""
    deploy = {
        "notebooks_path": "${var.notebooks}",
        "libraries_path": "/Workspace/Shared/app/${bundle.target}/libraries",
        "init_script_path": "/Workspace/Shared/app/${bundle.target}/init.sh",
        "clusters": [CLUSTER],
    }
    config = {
        "bundle": {"name": "app"},
        "variables": {"notebooks": {"default": "/Workspace/Shared/app/${bundle.target}/notebooks"}},
        "deploy": deploy,
        "resources": {"jobs": jobs},
        "targets": {
            "local": {"default": True},
            "dev": {"mode": "development"},
            "prod": {"mode": "production", "workspace": {"root_path": "/Workspace/Shared/.bundle/app/prod"}},
        },
    }
    config.update(top)
    return config


class Jobs:
    """One test's bundle folder, local workspace and step runner."""

    def __init__(self, workspace, folder: Path, env: dict[str, str]):
        self.workspace = workspace
        self.folder = folder
        self.env = env
        self.client = sdk(workspace)

    def write(self, config: dict) -> None:
        (self.folder / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")

    def notebook(self, relative: str, source: str = "print('hello')\n", target: str = "local") -> str:
        from databricks.sdk.service.workspace import ImportFormat, Language

        path = NOTEBOOKS.format(target=target) + "/" + relative
        self.client.workspace.mkdirs(path.rsplit("/", 1)[0])
        self.client.workspace.upload(
            path, HEADER + source.encode(), format=ImportFormat.SOURCE, language=Language.PYTHON, overwrite=True
        )
        return path

    def run(self, script: str, *args: str, timeout: float = 180):
        return run_script(script, *args, env=self.env, cwd=self.folder, timeout=timeout)

    def deploy(self, *args: str):
        return self.run("deploy_jobs.py", *args)

    def writes(self) -> list[str]:
        return [f"{r.method} {r.path}" for r in write_requests(self.workspace)]

    def ours(self, target: str = "local") -> dict[str, dict]:
        """This bundle's jobs in the workspace by key (read with the SDK, full settings)."""
        found = {}
        for listed in self.client.jobs.list():
            tags = listed.settings.tags or {}
            if tags.get("cicd-bundle") == "app" and tags.get("cicd-target") == target:
                found[tags["cicd-job-key"]] = self.client.jobs.get(listed.job_id).as_dict()
        return found


@pytest.fixture
def jobs_env(tmp_path: Path) -> Iterator[Jobs]:
    from local_cloud.workspace.server import LocalWorkspace

    cluster = {"cluster_id": CLUSTER, "cluster_name": "jobs", "spark_version": "15.4.x-scala2.12", "state": "RUNNING"}
    with LocalWorkspace(token=KNOWN_TOKEN, time_scale=0, clusters=[cluster], run_timeout=60) as workspace:
        folder = tmp_path / "bundle"
        folder.mkdir()
        env = script_env(
            DATABRICKS_HOST=workspace.url, DATABRICKS_TOKEN=KNOWN_TOKEN, CICD_SUMMARY_DIR=str(tmp_path / "summary")
        )
        yield Jobs(workspace, folder, env)


def ok(result) -> None:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert KNOWN_TOKEN not in result.stdout + result.stderr
