"""The local workspace's lookup families (local_cloud/workspace/lookups.py) driven by the real databricks-sdk: each
object is created and listed with the SDK call a user makes, and the SDK reads back what the service answers
(ids, names, paging). Every request must reach an endpoint the local workspace serves."""

from __future__ import annotations

from databricks.sdk import WorkspaceClient
from databricks.sdk.core import Config
from databricks.sdk.service import compute, settings, sql
from test_local_workspace_sdk import assert_every_request_served
from workspace_fixtures import WORKSPACE_TOKEN

from local_cloud.workspace import server as lw


def test_cluster_policies_and_instance_pools(workspace_client, local_workspace):
    created = workspace_client.cluster_policies.create(name="small", definition="{}")
    workspace_client.cluster_policies.create(name="large", definition="{}")
    policies = {policy.name: policy.policy_id for policy in workspace_client.cluster_policies.list()}
    assert policies["small"] == created.policy_id and set(policies) == {"small", "large"}
    pool = workspace_client.instance_pools.create(instance_pool_name="pool", node_type_id="Standard_DS3_v2")
    assert [(p.instance_pool_name, p.instance_pool_id) for p in workspace_client.instance_pools.list()] == [
        ("pool", pool.instance_pool_id)
    ]
    assert_every_request_served(local_workspace)


def test_warehouses_page_through_next_page_token(workspace_client, local_workspace):
    ids = [
        workspace_client.warehouses.create(name=f"wh{index}", cluster_size="2X-Small").response.id for index in range(3)
    ]
    listed = list(workspace_client.warehouses.list(page_size=2))
    assert [w.id for w in listed] == ids and [w.name for w in listed] == ["wh0", "wh1", "wh2"]
    pages = [r for r in local_workspace.requests if r.path == "/api/2.0/sql/warehouses" and r.method == "GET"]
    assert len(pages) == 2


def test_service_principals_filter_by_display_name(workspace_client):
    first = workspace_client.service_principals.create(display_name="deployer")
    workspace_client.service_principals.create(display_name="reader")
    found = list(workspace_client.service_principals.list(filter="displayName eq 'deployer'"))
    assert [(sp.display_name, sp.application_id) for sp in found] == [("deployer", first.application_id)]
    assert list(workspace_client.service_principals.list(filter="displayName eq 'nobody'")) == []
    assert len(list(workspace_client.service_principals.list())) == 2


def test_metastores_pipelines_queries_alerts_dashboards_destinations(workspace_client):
    metastore = workspace_client.metastores.create(name="main")
    assert [(m.name, m.metastore_id) for m in workspace_client.metastores.list()] == [("main", metastore.metastore_id)]
    pipeline = workspace_client.pipelines.create(name="ingest", allow_duplicate_names=True)
    assert [(p.name, p.pipeline_id) for p in workspace_client.pipelines.list_pipelines()] == [
        ("ingest", pipeline.pipeline_id)
    ]
    query = workspace_client.queries.create(query=sql.CreateQueryRequestQuery(display_name="q", query_text="select 1"))
    assert [(q.display_name, q.id) for q in workspace_client.queries.list()] == [("q", query.id)]
    alert = workspace_client.alerts.create(alert=sql.CreateAlertRequestAlert(display_name="a", query_id=query.id))
    assert [(a.display_name, a.id) for a in workspace_client.alerts.list()] == [("a", alert.id)]
    # The SDK no longer creates legacy dashboards (only lists them): the REST call it would make.
    created = [
        workspace_client.api_client.do("POST", "/api/2.0/preview/sql/dashboards", body={"name": n}) for n in "de"
    ]
    listed = list(workspace_client.dashboards.list(page_size=1))  # pages 1, 2, then an empty page 3
    assert [(d.name, d.id) for d in listed] == [("d", created[0]["id"]), ("e", created[1]["id"])]
    destination = workspace_client.notification_destinations.create(
        display_name="pager", config=settings.Config(generic_webhook=settings.GenericWebhookConfig(url="https://x"))
    )
    assert [(d.display_name, d.id) for d in workspace_client.notification_destinations.list()] == [
        ("pager", destination.id)
    ]


def test_clusters_list_names_each_cluster(workspace_client):
    created = workspace_client.clusters.create(
        cluster_name="shared-autoscaling", spark_version="15.4.x-scala2.12", autoscale=compute.AutoScale(1, 2)
    ).response
    names = {c.cluster_name: c.cluster_id for c in workspace_client.clusters.list()}
    assert names["shared-autoscaling"] == created.cluster_id


def test_the_objects_persist_with_the_state_dir(tmp_path):
    state = tmp_path / "state"

    def client(workspace) -> WorkspaceClient:
        return WorkspaceClient(config=Config(host=workspace.url, token=WORKSPACE_TOKEN, auth_type="pat"))

    with lw.LocalWorkspace(token=WORKSPACE_TOKEN, state_dir=state, time_scale=0) as workspace:
        policy = client(workspace).cluster_policies.create(name="kept", definition="{}").policy_id
    with lw.LocalWorkspace(token=WORKSPACE_TOKEN, state_dir=state, time_scale=0) as workspace:
        assert [(p.name, p.policy_id) for p in client(workspace).cluster_policies.list()] == [("kept", policy)]
