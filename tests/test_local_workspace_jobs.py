"""Fidelity of the local workspace's job management through the real databricks-sdk: Jobs 2.2 list with tags and
the name filter, jobs/reset replacing settings wholesale, run-now with an idempotency token and job_parameters,
run_as, run_job_task, tasks on job clusters, and the Permissions API for jobs (README, "Local workspace")."""

from __future__ import annotations

import io
import os

import pytest
from databricks.sdk.errors import InvalidParameterValue, ResourceDoesNotExist
from databricks.sdk.service import jobs
from test_local_workspace_sdk import assert_every_request_served, upload_notebook
from workspace_fixtures import make_wheel

ECHO = "/Shared/tests/echo"


@pytest.fixture(autouse=True)
def every_sdk_request_is_served(local_workspace):
    yield
    assert_every_request_served(local_workspace)


def _job_cluster_task(key: str = "echo", path: str = ECHO, **extra) -> jobs.Task:
    return jobs.Task(task_key=key, job_cluster_key="main", notebook_task=jobs.NotebookTask(notebook_path=path), **extra)


JOB_CLUSTER = jobs.JobCluster(
    job_cluster_key="main",
    new_cluster=jobs.compute.ClusterSpec(spark_version="15.4.x-scala2.12", num_workers=1, spark_env_vars={"E": "x"}),
)


def test_list_keeps_tags_filters_by_name_and_pages_with_expand_tasks_off(workspace_client, local_workspace):
    task = _job_cluster_task()
    ids = [
        workspace_client.jobs.create(name=f"job {i}", tasks=[task], job_clusters=[JOB_CLUSTER], tags={"i": str(i)})
        for i in range(3)
    ]
    local_workspace.clear_log()
    listed = list(workspace_client.jobs.list(limit=2, expand_tasks=False))
    assert [j.job_id for j in listed] == [j.job_id for j in ids]
    assert [j.settings.tags for j in listed] == [{"i": "0"}, {"i": "1"}, {"i": "2"}]
    assert all(not j.settings.tasks and not j.settings.job_clusters for j in listed)  # expand_tasks=false: left out
    assert [r.path for r in local_workspace.api_requests("GET", "*/jobs/list")] == ["/api/2.2/jobs/list"] * 2
    assert [j.job_id for j in workspace_client.jobs.list(name="JOB 1")] == [ids[1].job_id]


def test_reset_replaces_settings_wholesale_and_run_as_is_reported(workspace_client):
    job_id = workspace_client.jobs.create(
        name="a", tasks=[_job_cluster_task()], job_clusters=[JOB_CLUSTER], tags={"old": "1"}, max_concurrent_runs=3
    ).job_id
    assert workspace_client.jobs.get(job_id).run_as_user_name == "local-user@example.com"
    workspace_client.jobs.reset(
        job_id,
        new_settings=jobs.JobSettings(
            name="b",
            tasks=[_job_cluster_task()],
            job_clusters=[JOB_CLUSTER],
            run_as=jobs.JobRunAs(service_principal_name="9f0c0000-0000-0000-0000-000000000001"),
        ),
    )
    job = workspace_client.jobs.get(job_id)
    assert job.settings.name == "b" and job.settings.tags is None and job.settings.max_concurrent_runs == 1
    assert job.run_as_user_name == "9f0c0000-0000-0000-0000-000000000001"
    with pytest.raises(InvalidParameterValue, match="run_as must name exactly one"):
        workspace_client.jobs.reset(
            job_id,
            new_settings=jobs.JobSettings(name="c", run_as=jobs.JobRunAs(user_name="u", service_principal_name="s")),
        )


def test_run_now_with_token_and_job_parameters_on_a_job_cluster(workspace_client, local_workspace):
    upload_notebook(
        workspace_client,
        ECHO,
        "import os, greeter\ndbutils.notebook.exit(dbutils.widgets.get('env') + ' ' + os.environ['E'] + ' ' + greeter.X)\n",
    )
    name, wheel = make_wheel("greeter", modules={"greeter/__init__.py": "X = 'wheel'\n"})
    workspace_client.files.upload(f"/Volumes/main/default/libs/{name}", io.BytesIO(wheel))
    task = _job_cluster_task(libraries=[jobs.compute.Library(whl=f"/Volumes/main/default/libs/{name}")])
    job_id = workspace_client.jobs.create(
        name="p",
        tasks=[task],
        job_clusters=[JOB_CLUSTER],
        parameters=[jobs.JobParameterDefinition(name="env", default="dev")],
    ).job_id
    first = workspace_client.jobs.run_now(job_id, idempotency_token="smoke-1", job_parameters={"env": "prod"})
    again = workspace_client.jobs.run_now(job_id, idempotency_token="smoke-1", job_parameters={"env": "prod"})
    assert first.run_id == again.run_id
    run = first.result()
    assert run.state.result_state == jobs.RunResultState.SUCCESS, run.state
    assert workspace_client.jobs.get_run_output(run.tasks[0].run_id).notebook_output.result == "prod x wheel"
    default = workspace_client.jobs.run_now(job_id).result()
    assert workspace_client.jobs.get_run_output(default.tasks[0].run_id).notebook_output.result == "dev x wheel"


