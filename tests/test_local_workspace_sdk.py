"""Fidelity: the real databricks-sdk drives the local workspace and cannot tell it from the service.

Each test uses the SDK call a deploy step (or a user) makes and asserts both the SDK-visible result and,
where it matters, the requests the SDK sent (from the emulator's request log). After every test, no request may
have reached an endpoint the local workspace has no API for: a new databricks-sdk that starts sending one fails
here, naming its version and the requests, instead of passing silently on a fallback.
"""

from __future__ import annotations

import importlib.metadata
import io
import os

import pytest
from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import (
    BadRequest,
    InvalidParameterValue,
    InvalidState,
    NotFound,
    PermissionDenied,
    ResourceAlreadyExists,
    ResourceDoesNotExist,
    Unauthenticated,
)
from databricks.sdk.service import compute, jobs
from databricks.sdk.service.workspace import ImportFormat, Language, ObjectType
from workspace_fixtures import RUNNING_CLUSTER, TERMINATED_CLUSTER, WORKSPACE_TOKEN, make_wheel

NOTEBOOK_HEADER = b"# Databricks notebook source\n"
SDK_VERSION = importlib.metadata.version("databricks-sdk")


def assert_every_request_served(workspace) -> None:
    """Fail, naming the installed SDK, if the log holds requests the local workspace has no API for."""
    unknown = list(
        dict.fromkeys(
            f"{r.method} {r.path}{'?' + r.query if r.query else ''}" for r in workspace.unknown_endpoint_requests()
        )
    )
    assert not unknown, (
        f"databricks-sdk {SDK_VERSION} sent requests the local workspace does not serve: {'; '.join(unknown)} "
        f"(teach ci_cd_scripts/local_workspace*.py to answer them as the service does, or keep databricks-sdk "
        f"below {SDK_VERSION} in requirements-dev.txt)"
    )


@pytest.fixture(autouse=True)
def every_sdk_request_is_served(local_workspace):
    yield
    assert_every_request_served(local_workspace)


def upload_notebook(client: WorkspaceClient, path: str, source: str) -> None:
    client.workspace.mkdirs(os.path.dirname(path))
    client.workspace.upload(
        path, NOTEBOOK_HEADER + source.encode(), format=ImportFormat.SOURCE, language=Language.PYTHON, overwrite=True
    )


# ---- workspace ------------------------------------------------------------------------------------------------


def test_workspace_upload_download_list_delete(workspace_client, local_workspace):
    client = workspace_client
    client.workspace.mkdirs("/Shared/ci/nested")
    client.workspace.upload("/Shared/ci/job", b"print('hi')\n", format=ImportFormat.SOURCE, language=Language.PYTHON)
    client.workspace.upload("/Shared/ci/init.sh", b"#!/bin/bash\necho hi\n", format=ImportFormat.AUTO)
    client.workspace.upload("/Shared/ci/auto_nb.py", NOTEBOOK_HEADER + b"x = 1\n", format=ImportFormat.AUTO)

    listing = {o.path: o for o in client.workspace.list("/Shared/ci")}
    assert set(listing) == {"/Shared/ci/nested", "/Shared/ci/job", "/Shared/ci/init.sh", "/Shared/ci/auto_nb"}
    assert listing["/Shared/ci/job"].object_type == ObjectType.NOTEBOOK
    assert listing["/Shared/ci/job"].language == Language.PYTHON
    assert listing["/Shared/ci/init.sh"].object_type == ObjectType.FILE
    assert listing["/Shared/ci/auto_nb"].object_type == ObjectType.NOTEBOOK  # AUTO strips .py from notebooks
    assert listing["/Shared/ci/nested"].object_type == ObjectType.DIRECTORY
    assert all(o.object_id for o in listing.values())

    assert client.workspace.download("/Shared/ci/job").read() == NOTEBOOK_HEADER + b"print('hi')\n"
    assert client.workspace.download("/Workspace/Shared/ci/init.sh").read() == b"#!/bin/bash\necho hi\n"
    assert client.workspace.get_status("/Workspace/Shared/ci/init.sh").size == len(b"#!/bin/bash\necho hi\n")

    with pytest.raises(BadRequest) as error:  # DIRECTORY_NOT_EMPTY
        client.workspace.delete("/Shared/ci")
    assert error.value.error_code == "DIRECTORY_NOT_EMPTY"
    client.workspace.delete("/Shared/ci", recursive=True)
    assert local_workspace.workspace_object("/Shared/ci") is None
    # The SDK's upload is one multipart import: no mkdirs, no get-status.
    assert local_workspace.count("POST", "*/workspace/import") == 3


