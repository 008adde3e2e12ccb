"""Fixtures for the Databricks client and the cluster-side CD scripts: a local workspace and a client for it.

Registered in conftest.py. `dbx_workspace` is a factory: call it with `LocalWorkspace` keyword arguments (faults,
rate_limits, latency_ms, time_scale, clusters...); every workspace it started is stopped after the test.
"""

from __future__ import annotations

import contextlib

import pytest
from helpers import script_env

from cicdkit import dbclient

DBX_TOKEN = "dapi-known-secret-7f3a9c1e5b"


@pytest.fixture
def dbx():
    """Our Databricks client, ``cicdkit.dbclient``."""
    return dbclient


@pytest.fixture
def dbx_workspace():
    """Factory: ``dbx_workspace(**LocalWorkspace kwargs)`` → a started local workspace accepting `DBX_TOKEN`."""
    from local_cloud.workspace import server as local_workspace

    with contextlib.ExitStack() as stack:

        def start(**kwargs):
            kwargs.setdefault("token", DBX_TOKEN)
            kwargs.setdefault("time_scale", 0.01)
            return stack.enter_context(local_workspace.LocalWorkspace(**kwargs))

        yield start


@pytest.fixture
def dbx_client(dbx):
    """Factory: ``dbx_client(ws, **connect kwargs)`` → a fast-retrying client for that workspace."""
    clients = []

    def make(ws, **kwargs):
        kwargs.setdefault("environ", {"DATABRICKS_TOKEN": DBX_TOKEN})
        kwargs.setdefault("backoff", (0.01, 0.05))
        kwargs.setdefault("poll_seconds", (0.01, 0.05))
        kwargs.setdefault("retry_budget_seconds", 20)
        client = dbx.connect(host=ws.url, **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def dbx_env(ws, **overrides):
    """The environment a CD script needs to reach `ws` with the known token."""
    values = {"DATABRICKS_HOST": ws.url, "DATABRICKS_TOKEN": DBX_TOKEN}
    values.update(overrides)
    return script_env(**values)
