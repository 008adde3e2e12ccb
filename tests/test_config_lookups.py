"""``lookup`` variables resolved through the local workspace (cicdkit/config_lookups.py, dbclient.Listings): every
lookup kind with zero, one and two objects of that name, and validate_config.py with and without credentials."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import run_script, script_env
from workspace_fixtures import WORKSPACE_TOKEN

from cicdkit import config, config_lookups, dbclient
from cicdkit.errors import ConfigError

# kind: (how to create one named NAME through the REST API, the id field in the answer)
CREATE = {
    "cluster": ("/api/2.0/clusters/create", lambda n: {"cluster_name": n, "spark_version": "15.4.x-scala2.12"}, "cluster_id"),
    "cluster_policy": ("/api/2.0/policies/clusters/create", lambda n: {"name": n, "definition": "{}"}, "policy_id"),
    "instance_pool": ("/api/2.0/instance-pools/create", lambda n: {"instance_pool_name": n, "node_type_id": "x"}, "instance_pool_id"),
    "job": ("/api/2.1/jobs/create", lambda n: {"name": n, "tasks": [{"task_key": "t", "notebook_task": {"notebook_path": "/x"}}]}, "job_id"),
    "metastore": ("/api/2.1/unity-catalog/metastores", lambda n: {"name": n}, "metastore_id"),
    "notification_destination": ("/api/2.0/notification-destinations", lambda n: {"display_name": n, "config": {}}, "id"),
    "pipeline": ("/api/2.0/pipelines", lambda n: {"name": n}, "pipeline_id"),
    "query": ("/api/2.0/sql/queries", lambda n: {"query": {"display_name": n, "query_text": "select 1"}}, "id"),
    "alert": ("/api/2.0/sql/alerts", lambda n: {"alert": {"display_name": n}}, "id"),
    "dashboard": ("/api/2.0/preview/sql/dashboards", lambda n: {"name": n}, "id"),
    "service_principal": ("/api/2.0/preview/scim/v2/ServicePrincipals", lambda n: {"displayName": n}, "applicationId"),
    "warehouse": ("/api/2.0/sql/warehouses", lambda n: {"name": n}, "id"),
}  # fmt: skip
NO_MATCH = {
    "cluster": "cluster named 'target' does not exist",
    "service_principal": 'service principal named "target" does not exist',
    "dashboard": "dashboard name 'target' does not exist",
    "warehouse": "EndpointInfo named 'target' does not exist",
}
SEVERAL = {
    "cluster": "there are 2 instances of clusters named 'target'",
    "service_principal": 'multiple service principals found with display name "target"',
    "job": "there are 2 instances of BaseJob named 'target'",
    "metastore": 'there are 2 instances of metastores named "target"',
}


def client_for(workspace) -> dbclient.Client:
    return dbclient.connect(host=workspace.url, auth=dbclient.PatAuth(WORKSPACE_TOKEN))


def create(client: dbclient.Client, kind: str, name: str) -> str:
    path, body, id_field = CREATE[kind]
    return str(client.post(path, body(name))[id_field])


def write(folder: Path, kind: str) -> Path:
    document = {
        "bundle": {"name": "b"},
        "variables": {"thing": {"lookup": {kind: "target"}}, "other": {"default": "x"}},
        "resources": {"jobs": {"j": {"name": "j", "description": "id ${var.thing}"}}},
    }
    (folder / "config.json").write_text(json.dumps(document), encoding="utf-8")
    return folder


@pytest.mark.parametrize("kind", sorted(CREATE))
def test_each_lookup_kind_with_zero_one_and_two_matches(kind, local_workspace, tmp_path):
    client = client_for(local_workspace)
    create(client, kind, "another")
    folder = write(tmp_path, kind)

    def load():
        return config.load(
            folder,
            current_user="u@example.com",
            environ={},
            lookups=lambda host, pairs: config_lookups.resolve(client, pairs),
        )

    with pytest.raises(ConfigError) as none:
        load()
    assert none.value.message.startswith(f"failed to resolve {kind.replace('_', '-')}: target, err: ")
    assert "does not exist" in none.value.message and NO_MATCH.get(kind, "") in none.value.message
    wanted = create(client, kind, "target")
    loaded = load()
    assert loaded.tree["variables"]["thing"]["value"] == wanted
    assert loaded.tree["resources"]["jobs"]["j"]["description"] == f"id {wanted}"
    create(client, kind, "target")
    with pytest.raises(ConfigError) as two:
        load()
    assert SEVERAL.get(kind, "instances of") in two.value.message or "multiple" in two.value.message


def test_validate_config_resolves_a_cluster_lookup_with_credentials(local_workspace, tmp_path):
    client = client_for(local_workspace)
    cluster_id = create(client, "cluster", "shared-autoscaling")
    document = {
        "bundle": {"name": "b"},
        "workspace": {"host": local_workspace.url},
        "variables": {"cluster": {"lookup": {"cluster": "shared-autoscaling"}}, "pool": {"lookup": {"warehouse": "w"}}},
    }
    create(client, "warehouse", "w")
    (tmp_path / "config.json").write_text(json.dumps(document), encoding="utf-8")
    env = script_env(DATABRICKS_TOKEN=WORKSPACE_TOKEN)
    result = run_script("validate_config.py", "--config", tmp_path, "--output", "json", "--strict", env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["variables"]["cluster"]["value"] == cluster_id
    assert WORKSPACE_TOKEN not in result.stdout + result.stderr
    lists = [
        r.path
        for r in local_workspace.requests
        if r.method == "GET" and r.path.endswith(("clusters/list", "sql/warehouses"))
    ]
    assert sorted(lists) == ["/api/2.0/sql/warehouses", "/api/2.1/clusters/list"]  # one call per lookup kind


def test_validate_config_without_credentials_names_the_unresolved_lookups(tmp_path):
    document = {"bundle": {"name": "b"}, "variables": {"cluster": {"lookup": {"cluster": "shared-autoscaling"}}}}
    (tmp_path / "config.json").write_text(json.dumps(document), encoding="utf-8")
    env = script_env(DATABRICKS_TOKEN=None, DATABRICKS_AUTH_TYPE=None)
    result = run_script("validate_config.py", "--config", tmp_path, "--current-user", "u@example.com", env=env)
    assert result.returncode == 0, result.stderr
    assert "lookup variable cluster (cluster: shared-autoscaling) is not resolved" in result.stderr
    strict = run_script("validate_config.py", "--config", tmp_path, "--current-user", "u@x.com", "--strict", env=env)
    assert strict.returncode == 2 and "1 warning was found" in strict.stderr