def test_workspace_errors_raise_the_services_exception_classes(workspace_client):
    client = workspace_client
    with pytest.raises(ResourceDoesNotExist):
        client.workspace.get_status("/Users/nobody/missing")
    with pytest.raises(NotFound) as error:  # import does not create parents
        client.workspace.upload(
            "/Shared/no/such/dir/nb", b"x = 1", format=ImportFormat.SOURCE, language=Language.PYTHON
        )
    assert "The parent folder (/Shared/no/such/dir) does not exist." in str(error.value)
    client.workspace.upload("/Shared/once", b"x = 1", format=ImportFormat.SOURCE, language=Language.PYTHON)
    with pytest.raises(ResourceAlreadyExists):
        client.workspace.upload("/Shared/once", b"x = 2", format=ImportFormat.SOURCE, language=Language.PYTHON)
    with pytest.raises(ResourceAlreadyExists):  # overwrite cannot change a notebook into a file
        client.workspace.upload("/Shared/once", b"x = 2", format=ImportFormat.RAW, overwrite=True)
    with pytest.raises(BadRequest) as error:
        client.workspace.upload("/Shared/big.bin", b"0" * (10 * 1024 * 1024 + 1), format=ImportFormat.RAW)
    assert error.value.error_code == "MAX_NOTEBOOK_SIZE_EXCEEDED"
    assert "exceeded max size (10485760 bytes)" in str(error.value)


# ---- DBFS and Files -------------------------------------------------------------------------------------------


def test_dbfs_upload_download_uses_blocks(workspace_client, local_workspace):
    data = os.urandom(3 * 1024 * 1024 + 123)
    workspace_client.dbfs.upload("dbfs:/FileStore/wheels/big.whl", io.BytesIO(data), overwrite=True)
    assert local_workspace.dbfs_file("/FileStore/wheels/big.whl") == data
    # create -> add-block per 1 MiB -> close, and nothing else (contract section 5.1)
    calls = [r.path.rsplit("/", 1)[-1] for r in local_workspace.api_requests()]
    assert calls == ["create"] + ["add-block"] * 4 + ["close"]
    assert workspace_client.dbfs.download("/FileStore/wheels/big.whl").read() == data
    status = workspace_client.dbfs.get_status("/FileStore/wheels/big.whl")
    assert status.file_size == len(data) and not status.is_dir
    assert [f.path for f in workspace_client.dbfs.list("/FileStore/wheels")] == ["/FileStore/wheels/big.whl"]
    workspace_client.dbfs.delete("/FileStore/wheels", recursive=True)
    with pytest.raises(ResourceDoesNotExist):
        workspace_client.dbfs.get_status("/FileStore/wheels")


def test_dbfs_put_limit_and_conflicts(workspace_client):
    import base64

    with pytest.raises(BadRequest) as error:
        workspace_client.dbfs.put("/FileStore/too-big", contents=base64.b64encode(b"0" * (1024 * 1024 + 1)).decode())
    assert error.value.error_code == "MAX_BLOCK_SIZE_EXCEEDED"
    assert "cannot exceed 1048576 bytes. Found: 1048577 bytes" in str(error.value)
    workspace_client.dbfs.put("/FileStore/small", contents=base64.b64encode(b"abc").decode())
    with pytest.raises(ResourceAlreadyExists):
        workspace_client.dbfs.put("/FileStore/small", contents=base64.b64encode(b"abc").decode())
    from databricks.sdk.service.files import DbfsAPI

    with pytest.raises(BadRequest) as error:  # the plain API: the SDK's mixin refuses this client-side
        DbfsAPI(workspace_client.api_client).delete("/FileStore")  # not empty, not recursive
    assert error.value.error_code == "IO_ERROR"