def test_run_job_task_runs_the_referenced_job(workspace_client, local_workspace):
    upload_notebook(workspace_client, ECHO, "dbutils.notebook.exit(dbutils.widgets.get('env'))\n")
    upload_notebook(workspace_client, "/Shared/tests/boom", "raise ValueError('boom')\n")
    child = workspace_client.jobs.create(
        name="child",
        tasks=[_job_cluster_task()],
        job_clusters=[JOB_CLUSTER],
        parameters=[jobs.JobParameterDefinition(name="env", default="dev")],
    ).job_id
    failing = workspace_client.jobs.create(
        name="failing", tasks=[_job_cluster_task(path="/Shared/tests/boom")], job_clusters=[JOB_CLUSTER]
    ).job_id

    def parent(target: int) -> int:
        task = jobs.Task(task_key="call", run_job_task=jobs.RunJobTask(job_id=target, job_parameters={"env": "qa"}))
        return workspace_client.jobs.create(name=f"parent of {target}", tasks=[task]).job_id

    run = workspace_client.jobs.run_now(parent(child)).result()
    assert run.state.result_state == jobs.RunResultState.SUCCESS, run.state
    child_runs = list(workspace_client.jobs.list_runs(job_id=child))
    assert len(child_runs) == 1 and child_runs[0].run_type == jobs.RunType.JOB_RUN
    child_run = workspace_client.jobs.get_run(child_runs[0].run_id)
    assert workspace_client.jobs.get_run_output(child_run.tasks[0].run_id).notebook_output.result == "qa"
    failed = workspace_client.jobs.run_now(parent(failing)).result(callback=None)
    assert failed.state.result_state == jobs.RunResultState.FAILED
    assert "ended FAILED" in (failed.tasks[0].state.state_message or "")


def test_job_permissions_get_set_update_and_one_owner(workspace_client):
    job_id = str(workspace_client.jobs.create(name="perm", tasks=[_job_cluster_task()]).job_id)
    levels = {
        level.permission_level.value for level in workspace_client.jobs.get_permission_levels(job_id).permission_levels
    }
    assert levels == {"CAN_VIEW", "CAN_MANAGE_RUN", "CAN_MANAGE", "IS_OWNER"}

    def direct(perms) -> set:
        return {
            (acl.user_name or acl.group_name or acl.service_principal_name, p.permission_level.value)
            for acl in perms.access_control_list
            for p in acl.all_permissions
            if not p.inherited
        }

    start = workspace_client.jobs.get_permissions(job_id)
    assert start.object_id == f"/jobs/{job_id}" and direct(start) == {("local-user@example.com", "IS_OWNER")}
    assert any(acl.group_name == "admins" and acl.all_permissions[0].inherited for acl in start.access_control_list)
    view = jobs.JobAccessControlRequest(group_name="data-team", permission_level=jobs.JobPermissionLevel.CAN_VIEW)
    after_set = workspace_client.jobs.set_permissions(job_id, access_control_list=[view])
    assert direct(after_set) == {("local-user@example.com", "IS_OWNER"), ("data-team", "CAN_VIEW")}  # owner kept
    run = jobs.JobAccessControlRequest(
        user_name="ops@example.com", permission_level=jobs.JobPermissionLevel.CAN_MANAGE_RUN
    )
    after_update = workspace_client.jobs.update_permissions(job_id, access_control_list=[run])
    assert ("ops@example.com", "CAN_MANAGE_RUN") in direct(after_update) and ("data-team", "CAN_VIEW") in direct(
        after_update
    )
    owner = jobs.JobAccessControlRequest(
        service_principal_name="9f0c0000-0000-0000-0000-000000000001", permission_level=jobs.JobPermissionLevel.IS_OWNER
    )
    after_owner = workspace_client.jobs.set_permissions(job_id, access_control_list=[owner])
    assert direct(after_owner) == {("9f0c0000-0000-0000-0000-000000000001", "IS_OWNER")}
    two = [
        owner,
        jobs.JobAccessControlRequest(user_name="x@example.com", permission_level=jobs.JobPermissionLevel.IS_OWNER),
    ]
    with pytest.raises(InvalidParameterValue, match="exactly one owner"):
        workspace_client.jobs.set_permissions(job_id, access_control_list=two)
    group_owner = jobs.JobAccessControlRequest(group_name="admins", permission_level=jobs.JobPermissionLevel.IS_OWNER)
    with pytest.raises(InvalidParameterValue, match="cannot be the owner"):
        workspace_client.jobs.set_permissions(job_id, access_control_list=[group_owner])
    with pytest.raises(ResourceDoesNotExist):
        workspace_client.jobs.get_permissions("999999")
    assert os.path.basename(after_owner.object_id) == job_id
