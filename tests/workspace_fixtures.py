"""Fixtures for tests that need a Databricks workspace: the local workspace emulator, started per test.

`local_workspace` yields a started `LocalWorkspace` (ci_cd_scripts/local_workspace.py) with token
`WORKSPACE_TOKEN`, time compressed 50x and the two seed clusters: `RUNNING_CLUSTER` (RUNNING, DBR 15.4,
single user) and `TERMINATED_CLUSTER` (TERMINATED, DBR 14.3, so legacy dbfs:/ wheels still install).
`workspace_client` is a databricks-sdk WorkspaceClient pointed at it. `make_wheel` builds a small
pure-Python wheel by hand (a wheel is a zip with a .dist-info folder).
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from helpers import SCRIPTS

WORKSPACE_TOKEN = "dapi-local-test-token-0123456789"
RUNNING_CLUSTER = "0101-000000-local001"
TERMINATED_CLUSTER = "0101-000000-local002"
TIME_SCALE = 0.02

__all__ = [
    "WORKSPACE_TOKEN",
    "RUNNING_CLUSTER",
    "TERMINATED_CLUSTER",
    "TIME_SCALE",
    "make_wheel",
    "local_workspace",
    "workspace_client",
]


def _load_local_workspace():
    import sys

    if str(SCRIPTS) not in sys.path:
        sys.path.append(str(SCRIPTS))
    from local_cloud.workspace import server as local_workspace

    return local_workspace


def make_wheel(
    name: str, version: str = "1.0", modules: dict[str, str] | None = None, entry_points: str = ""
) -> tuple[str, bytes]:
    """A pure-Python wheel as (file name, bytes); `modules` maps paths inside the wheel to source text."""
    dist = f"{name}-{version}.dist-info"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, text in (modules or {f"{name}/__init__.py": f"VERSION = {version!r}\n"}).items():
            archive.writestr(path, text)
        archive.writestr(f"{dist}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        archive.writestr(
            f"{dist}/WHEEL", "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        if entry_points:
            archive.writestr(f"{dist}/entry_points.txt", entry_points)
        archive.writestr(f"{dist}/RECORD", "")
    return f"{name}-{version}-py3-none-any.whl", buffer.getvalue()


@pytest.fixture
def local_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A started local workspace (fresh per test); stopped and cleaned up afterwards."""
    for key in list(__import__("os").environ):
        if key.startswith("DATABRICKS_"):
            monkeypatch.delenv(key, raising=False)
    module = _load_local_workspace()
    with module.LocalWorkspace(token=WORKSPACE_TOKEN, time_scale=TIME_SCALE, run_timeout=120) as workspace:
        yield workspace


@pytest.fixture
def workspace_client(local_workspace):
    """databricks-sdk WorkspaceClient for `local_workspace` (PAT auth, no config file, no retries beyond 60 s)."""
    from databricks.sdk import WorkspaceClient
    from databricks.sdk.core import Config

    return WorkspaceClient(
        config=Config(host=local_workspace.url, token=WORKSPACE_TOKEN, auth_type="pat", retry_timeout_seconds=60)
    )