def test_files_api_upload_download_directories(workspace_client, local_workspace):
    client = workspace_client
    client.files.create_directory("/Volumes/main/default/libs/sub dir")
    client.files.upload("/Volumes/main/default/libs/sub dir/a.txt", io.BytesIO(b"hello"), overwrite=True)
    assert client.files.download("/Volumes/main/default/libs/sub dir/a.txt").contents.read() == b"hello"
    assert client.files.get_metadata("/Volumes/main/default/libs/sub dir/a.txt").content_length == 5
    entries = list(client.files.list_directory_contents("/Volumes/main/default/libs"))
    assert [(e.name, e.is_directory) for e in entries] == [("sub dir", True)]
    with pytest.raises(NotFound):
        client.files.get_metadata("/Volumes/main/default/libs/missing.txt")
    # Workspace paths share storage with the Workspace API.
    client.files.upload("/Workspace/Shared/from-files.txt", io.BytesIO(b"shared"))
    assert client.workspace.download("/Shared/from-files.txt").read() == b"shared"
    client.files.delete("/Volumes/main/default/libs/sub dir/a.txt")
    assert local_workspace.volume_file("/Volumes/main/default/libs/sub dir/a.txt") is None


def test_files_multipart_upload_falls_back_to_single_put(local_workspace):
    # With a tiny multipart threshold the SDK asks where transfers go (newer SDKs), starts initiate-upload on the
    # first endpoint; our presigned-URL endpoints answer 501, so it aborts the session and falls back to one PUT
    # of the whole file on the next.
    from databricks.sdk.core import Config

    config = Config(host=local_workspace.url, token=WORKSPACE_TOKEN, auth_type="pat")
    config.files_ext_multipart_upload_min_stream_size = 1024
    client = WorkspaceClient(config=config)
    data = os.urandom(300 * 1024)
    client.files.upload("/Volumes/main/default/libs/big.bin", io.BytesIO(data), overwrite=True)
    assert local_workspace.volume_file("/Volumes/main/default/libs/big.bin") == data
    calls = [
        (r.method, r.path.rsplit("/", 1)[-1], r.query.split("&")[0], r.status) for r in local_workspace.api_requests()
    ]
    if calls[0][:2] == ("GET", "endpoints"):  # databricks-sdk >= 0.167: endpoint discovery, answered with a list
        assert calls.pop(0)[3] == 200
    assert calls[0] == ("POST", "big.bin", "action=initiate-upload", 200)
    assert ("POST", "create-upload-part-urls", "", 501) in calls
    assert calls[-1] == ("PUT", "big.bin", "overwrite=true", 204)


# ---- clusters and libraries -----------------------------------------------------------------------------------


def test_clusters_get_start_restart_with_waiters(workspace_client, local_workspace):
    client = workspace_client
    assert client.clusters.get(RUNNING_CLUSTER).state == compute.State.RUNNING
    assert client.clusters.get(TERMINATED_CLUSTER).state == compute.State.TERMINATED
    with pytest.raises(InvalidState) as error:
        client.clusters.start(RUNNING_CLUSTER)
    assert str(error.value) == f"Cluster {RUNNING_CLUSTER} is in unexpected state Running."
    started = client.clusters.start(TERMINATED_CLUSTER).result()
    assert started.state == compute.State.RUNNING
    restarted = client.clusters.restart(RUNNING_CLUSTER).result()
    assert restarted.state == compute.State.RUNNING
    states = [r.status for r in local_workspace.api_requests("GET", "*/clusters/get")]
    assert states and all(status == 200 for status in states)
    with pytest.raises(ResourceDoesNotExist):  # legacy 400 INVALID_PARAMETER_VALUE, rewritten by the SDK
        client.clusters.get("0000-000000-missing")
    ids = {c.cluster_id for c in client.clusters.list()}
    assert ids == {RUNNING_CLUSTER, TERMINATED_CLUSTER}


def test_cluster_edit_replaces_the_spec(workspace_client, local_workspace):
    details = workspace_client.clusters.get(TERMINATED_CLUSTER)
    workspace_client.clusters.edit(
        cluster_id=TERMINATED_CLUSTER,
        spark_version=details.spark_version,
        cluster_name="renamed",
        num_workers=2,
        init_scripts=[compute.InitScriptInfo(workspace=compute.WorkspaceStorageInfo(destination="/Shared/init.sh"))],
    )
    edited = local_workspace.cluster(TERMINATED_CLUSTER)
    assert edited["cluster_name"] == "renamed" and edited["num_workers"] == 2
    assert edited["init_scripts"] == [{"workspace": {"destination": "/Shared/init.sh"}}]
    assert edited["state"] == "TERMINATED"
    assert "data_security_mode" in edited and edited["data_security_mode"] == "SINGLE_USER"  # reset to default


