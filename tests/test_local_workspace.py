"""The local workspace at the HTTP level: wire quirks of real clients, exact error shapes, limits, state
machines, fault injection, rate limits, request log, admin surface, CLI and --state-dir persistence."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import requests
from helpers import SCRIPTS, assert_one_line_error, run_script, script_env
from workspace_fixtures import RUNNING_CLUSTER, TERMINATED_CLUSTER, WORKSPACE_TOKEN, make_wheel

from local_cloud.workspace import server as lw
from local_cloud.workspace.faults import parse_faults, parse_rate_limit
from local_cloud.workspace.identity import AZURE_DATABRICKS_APP_ID
from local_cloud.workspace.wire import ORG_ID, USER_NAME

AUTH = {"Authorization": f"Bearer {WORKSPACE_TOKEN}"}


def call(ws, method: str, path: str, *, headers: dict | None = None, **kwargs) -> requests.Response:
    return requests.request(method, ws.url + path, headers={**AUTH, **(headers or {})}, timeout=30, **kwargs)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def wait_for(predicate, timeout: float = 30.0):
    """Deadline loop: poll until predicate() is truthy, yielding the CPU briefly between polls."""
    import threading

    pause = threading.Event()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        pause.wait(0.005)
    raise AssertionError("condition not met before the deadline")


def run_terminal(ws, run_id: int) -> dict:
    return ws.wait_run(run_id, timeout=60)


# ---- auth and error shapes ---------------------------------------------------------------------------------


def test_auth_errors_are_the_services_bodies(local_workspace):
    missing = requests.get(local_workspace.url + "/api/2.0/workspace/list?path=/", timeout=10)
    assert missing.status_code == 401
    assert missing.json() == {
        "error_code": 401,
        "message": "Credential was not sent or was of an unsupported type for this API.",
    }
    basic = call(local_workspace, "GET", "/api/2.0/workspace/list?path=/", headers={"Authorization": "Basic abc"})
    assert basic.status_code == 401
    wrong = call(
        local_workspace, "GET", "/api/2.0/workspace/list?path=/", headers={"Authorization": "Bearer dapi-nope"}
    )
    assert wrong.status_code == 403
    assert wrong.json() == {"error_code": 403, "message": "Invalid access token."}
    assert wrong.headers["X-Databricks-Reason-Phrase"] == "Invalid access token."
    # Discovery is the only anonymous path; SCIM Me carries the org id header.
    well_known = requests.get(local_workspace.url + "/.well-known/databricks-config", timeout=10)
    assert well_known.status_code == 200 and well_known.json()["workspace_id"] == ORG_ID
    me = call(local_workspace, "GET", "/api/2.0/preview/scim/v2/Me")
    assert me.json()["userName"] == USER_NAME and me.headers["X-Databricks-Org-Id"] == ORG_ID
    local_workspace.add_token("dapi-second")
    assert call(local_workspace, "GET", "/api/2.0/clusters/list", headers={"Authorization": "Bearer dapi-second"}).ok


def test_unknown_endpoints_and_version_aliases(local_workspace):
    unknown = call(local_workspace, "GET", "/api/2.0/workspace/nope")
    assert unknown.status_code == 404 and unknown.json()["error_code"] == "ENDPOINT_NOT_FOUND"
    assert call(local_workspace, "GET", "/api/2.1/workspace/list?path=/").status_code == 404  # workspace is 2.0 only
    for version in ("2.0", "2.1"):
        assert (
            call(local_workspace, "GET", f"/api/{version}/clusters/get?cluster_id={RUNNING_CLUSTER}").json()["state"]
            == "RUNNING"
        )
    for version in ("2.0", "2.1", "2.2"):
        missing = call(local_workspace, "GET", f"/api/{version}/jobs/get?job_id=77")
        assert (missing.status_code, missing.json()) == (
            400,
            {"error_code": "INVALID_PARAMETER_VALUE", "message": "Job 77 does not exist."},
        )
    missing_cluster = call(local_workspace, "GET", "/api/2.0/clusters/get?cluster_id=abc")
    assert missing_cluster.json() == {"error_code": "INVALID_PARAMETER_VALUE", "message": "Cluster abc does not exist"}
    bad_json = call(local_workspace, "POST", "/api/2.0/workspace/mkdirs", data=b"{not json")
    assert bad_json.status_code == 400 and bad_json.json()["error_code"] == "MALFORMED_REQUEST"
    # Only requests without an API are flagged in the log (the SDK fidelity tests fail on them), over HTTP too.
    assert [r.path for r in local_workspace.unknown_endpoint_requests()] == [
        "/api/2.0/workspace/nope",
        "/api/2.1/workspace/list",
    ]
    log = requests.get(local_workspace.url + "/__local__/requests", timeout=10).json()["requests"]
    assert [r["path"] for r in log if r["unknown_endpoint"]] == ["/api/2.0/workspace/nope", "/api/2.1/workspace/list"]


# ---- what real clients send ------------------------------------------------------------------------------------


def test_cli_018_and_seed_request_styles(local_workspace):
    # CLI 0.18: text/json on every request, GETs included; booleans as "True"; dbfs: paths with trailing slashes.
    text_json = {"Content-Type": "text/json"}
    assert call(
        local_workspace,
        "POST",
        "/api/2.0/dbfs/mkdirs",
        headers=text_json,
        data=json.dumps({"path": "dbfs:/FileStore/jars2/"}),
    ).ok
    status = call(local_workspace, "GET", "/api/2.0/dbfs/get-status?path=dbfs:/FileStore/jars2/", headers=text_json)
    assert status.json()["is_dir"] is True and status.json()["path"] == "/FileStore/jars2"
    # CLI 0.18 fs cp: multipart put, file part named `file` whose part Content-Type is itself multipart.
    boundary = "cliboundary"
    payload = b"PK\x03\x04" + os.urandom(2 * 1024 * 1024)  # a multipart file part is not 1 MB limited
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="path"\r\n\r\ndbfs:/FileStore/jars2/big.whl\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="overwrite"\r\n\r\nFalse\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.whl"\r\n'
            f"Content-Type: multipart/form-data; boundary=inner\r\n\r\n"
        ).encode()
        + payload
        + f"\r\n--{boundary}--\r\n".encode()
    )
    put = call(
        local_workspace,
        "POST",
        "/api/2.0/dbfs/put",
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        data=body,
    )
    assert put.status_code == 200, put.text
    assert local_workspace.dbfs_file("dbfs:/FileStore/jars2/big.whl") == payload
    again = call(
        local_workspace,
        "POST",
        "/api/2.0/dbfs/put",
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        data=body,
    )
    assert again.status_code == 400 and again.json()["error_code"] == "RESOURCE_ALREADY_EXISTS"
    # The seed implementation: GET with a JSON body, overwrite as the string "true".
    seed_get = call(local_workspace, "GET", "/api/2.0/dbfs/get-status", json={"path": "/FileStore/jars2/big.whl"})
    assert seed_get.json()["file_size"] == len(payload)
    call(local_workspace, "POST", "/api/2.0/workspace/mkdirs", json={"path": "/Shared/seed"})
    imported = call(
        local_workspace,
        "POST",
        "/api/2.0/workspace/import",
        json={
            "path": "/Workspace/Shared/seed/nb",
            "format": "SOURCE",
            "language": "PYTHON",
            "content": b64(b"x = 1"),
            "overwrite": "true",
        },
    )
    assert imported.status_code == 200 and imported.json() == {}
    assert local_workspace.workspace_object("/Shared/seed/nb")["object_type"] == "NOTEBOOK"


def test_workspace_import_formats_and_listing(local_workspace):
    call(local_workspace, "POST", "/api/2.0/workspace/mkdirs", json={"path": "/Shared/fmt/empty"})
    assert (
        call(local_workspace, "GET", "/api/2.0/workspace/list?path=/Shared/fmt/empty").json() == {}
    )  # objects omitted
    ipynb = {
        "cells": [
            {"cell_type": "markdown", "source": ["# Title"]},
            {"cell_type": "code", "source": ["x = 40 + 2\n", "print(x)"]},
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 0,
    }
    call(
        local_workspace,
        "POST",
        "/api/2.0/workspace/import",
        json={"path": "/Shared/fmt/book.ipynb", "format": "AUTO", "content": b64(json.dumps(ipynb).encode())},
    )
    info = call(local_workspace, "GET", "/api/2.0/workspace/get-status?path=/Shared/fmt/book").json()
    assert info["object_type"] == "NOTEBOOK" and info["language"] == "PYTHON"
    exported = call(local_workspace, "GET", "/api/2.0/workspace/export?path=/Shared/fmt/book&format=JUPYTER").json()
    cells = json.loads(base64.b64decode(exported["content"]))["cells"]
    assert exported["file_type"] == "ipynb" and [c["cell_type"] for c in cells] == ["markdown", "code"]
    assert "x = 40 + 2" in cells[1]["source"]
    source = call(local_workspace, "GET", "/api/2.0/workspace/export?path=/Shared/fmt/book").json()
    assert (
        base64.b64decode(source["content"]).startswith(b"# Databricks notebook source\n")
        and source["file_type"] == "py"
    )
    # A .py without the notebook header is a workspace file under AUTO, and keeps its name.
    call(
        local_workspace,
        "POST",
        "/api/2.0/workspace/import",
        json={"path": "/Shared/fmt/util.py", "format": "AUTO", "content": b64(b"X = 1\n")},
    )
    assert local_workspace.workspace_object("/Shared/fmt/util.py")["object_type"] == "FILE"
    missing_language = call(
        local_workspace, "POST", "/api/2.0/workspace/import", json={"path": "/Shared/fmt/nb", "content": b64(b"x")}
    )
    assert missing_language.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    bad_b64 = call(
        local_workspace,
        "POST",
        "/api/2.0/workspace/import",
        json={"path": "/Shared/fmt/nb", "language": "PYTHON", "content": "%%%"},
    )
    assert bad_b64.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    over_file = call(local_workspace, "POST", "/api/2.0/workspace/mkdirs", json={"path": "/Shared/fmt/util.py/sub"})
    assert over_file.status_code == 400 and over_file.json()["error_code"] == "RESOURCE_ALREADY_EXISTS"
    listing = call(local_workspace, "GET", "/api/2.0/workspace/list?path=/Shared/fmt/util.py").json()
    assert [o["path"] for o in listing["objects"]] == ["/Shared/fmt/util.py"]  # a file path lists itself
    missing = call(local_workspace, "POST", "/api/2.0/workspace/delete", json={"path": "/Shared/fmt/none"})
    assert missing.status_code == 404 and missing.json() == {
        "error_code": "RESOURCE_DOES_NOT_EXIST",
        "message": "Path (/Shared/fmt/none) doesn't exist.",
    }


# ---- DBFS and Files --------------------------------------------------------------------------------------------


def test_dbfs_read_move_and_block_limits(local_workspace):
    local_workspace.put_file("dbfs:/tmp/data.bin", b"0123456789")
    read = call(local_workspace, "GET", "/api/2.0/dbfs/read?path=/tmp/data.bin&offset=3&length=4").json()
    assert read == {"bytes_read": 4, "data": b64(b"3456")}
    too_much = call(local_workspace, "GET", "/api/2.0/dbfs/read?path=/tmp/data.bin&length=1048577")
    assert too_much.json()["error_code"] == "MAX_READ_SIZE_EXCEEDED"
    assert (
        call(local_workspace, "GET", "/api/2.0/dbfs/read?path=/tmp").json()["error_code"] == "INVALID_PARAMETER_VALUE"
    )
    assert call(
        local_workspace,
        "POST",
        "/api/2.0/dbfs/move",
        json={"source_path": "/tmp/data.bin", "destination_path": "/tmp/moved/data.bin"},
    ).ok
    assert local_workspace.dbfs_file("/tmp/moved/data.bin") == b"0123456789"
    assert (
        call(
            local_workspace,
            "POST",
            "/api/2.0/dbfs/move",
            json={"source_path": "/tmp/data.bin", "destination_path": "/tmp/x"},
        ).status_code
        == 404
    )
    handle = call(local_workspace, "POST", "/api/2.0/dbfs/create", json={"path": "/tmp/blocks.bin"}).json()["handle"]
    big = call(
        local_workspace,
        "POST",
        "/api/2.0/dbfs/add-block",
        json={"handle": handle, "data": b64(b"0" * (1024 * 1024 + 1))},
    )
    assert big.json()["error_code"] == "MAX_BLOCK_SIZE_EXCEEDED"
    assert call(
        local_workspace, "POST", "/api/2.0/dbfs/add-block", json={"handle": handle, "data": b64(b"0" * 1024 * 1024)}
    ).ok
    assert local_workspace.dbfs_file("/tmp/blocks.bin") is None  # visible only at close
    assert call(local_workspace, "POST", "/api/2.0/dbfs/close", json={"handle": handle}).ok
    assert len(local_workspace.dbfs_file("/tmp/blocks.bin")) == 1024 * 1024
    assert call(local_workspace, "POST", "/api/2.0/dbfs/close", json={"handle": handle}).status_code == 404
    listing = call(local_workspace, "GET", "/api/2.0/dbfs/list?path=dbfs:/tmp/").json()["files"]
    assert {f["path"] for f in listing} == {"/tmp/moved", "/tmp/blocks.bin"}


def test_dbfs_handles_expire():
    with lw.LocalWorkspace(token=WORKSPACE_TOKEN, dbfs_handle_timeout=-1, clusters=[]) as ws:
        handle = call(ws, "POST", "/api/2.0/dbfs/create", json={"path": "/tmp/x"}).json()["handle"]
        expired = call(ws, "POST", "/api/2.0/dbfs/add-block", json={"handle": handle, "data": b64(b"x")})
        assert expired.status_code == 404 and expired.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"


def test_files_api_ranges_conflicts_and_pages(local_workspace):
    base = "/api/2.0/fs/files/Volumes/main/default/vol"
    assert call(local_workspace, "PUT", base + "/d/a.txt", data=b"abcdef").status_code == 204
    conflict = call(local_workspace, "PUT", base + "/d/a.txt?overwrite=false", data=b"x")
    assert conflict.status_code == 409 and conflict.json()["error_code"] == "ALREADY_EXISTS"
    partial = call(local_workspace, "GET", base + "/d/a.txt", headers={"Range": "bytes=2-3"})
    assert partial.status_code == 206 and partial.content == b"cd" and partial.headers["Content-Range"] == "bytes 2-3/6"
    head = call(local_workspace, "HEAD", base + "/d/a.txt")
    assert head.status_code == 200 and head.headers["Content-Length"] == "6" and "GMT" in head.headers["Last-Modified"]
    missing = call(local_workspace, "HEAD", base + "/d/none.txt")
    assert missing.status_code == 404 and missing.content == b""
    for index in range(3):
        call(local_workspace, "PUT", base + f"/d/f{index}.txt", data=b"x")
    first = call(local_workspace, "GET", "/api/2.0/fs/directories/Volumes/main/default/vol/d?page_size=2").json()
    second = call(
        local_workspace,
        "GET",
        f"/api/2.0/fs/directories/Volumes/main/default/vol/d?page_size=2&page_token={first['next_page_token']}",
    ).json()
    names = [e["name"] for e in first["contents"] + second["contents"]]
    assert names == ["a.txt", "f0.txt", "f1.txt", "f2.txt"] and "next_page_token" not in second
    not_empty = call(local_workspace, "DELETE", "/api/2.0/fs/directories/Volumes/main/default/vol/d")
    assert not_empty.status_code == 400 and not_empty.json()["error_code"] == "DIRECTORY_NOT_EMPTY"
    outside = call(local_workspace, "PUT", "/api/2.0/fs/files/tmp/a.txt", data=b"x")
    assert outside.status_code == 400


def test_files_endpoint_discovery_and_an_aborted_multipart_session(local_workspace):
    # GET fs/endpoints (databricks-sdk >= 0.167): presigned URLs first, then Files API 2.0, on the host the client used.
    host = local_workspace.url.removeprefix("http://")
    assert call(local_workspace, "GET", "/api/2.0/fs/endpoints").json() == {
        "endpoints": [
            {"api": "IO_OFFLOAD", "scheme": "http", "hostname": host, "multipart_upload_supported": True},
            {
                "api": "FILES_API",
                "api_version": "2.0",
                "scheme": "http",
                "hostname": host,
                "multipart_upload_supported": False,
            },
        ]
    }
    assert (
        call(local_workspace, "GET", "/api/2.0/fs/endpoints", headers={"Host": "localhost:1"}).json()["endpoints"][0][
            "hostname"
        ]
        == "localhost:1"
    )
    path = "/api/2.0/fs/files/Volumes/main/default/vol/big.bin"
    token = call(local_workspace, "POST", path + "?action=initiate-upload&overwrite=true").json()["multipart_upload"][
        "session_token"
    ]
    other = call(
        local_workspace,
        "POST",
        "/api/2.0/fs/files/Volumes/main/default/vol/other.bin",
        params={"action": "abort-upload", "upload_type": "multipart", "session_token": token},
    )
    assert other.status_code == 404  # a session belongs to its file
    aborted = call(
        local_workspace,
        "POST",
        path,
        params={"action": "abort-upload", "upload_type": "multipart", "session_token": token},
    )
    assert (aborted.status_code, aborted.json()) == (200, {})
    assert (
        call(local_workspace, "POST", path, params={"action": "abort-upload", "session_token": token}).status_code
        == 404
    )  # gone
    complete = call(local_workspace, "POST", path, params={"action": "complete-upload", "session_token": token})
    assert complete.status_code == 404 and complete.json()["error_code"] == "ENDPOINT_NOT_FOUND"
    assert local_workspace.volume_file("/Volumes/main/default/vol/big.bin") is None


# ---- clusters and libraries ------------------------------------------------------------------------------------


def test_cluster_state_machine(local_workspace):
    restart = call(local_workspace, "POST", "/api/2.0/clusters/restart", json={"cluster_id": TERMINATED_CLUSTER})
    assert restart.json() == {
        "error_code": "INVALID_STATE",
        "message": f"Cluster {TERMINATED_CLUSTER} is in unexpected state Terminated.",
    }
    assert call(local_workspace, "POST", "/api/2.0/clusters/start", json={"cluster_id": TERMINATED_CLUSTER}).ok
    assert local_workspace.cluster(TERMINATED_CLUSTER)["state"] == "PENDING"
    edit = call(
        local_workspace,
        "POST",
        "/api/2.1/clusters/edit",
        json={"cluster_id": TERMINATED_CLUSTER, "spark_version": "15.4.x-scala2.12"},
    )
    assert edit.status_code == 400 and edit.json()["error_code"] == "INVALID_STATE"
    wait_for(lambda: local_workspace.cluster(TERMINATED_CLUSTER)["state"] == "RUNNING")
    assert call(local_workspace, "POST", "/api/2.0/clusters/delete", json={"cluster_id": TERMINATED_CLUSTER}).ok
    assert local_workspace.cluster(TERMINATED_CLUSTER)["state"] == "TERMINATING"
    terminated = wait_for(
        lambda: (
            local_workspace.cluster(TERMINATED_CLUSTER)["state"] == "TERMINATED"
            and local_workspace.cluster(TERMINATED_CLUSTER)
        )
    )
    assert terminated["termination_reason"]["code"] == "USER_REQUEST"


def test_library_rules(local_workspace):
    single = call(
        local_workspace,
        "POST",
        "/api/2.0/libraries/install",
        json={"cluster_id": RUNNING_CLUSTER, "libraries": {"whl": "/x.whl"}},
    )
    assert single.status_code == 400 and single.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert call(local_workspace, "GET", f"/api/2.0/libraries/cluster-status?cluster_id={RUNNING_CLUSTER}").json() == {
        "cluster_id": RUNNING_CLUSTER
    }
    name, wheel = make_wheel("legacy")
    local_workspace.put_file(f"dbfs:/FileStore/wheels/{name}", wheel)
    for cluster in (RUNNING_CLUSTER, TERMINATED_CLUSTER):  # DBR 15.4 vs 14.3
        call(
            local_workspace,
            "POST",
            "/api/2.0/libraries/install",
            json={
                "cluster_id": cluster,
                "libraries": [{"whl": f"dbfs:/FileStore/wheels/{name}"}, {"pypi": {"package": "pyyaml"}}],
            },
        )
    call(local_workspace, "POST", "/api/2.0/clusters/start", json={"cluster_id": TERMINATED_CLUSTER})
    assert (
        local_workspace.library_statuses(TERMINATED_CLUSTER)[0]["status"] == "PENDING"
    )  # queued until the cluster runs

    def terminal(cluster):
        statuses = local_workspace.library_statuses(cluster)
        return statuses if all(s["status"] in ("INSTALLED", "FAILED") for s in statuses) else None

    new_runtime = wait_for(lambda: terminal(RUNNING_CLUSTER))
    assert (
        new_runtime[0]["status"] == "FAILED"
        and "DBFS library installations are not supported" in new_runtime[0]["messages"][0]
    )
    assert new_runtime[1]["status"] == "INSTALLED"
    old_runtime = wait_for(lambda: terminal(TERMINATED_CLUSTER))
    assert [s["status"] for s in old_runtime] == ["INSTALLED", "INSTALLED"]
    everything = call(local_workspace, "GET", "/api/2.0/libraries/all-cluster-statuses").json()["statuses"]
    assert {s["cluster_id"] for s in everything} == {RUNNING_CLUSTER, TERMINATED_CLUSTER}


def test_installed_wheel_is_a_snapshot_until_restart(local_workspace):
    """Identity is the spec: replacing the file behind an installed library changes nothing until a restart."""
    path = "/Volumes/main/default/libs/snap-1.0-py3-none-any.whl"
    local_workspace.put_file(path, make_wheel("snap", modules={"snap.py": "VALUE = 'one'\n"})[1])
    call(
        local_workspace,
        "POST",
        "/api/2.0/libraries/install",
        json={"cluster_id": RUNNING_CLUSTER, "libraries": [{"whl": path}]},
    )
    wait_for(lambda: local_workspace.library_statuses(RUNNING_CLUSTER)[0]["status"] == "INSTALLED")
    local_workspace.put_file(path, make_wheel("snap", modules={"snap.py": "VALUE = 'two'\n"})[1])
    call(
        local_workspace,
        "POST",
        "/api/2.0/workspace/import",
        json={
            "path": "/Shared/snap",
            "language": "PYTHON",
            "content": b64(b"import snap\ndbutils.notebook.exit(snap.VALUE)\n"),
        },
    )

    def run_once() -> str:
        run_id = call(
            local_workspace,
            "POST",
            "/api/2.1/jobs/runs/submit",
            json={
                "tasks": [
                    {
                        "task_key": "t",
                        "existing_cluster_id": RUNNING_CLUSTER,
                        "notebook_task": {"notebook_path": "/Shared/snap"},
                    }
                ]
            },
        ).json()["run_id"]
        task_id = run_terminal(local_workspace, run_id)["tasks"][0]["run_id"]
        return call(local_workspace, "GET", f"/api/2.1/jobs/runs/get-output?run_id={task_id}").json()[
            "notebook_output"
        ]["result"]

    assert run_once() == "one"
    call(local_workspace, "POST", "/api/2.0/clusters/restart", json={"cluster_id": RUNNING_CLUSTER})
    wait_for(lambda: local_workspace.library_statuses(RUNNING_CLUSTER)[0]["status"] == "INSTALLED")
    assert run_once() == "two"


# ---- jobs and runs ---------------------------------------------------------------------------------------------


def test_jobs_list_paging_update_and_22_task_pages(local_workspace):
    assert call(local_workspace, "GET", "/api/2.1/jobs/list").json() == {"has_more": False}  # jobs omitted when empty
    for limit in (0, 101):
        assert call(local_workspace, "GET", f"/api/2.1/jobs/list?limit={limit}").status_code == 400
    tasks = [{"task_key": f"t{i}", "notebook_task": {"notebook_path": "/Shared/x"}} for i in range(150)]
    job_id = call(local_workspace, "POST", "/api/2.1/jobs/create", json={"name": "big", "tasks": tasks}).json()[
        "job_id"
    ]
    for index in range(2):
        call(local_workspace, "POST", "/api/2.1/jobs/create", json={"name": f"job{index}"})
    page = call(local_workspace, "GET", "/api/2.1/jobs/list?limit=2").json()
    assert [j["job_id"] for j in page["jobs"]] == [job_id, job_id + 1] and page["has_more"] is True
    assert "tasks" not in page["jobs"][0]["settings"]  # expand_tasks=false
    rest = call(local_workspace, "GET", f"/api/2.1/jobs/list?limit=2&page_token={page['next_page_token']}").json()
    assert (
        [j["job_id"] for j in rest["jobs"]] == [job_id + 2] and rest["has_more"] is False and "prev_page_token" in rest
    )
    assert len(call(local_workspace, "GET", f"/api/2.1/jobs/get?job_id={job_id}").json()["settings"]["tasks"]) == 150
    first = call(local_workspace, "GET", f"/api/2.2/jobs/get?job_id={job_id}").json()
    assert len(first["settings"]["tasks"]) == 100
    second = call(
        local_workspace, "GET", f"/api/2.2/jobs/get?job_id={job_id}&page_token={first['next_page_token']}"
    ).json()
    assert len(second["settings"]["tasks"]) == 50 and "next_page_token" not in second
    update = {
        "job_id": job_id,
        "new_settings": {
            "tasks": [{"task_key": "t0", "notebook_task": {"notebook_path": "/Shared/y"}}],
            "tags": {"a": "b"},
        },
        "fields_to_remove": ["tasks/t1"],
    }
    assert call(local_workspace, "POST", "/api/2.1/jobs/update", json=update).ok
    settings = call(local_workspace, "GET", f"/api/2.1/jobs/get?job_id={job_id}").json()["settings"]
    assert len(settings["tasks"]) == 149 and settings["tasks"][0]["notebook_task"]["notebook_path"] == "/Shared/y"
    assert settings["tags"] == {"a": "b"} and settings["name"] == "big"
    reset = call(local_workspace, "POST", "/api/2.1/jobs/reset", json={"job_id": 999, "new_settings": {"name": "x"}})
    assert reset.json() == {"error_code": "INVALID_PARAMETER_VALUE", "message": "Job 999 does not exist."}


def test_multi_task_dependencies_timeouts_and_python_tasks(local_workspace):
    name, wheel = make_wheel(
        "tool",
        modules={
            "tool/__init__.py": "import sys\n\ndef main():\n    print('args', sys.argv[1:])\n    raise SystemExit(0 if sys.argv[1:] == ['--env=dev'] else 3)\n"
        },
        entry_points="[console_scripts]\ntool-main = tool:main\n",
    )
    local_workspace.put_file(f"/Volumes/main/default/libs/{name}", wheel)
    local_workspace.put_file("/Shared/scripts/main.py", b"import sys\nprint('hello from', sys.argv[1:])\n")
    local_workspace.script_run("/Shared/fail", result_state="FAILED", error="scripted failure")
    body = {
        "run_name": "graph",
        "tasks": [
            {
                "task_key": "script",
                "existing_cluster_id": RUNNING_CLUSTER,
                "spark_python_task": {"python_file": "/Workspace/Shared/scripts/main.py", "parameters": ["a", "b"]},
            },
            {
                "task_key": "wheel",
                "depends_on": [{"task_key": "script"}],
                "existing_cluster_id": RUNNING_CLUSTER,
                "python_wheel_task": {
                    "package_name": "tool",
                    "entry_point": "tool-main",
                    "named_parameters": {"env": "dev"},
                },
                "libraries": [{"whl": f"/Volumes/main/default/libs/{name}"}],
            },
            {
                "task_key": "fail",
                "existing_cluster_id": RUNNING_CLUSTER,
                "notebook_task": {"notebook_path": "/Shared/fail"},
            },
            {
                "task_key": "after_fail",
                "depends_on": [{"task_key": "fail"}],
                "existing_cluster_id": RUNNING_CLUSTER,
                "notebook_task": {"notebook_path": "/Shared/fail"},
            },
            {
                "task_key": "cleanup",
                "depends_on": [{"task_key": "fail"}],
                "run_if": "ALL_DONE",
                "existing_cluster_id": RUNNING_CLUSTER,
                "spark_python_task": {"python_file": "/Workspace/Shared/scripts/main.py"},
            },
        ],
    }
    run_id = call(local_workspace, "POST", "/api/2.1/jobs/runs/submit", json=body).json()["run_id"]
    run = run_terminal(local_workspace, run_id)
    states = {t["task_key"]: t["state"].get("result_state") for t in run["tasks"]}
    assert states == {
        "script": "SUCCESS",
        "wheel": "SUCCESS",
        "fail": "FAILED",
        "after_fail": "UPSTREAM_FAILED",
        "cleanup": "SUCCESS",
    }
    assert run["state"]["result_state"] == "FAILED" and run["status"]["state"] == "TERMINATED"
    script_id = run["tasks"][0]["run_id"]
    assert (
        "hello from ['a', 'b']"
        in call(local_workspace, "GET", f"/api/2.1/jobs/runs/get-output?run_id={script_id}").json()["logs"]
    )

    local_workspace.put_file("/Shared/spin.py", b"while True:\n    pass\n")
    timed = call(
        local_workspace,
        "POST",
        "/api/2.1/jobs/runs/submit",
        json={
            "tasks": [
                {
                    "task_key": "spin",
                    "timeout_seconds": 1,
                    "existing_cluster_id": RUNNING_CLUSTER,
                    "spark_python_task": {"python_file": "/Workspace/Shared/spin.py"},
                }
            ]
        },
    ).json()["run_id"]
    assert run_terminal(local_workspace, timed)["state"]["result_state"] == "TIMEDOUT"


def test_legacy_single_task_submit_and_runs_list(local_workspace):
    local_workspace.script_run("/Shared/legacy", result="done")
    run_id = call(
        local_workspace,
        "POST",
        "/api/2.0/jobs/runs/submit",
        json={
            "run_name": "legacy",
            "existing_cluster_id": RUNNING_CLUSTER,
            "notebook_task": {"notebook_path": "/Shared/legacy"},
        },
    ).json()["run_id"]
    run = run_terminal(local_workspace, run_id)
    assert run["state"]["result_state"] == "SUCCESS" and "tasks" not in run
    output = call(local_workspace, "GET", f"/api/2.0/jobs/runs/get-output?run_id={run_id}").json()
    assert output["notebook_output"] == {"result": "done", "truncated": False}
    listed = call(local_workspace, "GET", "/api/2.1/jobs/runs/list?completed_only=true").json()
    assert [r["run_id"] for r in listed["runs"]] == [run_id]
    missing = call(local_workspace, "GET", "/api/2.1/jobs/runs/get-output?run_id=12")
    assert missing.json() == {"error_code": "INVALID_PARAMETER_VALUE", "message": "Run 12 does not exist."}
    no_cluster = call(
        local_workspace,
        "POST",
        "/api/2.1/jobs/runs/submit",
        json={
            "tasks": [
                {"task_key": "x", "existing_cluster_id": "nope", "notebook_task": {"notebook_path": "/Shared/legacy"}}
            ]
        },
    )
    assert no_cluster.status_code == 400
    assert call(local_workspace, "POST", "/api/2.1/jobs/runs/submit", json={"run_name": "empty"}).status_code == 400


def test_run_on_a_cluster_in_error_is_an_internal_error(local_workspace):
    local_workspace.set_cluster_state(TERMINATED_CLUSTER, "ERROR")
    local_workspace.script_run("/Shared/any")
    run_id = call(
        local_workspace,
        "POST",
        "/api/2.1/jobs/runs/submit",
        json={
            "tasks": [
                {
                    "task_key": "x",
                    "existing_cluster_id": TERMINATED_CLUSTER,
                    "notebook_task": {"notebook_path": "/Shared/any"},
                }
            ]
        },
    ).json()["run_id"]
    run = run_terminal(local_workspace, run_id)
    assert run["state"]["life_cycle_state"] == "INTERNAL_ERROR"
    assert "unexpected state Error" in run["state"]["state_message"]


# ---- faults, rate limits, latency, request log, admin -----------------------------------------------------------


def test_scripted_faults_then_success(local_workspace):
    local_workspace.set_faults(
        "path=*/clusters/get,fault=503,skip=1,times=2; path=*/workspace/list,fault=429,retry_after=3,times=1"
    )
    url = f"/api/2.0/clusters/get?cluster_id={RUNNING_CLUSTER}"
    assert [call(local_workspace, "GET", url).status_code for _ in range(4)] == [200, 503, 503, 200]
    limited = call(local_workspace, "GET", "/api/2.0/workspace/list?path=/")
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "3"
    assert limited.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"
    assert [r.fault for r in local_workspace.api_requests()] == [None, "503", "503", None, "429"]


def test_connection_reset_fault(local_workspace):
    local_workspace.set_faults("path=*/workspace/mkdirs,method=POST,fault=reset,times=1")
    with pytest.raises(requests.ConnectionError):
        call(local_workspace, "POST", "/api/2.0/workspace/mkdirs", json={"path": "/Shared/r"})
    assert call(local_workspace, "POST", "/api/2.0/workspace/mkdirs", json={"path": "/Shared/r"}).ok
    assert [(r.status, r.fault) for r in local_workspace.api_requests()] == [(0, "reset"), (200, None)]


def test_random_faults_are_reproducible_with_a_seed():
    def statuses(seed: int) -> list[int]:
        with lw.LocalWorkspace(
            token=WORKSPACE_TOKEN, faults="path=*/clusters/list,fault=500,rate=0.5", seed=seed
        ) as ws:
            return [call(ws, "GET", "/api/2.0/clusters/list").status_code for _ in range(30)]

    first, again = statuses(7), statuses(7)
    assert first == again and 500 in first and 200 in first


def test_sdk_retries_through_429_and_503(local_workspace, workspace_client):
    local_workspace.set_faults(
        "path=*/clusters/get,fault=429,retry_after=0,times=1; path=*/clusters/get,fault=503,retry_after=0,times=1"
    )
    assert workspace_client.clusters.get(RUNNING_CLUSTER).cluster_id == RUNNING_CLUSTER
    assert [r.status for r in local_workspace.api_requests("GET", "*/clusters/get")] == [429, 503, 200]


def test_rate_limit_answers_429_with_retry_after(local_workspace):
    local_workspace.set_rate_limits(["*/workspace/get-status=1/min"])
    assert call(local_workspace, "GET", "/api/2.0/workspace/get-status?path=/").status_code == 200
    limited = call(local_workspace, "GET", "/api/2.0/workspace/get-status?path=/")
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    assert "RPC token bucket limit has been exceeded" in limited.json()["message"]
    assert (
        call(local_workspace, "GET", "/api/2.0/workspace/list?path=/").status_code == 200
    )  # other endpoints unaffected
    with pytest.raises(ValueError):
        parse_rate_limit("*/x=ten/s")


def test_latency_is_added_per_endpoint(local_workspace):
    local_workspace.set_latency({"*/workspace/list": 60})
    call(local_workspace, "GET", "/api/2.0/workspace/list?path=/")
    call(local_workspace, "GET", "/api/2.0/workspace/get-status?path=/")
    slow, fast = local_workspace.api_requests()
    # The log records which latency rule applied (no wall-clock assertion: a loaded machine proves nothing).
    assert (slow.path, slow.latency_ms) == ("/api/2.0/workspace/list", 60.0)
    assert (fast.path, fast.latency_ms) == ("/api/2.0/workspace/get-status", 0.0)
    local_workspace.set_latency(["5", "*/workspace/list=60"])
    call(local_workspace, "GET", "/api/2.0/workspace/list?path=/")
    call(local_workspace, "GET", "/api/2.0/workspace/get-status?path=/")
    assert [r.latency_ms for r in local_workspace.api_requests()[-2:]] == [60.0, 5.0]


def test_idle_and_half_sent_connections_are_closed_after_the_client_timeout():
    """Without a socket timeout an idle keep-alive or half-open client holds its handler thread forever."""
    import socket

    with lw.LocalWorkspace(token=WORKSPACE_TOKEN, clusters=[], client_timeout=0.2) as ws:
        host, port = ws.url.removeprefix("http://").split(":")
        for sent in (b"", b"GET /api/2.0/clusters/list HTTP/1.1\r\nHost: x\r\n"):  # nothing; headers never ended
            with socket.create_connection((host, int(port)), timeout=30) as client:
                client.sendall(sent)
                assert client.recv(1024) == b""  # the server closed it (a client timeout would raise instead)
        # ... and the workspace still serves.
        assert call(ws, "GET", "/api/2.0/clusters/list").status_code == 200
    assert lw.LocalWorkspace(clusters=[]).client_timeout == 120.0


def test_request_log_and_admin_over_http(local_workspace):
    call(local_workspace, "GET", "/api/2.0/workspace/list?path=/Shared")
    log = requests.get(local_workspace.url + "/__local__/requests", timeout=10).json()["requests"]
    entry = [r for r in log if r["path"] == "/api/2.0/workspace/list"][0]
    assert (
        entry["method"] == "GET"
        and entry["status"] == 200
        and entry["query"] == "path=/Shared"
        and entry["duration"] >= 0
    )
    assert WORKSPACE_TOKEN not in json.dumps(log)
    assert requests.delete(local_workspace.url + "/__local__/requests", timeout=10).ok
    assert local_workspace.requests == []
    admin = local_workspace.url + "/__local__/"
    assert requests.post(admin + "faults", json={"spec": "path=*/clusters/list,fault=500,times=1"}, timeout=10).ok
    assert call(local_workspace, "GET", "/api/2.0/clusters/list").status_code == 500
    assert requests.post(
        admin + "script-run", json={"notebook_path": "/Shared/http", "result": "via-http"}, timeout=10
    ).ok
    assert requests.post(
        admin + "clusters", json={"clusters": [{"cluster_id": "0202-000000-extra", "state": "RUNNING"}]}, timeout=10
    ).ok
    assert requests.post(
        admin + "cluster-state", json={"cluster_id": "0202-000000-extra", "state": "TERMINATED"}, timeout=10
    ).ok
    state = requests.get(admin + "state", timeout=10).json()
    assert state["clusters"]["0202-000000-extra"] == "TERMINATED" and state["scripted"] == ["/Shared/http"]
    assert requests.post(admin + "faults", json={"spec": "fault=teapot"}, timeout=10).status_code == 400
    assert requests.post(admin + "reset", timeout=10).ok
    assert set(requests.get(admin + "state", timeout=10).json()["clusters"]) == {RUNNING_CLUSTER, TERMINATED_CLUSTER}


def test_fault_spec_errors_name_the_bad_field():
    for spec, fragment in [
        ("fault=418", "fault=418"),
        ("path", "not key=value"),
        ("rate=2", "rate=2"),
        ("colour=red", "colour"),
    ]:
        with pytest.raises(ValueError, match=fragment):
            parse_faults(spec)
    rule = parse_faults("path=*/dbfs/put, method=post, fault=429")[0]
    assert (rule.path, rule.method, rule.retry_after) == ("*/dbfs/put", "POST", 1)


# ---- CLI and persistence -------------------------------------------------------------------------------------


def start_cli(*args: str, env: dict | None = None) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, str(SCRIPTS / "local_workspace.py"), "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env or script_env(),
    )
    url = process.stdout.readline().strip()
    return process, url


def stop_cli(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)


def test_cli_prints_url_first_and_serves(tmp_path):
    seed = tmp_path / "clusters.json"
    seed.write_text(json.dumps([{"cluster_id": "0303-000000-seeded", "cluster_name": "from-file", "state": "RUNNING"}]))
    process, url = start_cli(
        "--clusters", str(seed), "--time-scale", "0", env=script_env(LOCAL_WORKSPACE_TOKEN="dapi-from-env")
    )
    try:
        assert url.startswith("http://127.0.0.1:")
        clusters = requests.get(
            url + "/api/2.0/clusters/list", headers={"Authorization": "Bearer dapi-from-env"}, timeout=10
        ).json()["clusters"]
        assert [(c["cluster_id"], c["cluster_name"]) for c in clusters] == [("0303-000000-seeded", "from-file")]
    finally:
        stop_cli(process)
    assert process.returncode == 0
    assert "dapi-from-env" not in process.stdout.read() + process.stderr.read()


@pytest.mark.parametrize(
    "flag, value, says",
    [
        ("--latency-ms", "abc", "--latency-ms: latency 'abc': MS: 'abc' is not a number"),
        ("--latency-ms", "*/x=abc", "--latency-ms: latency '*/x=abc'"),
        ("--latency-ms", "-5", "--latency-ms: latency '-5': MS must be >= 0"),
        ("--rate-limit", "*/x=ten/s", "--rate-limit: rate limit '*/x=ten/s': N: 'ten' is not a number"),
        ("--faults", "fault=500,times=two", "--faults: times=two: 'two' is not a whole number"),
        ("--faults", "fault=500,rate=x", "--faults: rate=x: 'x' is not a number"),
        ("--faults", "fault=429,retry_after=soon", "--faults: retry_after=soon"),
        ("--client-timeout", "0", "--client-timeout must be a positive number"),
        ("--time-scale", "fast", "argument --time-scale: invalid float value"),
    ],
)
def test_cli_bad_values_name_the_flag_and_give_an_example(flag, value, says):
    line = assert_one_line_error(run_script("local_workspace.py", f"{flag}={value}", timeout=30), contains=says)
    assert "could not convert" not in line and "invalid literal" not in line


def test_cli_rejects_bad_flags(tmp_path):
    assert_one_line_error(run_script("local_workspace.py", "--faults", "fault=418", timeout=30), contains="fault=418")
    assert_one_line_error(run_script("local_workspace.py", "--rate-limit", "nope", timeout=30), contains="nope")
    assert_one_line_error(
        run_script("local_workspace.py", "--clusters", str(tmp_path / "missing.json"), timeout=30),
        contains="missing.json",
    )
    broken = tmp_path / "broken-state"
    broken.mkdir()
    (broken / "state.json").write_text('{"version": 1}')
    assert_one_line_error(
        run_script("local_workspace.py", "--state-dir", str(broken), timeout=30), contains="cannot load state"
    )
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert_one_line_error(
            run_script("local_workspace.py", "--port", str(port), timeout=30),
            contains=f"cannot listen on 127.0.0.1:{port}",
        )


def test_state_dir_persists_between_runs(tmp_path):
    state = tmp_path / "state"
    with lw.LocalWorkspace(token=WORKSPACE_TOKEN, state_dir=state, time_scale=0) as ws:
        call(
            ws,
            "POST",
            "/api/2.0/workspace/import",
            json={"path": "/Shared/kept", "language": "PYTHON", "content": b64(b"x = 1")},
        )
        call(ws, "POST", "/api/2.0/dbfs/put", json={"path": "/FileStore/kept.txt", "contents": b64(b"dbfs")})
        call(ws, "PUT", "/api/2.0/fs/files/Volumes/c/s/v/kept.bin", data=b"volume")
        job_id = call(ws, "POST", "/api/2.1/jobs/create", json={"name": "kept"}).json()["job_id"]
        call(ws, "POST", "/api/2.0/clusters/start", json={"cluster_id": TERMINATED_CLUSTER})
        ws.script_run("/Shared/kept", result="ok")
        run_id = call(
            ws,
            "POST",
            "/api/2.1/jobs/runs/submit",
            json={
                "tasks": [
                    {
                        "task_key": "k",
                        "existing_cluster_id": RUNNING_CLUSTER,
                        "notebook_task": {"notebook_path": "/Shared/kept"},
                    }
                ]
            },
        ).json()["run_id"]
        ws.wait_run(run_id, timeout=60)
    assert sorted(p.name for p in state.iterdir()) == ["blobs", "state.json"]  # no temp files left behind
    assert WORKSPACE_TOKEN not in (state / "state.json").read_text()
    with lw.LocalWorkspace(token=WORKSPACE_TOKEN, state_dir=state) as ws:
        assert ws.workspace_file("/Shared/kept") == b"x = 1"
        assert ws.dbfs_file("/FileStore/kept.txt") == b"dbfs"
        assert ws.volume_file("/Volumes/c/s/v/kept.bin") == b"volume"
        assert call(ws, "GET", f"/api/2.1/jobs/get?job_id={job_id}").json()["settings"]["name"] == "kept"
        assert ws.cluster(TERMINATED_CLUSTER)["state"] == "RUNNING"
        assert ws.run(run_id)["state"]["result_state"] == "SUCCESS"
        new_job = call(ws, "POST", "/api/2.1/jobs/create", json={"name": "next"}).json()["job_id"]
        assert new_job == job_id + 1  # ids continue, never reused


def test_cli_state_dir_round_trip(tmp_path):
    state = tmp_path / "cli-state"
    process, url = start_cli("--state-dir", str(state), env=script_env(LOCAL_WORKSPACE_TOKEN=WORKSPACE_TOKEN))
    try:
        assert requests.post(
            url + "/api/2.0/workspace/mkdirs", headers=AUTH, json={"path": "/Shared/cli"}, timeout=10
        ).ok
    finally:
        stop_cli(process)
    process, url = start_cli("--state-dir", str(state), env=script_env(LOCAL_WORKSPACE_TOKEN=WORKSPACE_TOKEN))
    try:
        status = requests.get(url + "/api/2.0/workspace/get-status?path=/Shared/cli", headers=AUTH, timeout=10).json()
        assert status["object_type"] == "DIRECTORY"
    finally:
        stop_cli(process)


@pytest.mark.slow
def test_notebook_spark_is_a_local_session_created_on_first_use(local_workspace):
    pytest.importorskip("pyspark")
    source = (
        b"import sys\nbefore = 'pyspark' in sys.modules\ndbutils.notebook.exit(f'{before} {spark.range(5).count()}')\n"
    )
    call(
        local_workspace,
        "POST",
        "/api/2.0/workspace/import",
        json={"path": "/Shared/spark", "language": "PYTHON", "content": b64(source)},
    )
    run_id = call(
        local_workspace,
        "POST",
        "/api/2.1/jobs/runs/submit",
        json={
            "tasks": [
                {
                    "task_key": "spark",
                    "existing_cluster_id": RUNNING_CLUSTER,
                    "notebook_task": {"notebook_path": "/Shared/spark"},
                }
            ]
        },
    ).json()["run_id"]
    task_id = local_workspace.wait_run(run_id, timeout=180)["tasks"][0]["run_id"]
    output = call(local_workspace, "GET", f"/api/2.1/jobs/runs/get-output?run_id={task_id}").json()
    assert output["notebook_output"]["result"] == "False 5", output


# ---- more documented behaviours -------------------------------------------------------------------------------


def test_more_workspace_and_dbfs_behaviours(local_workspace):
    # New-CLI workspace-files endpoints: raw body, AUTO detection, parents must exist.
    call(local_workspace, "POST", "/api/2.0/workspace/mkdirs", json={"path": "/Shared/wf"})
    assert call(
        local_workspace,
        "POST",
        "/api/2.0/workspace-files/import-file/Shared/wf/conf.yml?overwrite=true",
        data=b"a: 1\n",
    ).ok
    assert call(
        local_workspace,
        "POST",
        "/api/2.0/workspace-files/import-file/Shared/wf/nb.py",
        data=b"# Databricks notebook source\nx = 1\n",
    ).ok
    assert local_workspace.workspace_object("/Shared/wf/nb")["object_type"] == "NOTEBOOK"
    assert call(local_workspace, "GET", "/api/2.0/workspace-files/Shared/wf/conf.yml").content == b"a: 1\n"
    assert (
        call(local_workspace, "POST", "/api/2.0/workspace-files/import-file/Shared/none/x.txt", data=b"x").status_code
        == 404
    )
    # Files API writes have no 10 MB limit; exporting such a file as JSON hits MAX_NOTEBOOK_SIZE_EXCEEDED.
    big = b"0" * (10 * 1024 * 1024 + 10)
    assert (
        call(
            local_workspace, "PUT", "/api/2.0/fs/files/Workspace/Shared/wf/big.bin", data=iter([big[:5], big[5:]])
        ).status_code
        == 204
    )  # chunked
    assert (
        call(local_workspace, "GET", "/api/2.0/workspace/export?path=/Shared/wf/big.bin").json()["error_code"]
        == "MAX_NOTEBOOK_SIZE_EXCEEDED"
    )
    assert len(
        call(local_workspace, "GET", "/api/2.0/workspace/export?path=/Shared/wf/big.bin&direct_download=true").content
    ) == len(big)
    head = call(local_workspace, "HEAD", "/api/2.0/workspace/get-status?path=/Shared/wf")
    assert head.status_code == 200 and head.content == b""
    # DBFS: a file blocks mkdirs below it; deleting a missing path is 404 (200 with dbfs_delete_missing_ok).
    local_workspace.put_file("dbfs:/tmp/file", b"x")
    assert (
        call(local_workspace, "POST", "/api/2.0/dbfs/mkdirs", json={"path": "/tmp/file/sub"}).json()["error_code"]
        == "RESOURCE_ALREADY_EXISTS"
    )
    assert call(local_workspace, "POST", "/api/2.0/dbfs/delete", json={"path": "/tmp/missing"}).status_code == 404
    with lw.LocalWorkspace(token=WORKSPACE_TOKEN, dbfs_delete_missing_ok=True, clusters=[]) as lenient:
        assert call(lenient, "POST", "/api/2.0/dbfs/delete", json={"path": "/tmp/missing"}).json() == {}


def test_more_cluster_and_library_behaviours(local_workspace):
    created = call(
        local_workspace,
        "POST",
        "/api/2.1/clusters/create",
        json={"cluster_name": "new", "spark_version": "15.4.x-scala2.12", "num_workers": 0},
    ).json()["cluster_id"]
    assert local_workspace.cluster(created)["state"] == "PENDING"
    wait_for(lambda: local_workspace.cluster(created)["state"] == "RUNNING")
    assert (
        call(local_workspace, "POST", "/api/2.1/clusters/create", json={"cluster_name": "no version"}).status_code
        == 400
    )
    update = {
        "cluster_id": TERMINATED_CLUSTER,
        "update_mask": "num_workers,spark_conf",
        "cluster": {"num_workers": 4, "spark_conf": {"a": "b"}},
    }
    assert call(local_workspace, "POST", "/api/2.1/clusters/update", json=update).ok
    updated = local_workspace.cluster(TERMINATED_CLUSTER)
    assert (updated["num_workers"], updated["spark_conf"], updated["cluster_name"]) == (4, {"a": "b"}, "ci-cd-legacy")
    bad_mask = call(local_workspace, "POST", "/api/2.1/clusters/update", json={**update, "update_mask": "state"})
    assert bad_mask.status_code == 400
    assert call(
        local_workspace,
        "POST",
        "/api/2.0/clusters/edit",
        json={"cluster_id": created, "spark_version": "15.4.x-scala2.12"},
    ).ok
    assert local_workspace.cluster(created)["state"] == "RESTARTING"  # editing a running cluster restarts it

    local_workspace.put_file("/Volumes/main/default/libs/badname.zip", b"PK")
    local_workspace.put_file("dbfs:/FileStore/reqs.txt", b"pyyaml\n")
    libraries = [
        {"egg": "/Volumes/main/default/libs/old.egg"},
        {"requirements": "dbfs:/FileStore/reqs.txt"},
        {"whl": "abfss://libs@account.dfs.core.windows.net/x-1.0-py3-none-any.whl"},
        {"whl": "/Volumes/main/default/libs/badname.zip"},
    ]
    call(
        local_workspace,
        "POST",
        "/api/2.0/libraries/install",
        json={"cluster_id": RUNNING_CLUSTER, "libraries": libraries},
    )
    statuses = wait_for(
        lambda: (lambda s: s if all(x["status"] in ("INSTALLED", "FAILED") for x in s) else None)(
            local_workspace.library_statuses(RUNNING_CLUSTER)
        )
    )
    assert [s["status"] for s in statuses] == ["FAILED", "FAILED", "INSTALLED", "FAILED"]
    assert "Egg libraries are not supported" in statuses[0]["messages"][0]
    # Uninstall, then install again before a restart: the pending removal is cancelled.
    abfss = [libraries[2]]
    call(
        local_workspace,
        "POST",
        "/api/2.0/libraries/uninstall",
        json={"cluster_id": RUNNING_CLUSTER, "libraries": abfss},
    )
    assert (
        local_workspace.library_statuses(RUNNING_CLUSTER)[-1]["status"] == "UNINSTALL_ON_RESTART"
    )  # removals listed last
    call(
        local_workspace, "POST", "/api/2.0/libraries/install", json={"cluster_id": RUNNING_CLUSTER, "libraries": abfss}
    )
    assert [s["status"] for s in local_workspace.library_statuses(RUNNING_CLUSTER)].count("UNINSTALL_ON_RESTART") == 0


def test_more_run_behaviours(local_workspace, monkeypatch):
    monkeypatch.setenv("DATABRICKS_TOKEN", WORKSPACE_TOKEN)  # must not leak into runs
    local_workspace.seed_cluster(
        {
            "cluster_id": "0404-000000-envvars",
            "state": "RUNNING",
            "spark_version": "13.3.x-scala2.12",
            "spark_env_vars": {"PIPELINE_ENV": "dev"},
        }
    )
    source = (
        b"import os\ndbutils.widgets.text('mode', 'default-mode')\n"
        b"names = sorted(k for k in os.environ if k.startswith('DATABRICKS'))\n"
        b"dbutils.notebook.exit(','.join(names) + '|' + os.environ['DATABRICKS_RUNTIME_VERSION'] + '|' + os.environ['PIPELINE_ENV'] + '|' + dbutils.widgets.get('mode'))\n"
    )
    call(
        local_workspace,
        "POST",
        "/api/2.0/workspace/import",
        json={"path": "/Shared/env", "language": "PYTHON", "content": b64(source)},
    )
    call(
        local_workspace,
        "POST",
        "/api/2.0/workspace/import",
        json={"path": "/Shared/widget", "language": "PYTHON", "content": b64(b"dbutils.widgets.get('missing')\n")},
    )

    def submit(notebook: str, cluster: str = "0404-000000-envvars") -> dict:
        run_id = call(
            local_workspace,
            "POST",
            "/api/2.1/jobs/runs/submit",
            json={
                "tasks": [
                    {"task_key": "t", "existing_cluster_id": cluster, "notebook_task": {"notebook_path": notebook}}
                ]
            },
        ).json()["run_id"]
        task_id = run_terminal(local_workspace, run_id)["tasks"][0]["run_id"]
        return call(local_workspace, "GET", f"/api/2.1/jobs/runs/get-output?run_id={task_id}").json()

    assert submit("/Shared/env")["notebook_output"]["result"] == "DATABRICKS_RUNTIME_VERSION|13.3|dev|default-mode"
    missing = submit("/Shared/widget")
    assert missing["error"] == "InputWidgetNotDefined: No input widget named missing is defined"

    # run-now: idempotency token, python_params replace the task's parameters.
    local_workspace.put_file("/Shared/args.py", b"import sys\nprint('argv', sys.argv[1:])\n")
    job_id = call(
        local_workspace,
        "POST",
        "/api/2.1/jobs/create",
        json={
            "name": "args",
            "tasks": [
                {
                    "task_key": "a",
                    "existing_cluster_id": RUNNING_CLUSTER,
                    "spark_python_task": {"python_file": "/Workspace/Shared/args.py", "parameters": ["task"]},
                }
            ],
        },
    ).json()["job_id"]
    first = call(
        local_workspace,
        "POST",
        "/api/2.1/jobs/run-now",
        json={"job_id": job_id, "python_params": ["override"], "idempotency_token": "t-1"},
    ).json()
    again = call(
        local_workspace, "POST", "/api/2.1/jobs/run-now", json={"job_id": job_id, "idempotency_token": "t-1"}
    ).json()
    assert first == again
    run = run_terminal(local_workspace, first["run_id"])
    logs = call(local_workspace, "GET", f"/api/2.1/jobs/runs/get-output?run_id={run['tasks'][0]['run_id']}").json()[
        "logs"
    ]
    assert "argv ['override']" in logs and run["run_type"] == "JOB_RUN" and run["job_id"] == job_id
    assert call(
        local_workspace, "POST", "/api/2.1/jobs/runs/cancel", json={"run_id": first["run_id"]}
    ).ok  # terminal: no-op
    assert local_workspace.run(first["run_id"])["state"]["result_state"] == "SUCCESS"
    listed = call(local_workspace, "GET", f"/api/2.1/jobs/runs/list?job_id={job_id}&limit=1").json()
    assert [r["run_id"] for r in listed["runs"]] == [first["run_id"]] and listed["has_more"] is False
    assert call(local_workspace, "GET", "/api/2.1/jobs/runs/list?limit=26").status_code == 400
    assert call(local_workspace, "POST", "/api/2.1/jobs/runs/delete", json={"run_id": first["run_id"]}).ok
    assert call(local_workspace, "GET", f"/api/2.1/jobs/runs/get?run_id={first['run_id']}").status_code == 400


def test_runs_get_22_pages_tasks(local_workspace):
    local_workspace.script_run("/Shared/many")
    tasks = [
        {
            "task_key": f"t{i}",
            "existing_cluster_id": RUNNING_CLUSTER,
            "notebook_task": {"notebook_path": "/Shared/many"},
        }
        for i in range(120)
    ]
    run_id = call(local_workspace, "POST", "/api/2.2/jobs/runs/submit", json={"tasks": tasks}).json()["run_id"]
    assert run_terminal(local_workspace, run_id)["state"]["result_state"] == "SUCCESS"
    first = call(local_workspace, "GET", f"/api/2.2/jobs/runs/get?run_id={run_id}").json()
    second = call(
        local_workspace, "GET", f"/api/2.2/jobs/runs/get?run_id={run_id}&page_token={first['next_page_token']}"
    ).json()
    assert len(first["tasks"]) == 100 and len(second["tasks"]) == 20
    assert len(call(local_workspace, "GET", f"/api/2.1/jobs/runs/get?run_id={run_id}").json()["tasks"]) == 120


def entra_token(claims: dict) -> str:
    """An unsigned JWT: the emulator reads the claims, it does not verify signatures."""

    def segment(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{segment({'alg': 'none', 'typ': 'JWT'})}.{segment(claims)}.signature"


def test_entra_id_tokens_for_service_principals():
    app_id = "11111111-2222-3333-4444-555555555555"
    resource_id = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Databricks/workspaces/dev"
    good = {"aud": AZURE_DATABRICKS_APP_ID, "appid": app_id, "exp": time.time() + 3600}
    with lw.LocalWorkspace(token=WORKSPACE_TOKEN, clusters=[], azure_resource_id=resource_id) as ws:

        def me(claims: dict, **headers: str) -> requests.Response:
            return requests.get(
                ws.url + "/api/2.0/preview/scim/v2/Me",
                timeout=10,
                headers={"Authorization": f"Bearer {entra_token(claims)}", **headers},
            )

        assert me(good).json() == {"error_code": 403, "message": "Invalid access token."}  # not a workspace member yet
        wrong_audience = me({**good, "aud": "https://management.core.windows.net/"})
        assert wrong_audience.status_code == 401
        expiring = me({**good, "exp": time.time() + 10})
        assert expiring.json() == {"error_code": 403, "message": "Token is expiring within 30 seconds. (token expired)"}
        management = {
            "X-Databricks-Azure-SP-Management-Token": entra_token({"aud": "https://management.core.windows.net/"})
        }
        wrong_workspace = me(good, **management, **{"X-Databricks-Azure-Workspace-Resource-Id": resource_id + "x"})
        assert wrong_workspace.status_code == 404 and "could not be found" in wrong_workspace.json()["message"]
        first_login = me(good, **management, **{"X-Databricks-Azure-Workspace-Resource-Id": resource_id})
        assert first_login.status_code == 200 and first_login.json()["userName"] == app_id
        assert me({**good, "aud": f"api://{AZURE_DATABRICKS_APP_ID}"}).json()["userName"] == app_id  # now a member


def _cli_018_path() -> str | None:
    """Where databricks-cli 0.18 can be imported from: $CLI018_PATH (a pip --target folder) or sys.path."""
    import importlib.util

    folder = os.environ.get("CLI018_PATH")
    if folder and os.path.isdir(os.path.join(folder, "databricks_cli")):
        return folder
    return "" if importlib.util.find_spec("databricks_cli") else None


def test_legacy_databricks_cli_018_import_dir_and_fs_cp(tmp_path):
    """Optional fidelity (contract 5.2): the archived CLI drops the port, so the emulator listens on 127.0.0.2:80.

    Runs when databricks-cli 0.18 is importable (e.g. `pip install --target DIR databricks-cli==0.18.0` and
    CLI018_PATH=DIR) and port 80 can be bound; skipped otherwise."""
    cli_path = _cli_018_path()
    if cli_path is None:
        pytest.skip("databricks-cli 0.18 is not installed (set CLI018_PATH to a pip --target folder)")
    try:
        ws = lw.LocalWorkspace(token=WORKSPACE_TOKEN, host="127.0.0.2", port=80, time_scale=0).start()
    except OSError as error:
        pytest.skip(f"cannot listen on 127.0.0.2:80: {error}")
    try:
        source = tmp_path / "src"
        (source / "sub").mkdir(parents=True)
        (source / "a.py").write_text("# Databricks notebook source\nprint(1)\n")
        (source / "sub" / "q.sql").write_text("select 1")
        (source / "README.md").write_text("not a notebook")
        wheel = tmp_path / "big.whl"
        wheel.write_bytes(os.urandom(3 * 1024 * 1024))  # one multipart put: no 1 MB limit on file parts
        env = script_env(
            DATABRICKS_HOST="http://127.0.0.2", DATABRICKS_TOKEN=WORKSPACE_TOKEN, PYTHONPATH=cli_path or None
        )

        def cli(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run(
                [sys.executable, "-m", "databricks_cli.cli", *args],
                env=env,
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=120,
            )

        assert cli("workspace", "import_dir", str(source), "/Shared/cli", "-o").returncode == 0
        assert ws.workspace_object("/Shared/cli/a")["object_type"] == "NOTEBOOK"  # extension stripped
        assert ws.workspace_object("/Shared/cli/sub/q")["language"] == "SQL"
        assert ws.workspace_object("/Shared/cli/README.md") is None  # skipped by the CLI
        assert cli("fs", "cp", str(wheel), "dbfs:/FileStore/jars/big.whl").returncode == 0
        assert ws.dbfs_file("/FileStore/jars/big.whl") == wheel.read_bytes()
        refused = cli("fs", "cp", str(wheel), "dbfs:/FileStore/jars/big.whl")  # no --overwrite: the server refuses
        assert refused.returncode != 0 and "RESOURCE_ALREADY_EXISTS" in refused.stdout + refused.stderr
        assert cli("fs", "mkdirs", "dbfs:/FileStore/jars2").returncode == 0
        assert (
            cli("fs", "cp", str(source / "a.py"), "dbfs:/FileStore/jars2/").returncode == 0
        )  # trailing slash: into the folder
        assert ws.dbfs_file("/FileStore/jars2/a.py") is not None
        calls = [(r.method, r.path.split("/api/2.0/")[-1], r.status) for r in ws.api_requests(None, "*/dbfs/*")][:2]
        assert calls == [("GET", "dbfs/get-status", 404), ("POST", "dbfs/put", 200)]
    finally:
        ws.stop()