def test_libraries_install_status_and_failure_for_missing_file(workspace_client, local_workspace):
    name, wheel = make_wheel("tinylib")
    workspace_client.files.upload(f"/Volumes/main/default/libs/{name}", io.BytesIO(wheel))
    workspace_client.libraries.install(
        RUNNING_CLUSTER,
        [
            compute.Library(whl=f"/Volumes/main/default/libs/{name}"),
            compute.Library(whl="/Volumes/main/default/libs/missing-1.0-py3-none-any.whl"),
        ],
    )
    seen: list[str] = []
    for _ in range(10_000):  # poll until both are terminal; the emulator moves them on its compressed clock
        statuses = {s.library.whl: s for s in workspace_client.libraries.cluster_status(RUNNING_CLUSTER)}
        seen.append(statuses[f"/Volumes/main/default/libs/{name}"].status.value)
        if all(s.status.value in ("INSTALLED", "FAILED") for s in statuses.values()):
            break
    assert statuses[f"/Volumes/main/default/libs/{name}"].status == compute.LibraryInstallStatus.INSTALLED
    failed = statuses["/Volumes/main/default/libs/missing-1.0-py3-none-any.whl"]
    assert failed.status == compute.LibraryInstallStatus.FAILED
    assert "FileNotFoundException" in failed.messages[0]
    assert seen[0] in ("PENDING", "RESOLVING")  # not instantaneous: the status machine is observable

    workspace_client.libraries.uninstall(RUNNING_CLUSTER, [compute.Library(whl=f"/Volumes/main/default/libs/{name}")])
    statuses = {s.library.whl: s.status.value for s in workspace_client.libraries.cluster_status(RUNNING_CLUSTER)}
    assert statuses[f"/Volumes/main/default/libs/{name}"] == "UNINSTALL_ON_RESTART"
    workspace_client.clusters.restart(RUNNING_CLUSTER).result()
    remaining = [s.library.whl for s in workspace_client.libraries.cluster_status(RUNNING_CLUSTER)]
    assert remaining == ["/Volumes/main/default/libs/missing-1.0-py3-none-any.whl"]


def test_libraries_install_on_unknown_cluster_is_rejected(workspace_client):
    with pytest.raises(InvalidParameterValue):
        workspace_client.libraries.install("0000-000000-missing", [compute.Library(whl="/Volumes/a/b/c/x.whl")])


# ---- jobs and runs --------------------------------------------------------------------------------------------


def test_submitted_notebook_imports_its_wheel_and_succeeds(workspace_client, local_workspace):
    name, wheel = make_wheel("greeter", modules={"greeter/__init__.py": "def greet(who):\n    return f'hello {who}'\n"})
    workspace_client.files.upload(f"/Volumes/main/default/libs/{name}", io.BytesIO(wheel))
    workspace_client.libraries.install(RUNNING_CLUSTER, [compute.Library(whl=f"/Volumes/main/default/libs/{name}")])
    upload_notebook(
        workspace_client,
        "/Shared/tests/greet",
        (
            "import sys\n"
            "import greeter\n"
            "# COMMAND ----------\n"
            "dbutils.notebook.exit(greeter.greet(dbutils.widgets.get('who')) + ' spark-loaded=' + str('pyspark' in sys.modules))\n"
        ),
    )
    for _ in range(10_000):
        if local_workspace.library_statuses(RUNNING_CLUSTER)[0]["status"] == "INSTALLED":
            break
    run = workspace_client.jobs.submit(
        run_name="greet",
        tasks=[
            jobs.SubmitTask(
                task_key="greet",
                existing_cluster_id=RUNNING_CLUSTER,
                notebook_task=jobs.NotebookTask(notebook_path="/Shared/tests/greet", base_parameters={"who": "ci"}),
            )
        ],
    ).result()
    assert run.state.result_state == jobs.RunResultState.SUCCESS, run.state
    output = workspace_client.jobs.get_run_output(run.tasks[0].run_id)
    assert output.notebook_output.result == "hello ci spark-loaded=False"  # spark is lazy
    with pytest.raises(InvalidParameterValue, match="multiple tasks is not supported"):
        workspace_client.jobs.get_run_output(run.run_id)


def test_failing_notebook_reports_its_traceback(workspace_client):
    upload_notebook(
        workspace_client,
        "/Shared/tests/fails",
        "def check(rows):\n    raise ValueError(f'{rows} bad rows')\n\ncheck(3)\n",
    )
    run = workspace_client.jobs.submit(
        run_name="fails",
        tasks=[
            jobs.SubmitTask(
                task_key="fails",
                existing_cluster_id=RUNNING_CLUSTER,
                notebook_task=jobs.NotebookTask(notebook_path="/Shared/tests/fails"),
            )
        ],
    ).result()
    assert run.state.result_state == jobs.RunResultState.FAILED
    assert run.tasks[0].state.result_state == jobs.RunResultState.FAILED
    output = workspace_client.jobs.get_run_output(run.tasks[0].run_id)
    assert output.error == "ValueError: 3 bad rows"
    assert "Traceback (most recent call last)" in output.error_trace
    assert "in check" in output.error_trace and "fails.py" in output.error_trace
    assert "local_workspace_runner" not in output.error_trace


def test_missing_notebook_fails_and_unknown_run_raises(workspace_client):
    run = workspace_client.jobs.submit(
        run_name="missing",
        tasks=[
            jobs.SubmitTask(
                task_key="m",
                existing_cluster_id=RUNNING_CLUSTER,
                notebook_task=jobs.NotebookTask(notebook_path="/Shared/nope"),
            )
        ],
    ).result()
    assert run.state.result_state == jobs.RunResultState.FAILED
    assert "Unable to access the notebook" in workspace_client.jobs.get_run_output(run.tasks[0].run_id).error
    with pytest.raises(ResourceDoesNotExist):
        workspace_client.jobs.get_run(424242)


def test_submit_is_idempotent_and_scripted_outcomes_skip_execution(workspace_client, local_workspace):
    local_workspace.script_run("/Shared/tests/scripted", result_state="SUCCESS", result="42")
    task = jobs.SubmitTask(
        task_key="s",
        existing_cluster_id=TERMINATED_CLUSTER,
        notebook_task=jobs.NotebookTask(notebook_path="/Shared/tests/scripted"),
    )
    first = workspace_client.jobs.submit(run_name="s", tasks=[task], idempotency_token="deploy-123")
    second = workspace_client.jobs.submit(run_name="s", tasks=[task], idempotency_token="deploy-123")
    assert first.run_id == second.run_id
    run = first.result()
    assert run.state.result_state == jobs.RunResultState.SUCCESS
    assert workspace_client.jobs.get_run_output(run.tasks[0].run_id).notebook_output.result == "42"
    # The run started the terminated cluster, as the service does.
    assert workspace_client.clusters.get(TERMINATED_CLUSTER).state == compute.State.RUNNING


def test_jobs_create_list_reset_run_now(workspace_client, local_workspace):
    upload_notebook(workspace_client, "/Shared/tests/echo", "dbutils.notebook.exit(dbutils.widgets.get('env'))\n")
    task = jobs.Task(
        task_key="echo",
        existing_cluster_id=RUNNING_CLUSTER,
        notebook_task=jobs.NotebookTask(notebook_path="/Shared/tests/echo", base_parameters={"env": "dev"}),
    )
    first = workspace_client.jobs.create(name="Nightly Quality", tasks=[task]).job_id
    second = workspace_client.jobs.create(name="nightly quality", tasks=[task]).job_id
    workspace_client.jobs.create(name="other", tasks=[task])
    assert {j.job_id for j in workspace_client.jobs.list(name="NIGHTLY QUALITY")} == {first, second}
    assert len(list(workspace_client.jobs.list(limit=1))) == 3  # the SDK follows next_page_token
    workspace_client.jobs.reset(
        first, new_settings=jobs.JobSettings(name="renamed", tasks=[task], max_concurrent_runs=3)
    )
    job = workspace_client.jobs.get(first)
    assert job.settings.name == "renamed" and job.settings.max_concurrent_runs == 3
    run = workspace_client.jobs.run_now(first, notebook_params={"env": "prod"}).result()
    assert run.state.result_state == jobs.RunResultState.SUCCESS and run.job_id == first
    assert workspace_client.jobs.get_run_output(run.tasks[0].run_id).notebook_output.result == "prod"
    workspace_client.jobs.delete(second)
    with pytest.raises(ResourceDoesNotExist):
        workspace_client.jobs.get(second)


def test_cancel_a_running_run(workspace_client, local_workspace):
    local_workspace.script_run("/Shared/tests/slow", duration_seconds=3000)  # 60 s at the fixture's time scale
    waiter = workspace_client.jobs.submit(
        run_name="slow",
        tasks=[
            jobs.SubmitTask(
                task_key="slow",
                existing_cluster_id=RUNNING_CLUSTER,
                notebook_task=jobs.NotebookTask(notebook_path="/Shared/tests/slow"),
            )
        ],
    )
    run = workspace_client.jobs.cancel_run(waiter.run_id).result()
    assert run.state.result_state == jobs.RunResultState.CANCELED


def _submit(workspace_client, path: str):
    return workspace_client.jobs.submit(
        run_name=path,
        tasks=[
            jobs.SubmitTask(
                task_key="t", existing_cluster_id=RUNNING_CLUSTER, notebook_task=jobs.NotebookTask(notebook_path=path)
            )
        ],
    )


def test_a_run_cancelled_while_pending_never_runs(workspace_client, local_workspace):
    local_workspace.script_run("/Shared/tests/never", result="ran")
    waiter = _submit(workspace_client, "/Shared/tests/never")
    assert workspace_client.jobs.get_run(waiter.run_id).state.life_cycle_state == jobs.RunLifeCycleState.PENDING
    run = workspace_client.jobs.cancel_run(waiter.run_id).result()
    assert run.state.result_state == jobs.RunResultState.CANCELED
    assert run.tasks[0].state.result_state == jobs.RunResultState.CANCELED
    output = workspace_client.jobs.get_run_output(run.tasks[0].run_id).notebook_output
    assert not (output and output.result)  # it never ran: no exit value


def test_skipped_and_internal_error_runs_end_in_those_life_cycle_states(workspace_client, local_workspace):
    from databricks.sdk.errors import OperationFailed

    local_workspace.script_run("/Shared/tests/skipped", result_state="SKIPPED", error="Skipped: the cluster was busy")
    local_workspace.script_run(
        "/Shared/tests/broken", result_state="INTERNAL_ERROR", error="Cluster terminated unexpectedly"
    )
    skipped = _submit(workspace_client, "/Shared/tests/skipped").result()  # the SDK waiter stops at SKIPPED
    assert skipped.state.life_cycle_state == jobs.RunLifeCycleState.SKIPPED and skipped.state.result_state is None
    assert skipped.state.state_message == "Skipped: the cluster was busy"
    broken = _submit(workspace_client, "/Shared/tests/broken")
    with pytest.raises(OperationFailed, match="INTERNAL_ERROR"):
        broken.result()
    run = workspace_client.jobs.get_run(broken.run_id)
    assert run.state.life_cycle_state == jobs.RunLifeCycleState.INTERNAL_ERROR
    assert run.state.result_state == jobs.RunResultState.FAILED
    assert run.state.state_message == "Cluster terminated unexpectedly"


def test_an_exit_value_over_5_mb_is_truncated_in_the_output(workspace_client, local_workspace):
    local_workspace.script_run("/Shared/tests/big", result="x" * (5 * 1024 * 1024 + 10))
    run = _submit(workspace_client, "/Shared/tests/big").result()
    output = workspace_client.jobs.get_run_output(run.tasks[0].run_id).notebook_output
    assert output.truncated is True and len(output.result) == 5 * 1024 * 1024


# ---- auth ---------------------------------------------------------------------------------------------------


class _NoCredentials:
    """A credentials strategy that sends no Authorization header at all."""

    def auth_type(self) -> str:
        return "none"

    def __call__(self, cfg):
        return lambda: {}


def test_bad_and_missing_tokens(local_workspace):
    wrong = WorkspaceClient(host=local_workspace.url, token="dapi-wrong", auth_type="pat")
    with pytest.raises(PermissionDenied, match="Invalid access token"):
        next(iter(wrong.clusters.list()))
    anonymous = WorkspaceClient(host=local_workspace.url, credentials_strategy=_NoCredentials())
    with pytest.raises(Unauthenticated, match="Credential was not sent"):
        anonymous.current_user.me()
    assert [r.status for r in local_workspace.api_requests()] == [403, 401]


def test_package1_wheel_and_its_test_notebook_run_to_success(workspace_client, local_workspace, tmp_path):
    """The issue's done-when: the real package1, built with PyPA build, imported by its own test notebook."""
    import shutil
    import subprocess
    import sys

    from helpers import ROOT

    source = tmp_path / "package1"
    shutil.copytree(
        ROOT / "package1", source, ignore=shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__")
    )
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path / "dist"), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    wheel = next((tmp_path / "dist").glob("package1-*.whl"))
    volume_path = f"/Volumes/main/default/libs/{wheel.name}"
    workspace_client.files.upload_from(volume_path, str(wheel))
    workspace_client.libraries.install(RUNNING_CLUSTER, [compute.Library(whl=volume_path)])
    workspace_client.workspace.mkdirs("/Shared/package1")
    with open(source / "notebooks" / "test_quality_rules.py", "rb") as notebook:
        workspace_client.workspace.upload("/Shared/package1/test_quality_rules.py", notebook, format=ImportFormat.AUTO)
    for _ in range(10_000):
        if local_workspace.library_statuses(RUNNING_CLUSTER)[0]["status"] == "INSTALLED":
            break
    run = workspace_client.jobs.submit(
        run_name="package1 tests",
        tasks=[
            jobs.SubmitTask(
                task_key="tests",
                existing_cluster_id=RUNNING_CLUSTER,
                notebook_task=jobs.NotebookTask(notebook_path="/Shared/package1/test_quality_rules"),
            )
        ],
    ).result()
    assert run.state.result_state == jobs.RunResultState.SUCCESS, run.state
    import json

    summary = json.loads(workspace_client.jobs.get_run_output(run.tasks[0].run_id).notebook_output.result)
    assert summary["tests"] and {test["status"] for test in summary["tests"]} == {"passed"}, summary


def test_a_failing_start_stops_the_sdk_waiter(workspace_client, local_workspace):
    from databricks.sdk.errors import OperationFailed

    local_workspace.fail_next_start(
        RUNNING_CLUSTER, message="Cluster scoped init script /Volumes/main/default/init/init.sh failed"
    )
    with pytest.raises(OperationFailed, match="TERMINATED"):
        workspace_client.clusters.restart(RUNNING_CLUSTER).result()
    details = workspace_client.clusters.get(RUNNING_CLUSTER)
    assert details.termination_reason.code == compute.TerminationReasonCode.INIT_SCRIPT_FAILURE
    assert "init.sh failed" in details.termination_reason.parameters["databricks_error_message"]
    assert details.state_message == "Cluster terminated. Reason: Init Script Failure"
    assert (
        workspace_client.clusters.start(RUNNING_CLUSTER).result().state == compute.State.RUNNING
    )  # only the next start fails


def test_sdk_selectors_for_spark_versions_and_node_types(workspace_client):
    assert workspace_client.clusters.select_spark_version(long_term_support=True, latest=True) == "16.4.x-scala2.12"
    assert workspace_client.clusters.select_node_type(local_disk=False, min_memory_gb=60) == "Standard_E8ds_v4"


def test_a_request_the_local_workspace_does_not_serve_fails_naming_the_sdk_version(workspace_client, local_workspace):
    with pytest.raises(NotFound):
        workspace_client.api_client.do("GET", "/api/2.0/fs/no-such-api", query={"a": "1"})
    with pytest.raises(AssertionError) as failure:
        assert_every_request_served(local_workspace)
    assert str(failure.value).startswith(
        f"databricks-sdk {SDK_VERSION} sent requests the local workspace does not serve: "
        "GET /api/2.0/fs/no-such-api?a=1 (teach "
    )
    assert [(r.status, r.unknown_endpoint) for r in local_workspace.api_requests("GET", "*/no-such-api")] == [
        (404, True)
    ]
    local_workspace.clear_log()  # the autouse check after this test must pass
