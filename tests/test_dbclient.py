"""The Databricks client (`cicdkit.dbclient`) against the local workspace: retries, budget, idempotency, timeouts,
errors, rate limits, auth selection, and that the token never shows up anywhere; and its retry classifier and
policy on their own, on a fake clock."""

from __future__ import annotations

import logging
import threading
import time
from urllib.parse import urlsplit

import pytest
from databricks_fixtures import DBX_TOKEN

from cicdkit.errors import (
    ConfigError,
    ConnectionFailed,
    InputError,
    PermissionDenied,
    ResourceAlreadyExists,
    ResourceDoesNotExist,
    TemporarilyUnavailable,
    TooManyRequests,
    Unauthenticated,
    UsageError,
    WaitTimedOut,
)

STATUS = "/api/2.0/workspace/get-status"


def calls(ws, path_suffix, method=None):
    return [r for r in ws.requests if r.path.endswith(path_suffix) and (method is None or r.method == method)]


def test_429_with_retry_after_and_503_are_retried_until_success(dbx_workspace, dbx_client):
    ws = dbx_workspace(
        faults="path=*/workspace/mkdirs,fault=429,times=2,retry_after=0; path=*/workspace/get-status,fault=503,times=2"
    )
    client = dbx_client(ws)
    client.workspace.mkdirs("/Shared/retry")  # a POST: 429 means "not processed", so it is retried too
    assert client.workspace.get_status("/Shared/retry")["object_type"] == "DIRECTORY"
    assert [r.status for r in calls(ws, "/workspace/mkdirs")] == [429, 429, 200]
    assert [r.status for r in calls(ws, "/workspace/get-status")] == [503, 503, 200]
    assert client.stats.retries == 4 and client.stats.throttled == 2


def test_retry_after_longer_than_the_budget_fails_at_once_with_a_clear_error(dbx_workspace, dbx_client):
    ws = dbx_workspace(faults="path=*/workspace/get-status,fault=429,retry_after=30")
    client = dbx_client(ws, retry_budget_seconds=5)
    with pytest.raises(TooManyRequests) as caught:
        client.workspace.get_status("/Shared")
    # Honouring Retry-After: the client does not hammer the workspace inside the 30 s it was told to wait.
    assert len(calls(ws, "/workspace/get-status")) == 1
    assert "429" in caught.value.one_line() and "GET /api/2.0/workspace/get-status" in caught.value.one_line()


def test_budget_exhaustion_says_how_many_attempts(dbx_workspace, dbx_client):
    ws = dbx_workspace(faults="path=*/workspace/get-status,fault=503")
    client = dbx_client(ws, retry_budget_seconds=0.5)
    with pytest.raises(TemporarilyUnavailable) as caught:
        client.workspace.get_status("/Shared")
    attempts = len(calls(ws, "/workspace/get-status"))
    assert attempts > 1
    assert f"gave up after {attempts} attempts" in caught.value.one_line()
    assert "retry budget 0.5s" in caught.value.one_line()


def test_connection_reset_is_retried_for_idempotent_calls_only(dbx_workspace, dbx_client):
    ws = dbx_workspace(
        faults="path=*/workspace/get-status,fault=reset,times=1; path=*/workspace/import,fault=reset,times=1"
    )
    client = dbx_client(ws)
    client.workspace.mkdirs("/Shared/x")
    assert client.workspace.get_status("/Shared/x")["object_type"] == "DIRECTORY"
    assert len(calls(ws, "/workspace/get-status")) == 2
    # Import without overwrite is not idempotent: a lost answer is reported, never blindly repeated.
    with pytest.raises(ConnectionFailed):
        client.workspace.import_("/Shared/x/nb", b"print(1)\n", language="PYTHON", overwrite=False)
    assert len(calls(ws, "/workspace/import")) == 1
    assert ws.workspace_object("/Shared/x/nb") is None
    # With overwrite it is idempotent and retried.
    client.workspace.import_("/Shared/x/nb", b"print(2)\n", language="PYTHON", overwrite=True)
    assert b"print(2)" in client.workspace.export("/Shared/x/nb")


def test_non_idempotent_500_is_not_retried_but_idempotent_is(dbx_workspace, dbx_client):
    from cicdkit.errors import InternalError

    ws = dbx_workspace(faults="path=*/workspace/import,fault=500,times=1; path=*/workspace/list,fault=500,times=1")
    client = dbx_client(ws)
    with pytest.raises(InternalError):
        client.workspace.import_("/Shared/a", b"x", format="RAW", overwrite=False)
    assert len(calls(ws, "/workspace/import")) == 1
    assert isinstance(client.workspace.list("/Shared"), list)
    assert [r.status for r in calls(ws, "/workspace/list")] == [500, 200]


def test_read_timeout_is_reported_as_a_timeout(dbx_workspace, dbx_client):
    ws = dbx_workspace(latency_ms=1500)
    client = dbx_client(ws, timeout=(2, 0.3), retry_budget_seconds=0.2)
    with pytest.raises(ConnectionFailed, match="timed out"):
        client.workspace.get_status("/Shared")


def test_error_mapping_including_the_legacy_400_for_missing_clusters(dbx_workspace, dbx_client):
    ws = dbx_workspace()
    client = dbx_client(ws)
    with pytest.raises(ResourceDoesNotExist) as missing:
        client.workspace.get_status("/Shared/nope")
    assert missing.value.status == 404 and missing.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert missing.value.method == "GET" and missing.value.path == STATUS
    client.workspace.import_("/Shared/f.txt", b"x", format="RAW")
    with pytest.raises(ResourceAlreadyExists):
        client.workspace.import_("/Shared/f.txt", b"x", format="RAW", overwrite=False)
    with pytest.raises(ResourceDoesNotExist) as cluster:
        client.clusters.get("0000-000000-nothere")
    assert cluster.value.status == 400 and cluster.value.error_code == "INVALID_PARAMETER_VALUE"


def test_wrong_or_missing_token_reads_well_and_never_shows_the_token(dbx_workspace, dbx, caplog):
    caplog.set_level(logging.DEBUG)
    ws = dbx_workspace()
    wrong = "dapi-wrong-token-0123456789"
    client = dbx.connect(host=ws.url, environ={"DATABRICKS_TOKEN": wrong})
    with pytest.raises(PermissionDenied) as denied:
        client.me()
    text = denied.value.one_line()
    assert "DATABRICKS_TOKEN" in text and wrong not in text and wrong not in repr(denied.value)
    assert wrong not in repr(client) and wrong not in repr(client.auth)

    class NoCredential(dbx.Auth):
        def headers(self):
            return {}

    anonymous = dbx.Client(ws.url, NoCredential("nothing"))
    with pytest.raises(Unauthenticated) as unauthenticated:
        anonymous.me()
    assert "401" in unauthenticated.value.one_line() and "DATABRICKS_TOKEN" in unauthenticated.value.one_line()
    with pytest.raises(ConfigError, match="DATABRICKS_TOKEN"):
        dbx.connect(host=ws.url, auth="pat", environ={})
    assert wrong not in caplog.text and DBX_TOKEN not in caplog.text


def test_wrong_host_fails_fast(dbx):
    client = dbx.connect(host="http://127.0.0.1:9", environ={"DATABRICKS_TOKEN": DBX_TOKEN}, backoff=(0.01, 0.02))
    with pytest.raises(ConnectionFailed, match="127.0.0.1:9") as caught:
        client.me()
    assert "gave up after 3 attempts" in caught.value.one_line() and DBX_TOKEN not in caught.value.one_line()


@pytest.mark.parametrize(
    "host, expected",
    [
        ("http://127.0.0.1:8765", "start it with: python ci_cd_scripts/local_workspace.py --port 8765 ("),
        ("http://localhost:5000", "start it with: python ci_cd_scripts/local_workspace.py --port 5000 ("),
        ("http://127.0.0.2", "start it with: python ci_cd_scripts/local_workspace.py --host 127.0.0.2 --port 80 ("),
        ("http://[::1]:8443", "--port 8443 and use http://127.0.0.1:8443 (it serves plain http on IPv4)"),
        ("https://localhost", "--port 443 and use http://127.0.0.1:443"),
        ("https://adb-1.2.azuredatabricks.net", "check --host / DATABRICKS_HOST and the network"),
        ("https://10.0.0.5:8443", "check --host / DATABRICKS_HOST and the network"),
    ],
)
def test_the_unreachable_hint_says_how_to_start_the_local_workspace_only_for_a_loopback_host(dbx, host, expected):
    hint = dbx._unreachable_hint(host)
    assert expected in hint
    assert ("local_workspace.py" in hint) == dbx.is_loopback(urlsplit(host).hostname)


def test_no_token_and_401_against_a_loopback_host_name_the_local_workspace_token(dbx_workspace, dbx):
    from local_cloud.workspace.wire import DEFAULT_TOKEN

    ws = dbx_workspace()
    for environ in ({"PATH": ""}, {"DATABRICKS_AUTH_TYPE": "pat"}):  # auto with no az on PATH, and pat
        with pytest.raises(ConfigError) as missing:
            dbx.connect(host=ws.url, auth=environ.get("DATABRICKS_AUTH_TYPE"), environ=environ)
        assert f"DATABRICKS_TOKEN={DEFAULT_TOKEN}" in missing.value.one_line()
    with pytest.raises(ConfigError) as remote:
        dbx.connect(host="https://adb-1.2.azuredatabricks.net", auth="pat", environ={})
    assert DEFAULT_TOKEN not in remote.value.one_line(), "only a workspace on this machine is the local workspace"

    class NoCredential(dbx.Auth):
        def headers(self):
            return {}

    with pytest.raises(Unauthenticated) as unauthenticated:
        dbx.Client(ws.url, NoCredential("nothing")).me()
    assert f"DATABRICKS_TOKEN={DEFAULT_TOKEN}" in unauthenticated.value.one_line()


def test_submit_uses_an_idempotency_token_so_a_retry_never_creates_a_second_run(dbx_workspace, dbx_client):
    ws = dbx_workspace(faults="path=*/jobs/runs/submit,fault=reset,times=1")
    client = dbx_client(ws)
    client.workspace.mkdirs("/Shared/jobs")
    client.workspace.import_("/Shared/jobs/nb", b"# Databricks notebook source\nprint(1)\n", language="PYTHON")
    spec = {
        "run_name": "once",
        "tasks": [
            {
                "task_key": "t",
                "notebook_task": {"notebook_path": "/Shared/jobs/nb"},
                "existing_cluster_id": "0101-000000-local001",
            }
        ],
    }
    first = client.jobs.submit(spec, idempotency_token="deploy-42")
    again = client.jobs.submit(spec, idempotency_token="deploy-42")
    assert first == again
    assert len(calls(ws, "/jobs/runs/submit")) == 3  # reset + retry + the explicit repeat
    run = client.jobs.wait_for_run(first, timeout=60)
    assert run["state"]["life_cycle_state"] in ("TERMINATED", "INTERNAL_ERROR", "SKIPPED")


def hammer(client, path, *, threads, each):
    """`threads` threads each asking for the status of `path` `each` times (errors end up in the request log)."""

    def work():
        for _ in range(each):
            client.workspace.get_status(path)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def test_client_rate_limiter_keeps_concurrent_work_under_the_service_limit(dbx_workspace, dbx_client):
    ws = dbx_workspace(rate_limits=["*/workspace/get-status=25/s"])
    client = dbx_client(ws, concurrency=8, rate_limits={"workspace": 20}, retry_budget_seconds=0.01)
    client.workspace.mkdirs("/Shared/r")

    hammer(client, "/Shared/r", threads=8, each=8)
    statuses = [r.status for r in calls(ws, "/workspace/get-status")]
    assert len(statuses) == 64 and 429 not in statuses


def test_without_a_cap_the_same_load_is_throttled_and_the_window_backs_off(dbx_workspace, dbx_client):
    # The counterpart of the test above: it shows the service limit is real, so that test can fail. Without a
    # cap the adaptive window meets the limit, backs off, and every call still succeeds, none retried more than
    # twice (README "Retries, budgets and rate limits").
    ws = dbx_workspace(rate_limits=["*/workspace/get-status=25/s"])
    client = dbx_client(ws, concurrency=8, rate_limits={"workspace": None}, retry_budget_seconds=30, backoff=(1, 10))
    client.workspace.mkdirs("/Shared/r")

    hammer(client, "/Shared/r", threads=8, each=8)
    statuses = [r.status for r in calls(ws, "/workspace/get-status")]
    assert 429 in statuses and statuses.count(200) == 64
    assert client.stats.throttled > 0
    assert client.stats.most_attempts <= 3
    state = client.rate.state("workspace")
    assert state.cuts >= 1 and state.in_flight == 0


def test_a_throttled_deploy_sized_load_retries_no_call_more_than_twice(dbx_workspace, dbx_client):
    # 300 imports from 8 threads against a workspace that allows 30 imports/s (its token bucket answers 429 with
    # Retry-After, like Databricks): the defaults back off, and no call is sent more than three times.
    ws = dbx_workspace(rate_limits=["*/workspace/import=30/s"])
    client = dbx_client(ws, concurrency=8, backoff=(1, 10), retry_budget_seconds=60)
    client.workspace.mkdirs("/Shared/t")
    from cicdkit.pool import run_all

    run_all(
        [
            lambda i=i: client.workspace.import_(f"/Shared/t/n{i}", b"print(1)", format="SOURCE", language="PYTHON")
            for i in range(300)
        ],
        workers=8,
    )
    imports = calls(ws, "/workspace/import")
    assert client.stats.throttled > 0, "the workspace's limit was not reached: the test shows nothing"
    assert sum(1 for r in imports if r.status == 200) == 300
    assert client.stats.most_attempts <= 3


def test_rate_limiter_spaces_reservations(dbx):
    limiter = dbx.RateLimiter({"workspace": 10, "workspace/import": 2})
    assert limiter.family("/api/2.0/workspace/import") == "workspace/import"
    assert limiter.family("/api/2.0/workspace/list") == "workspace"
    assert limiter.family("/api/2.0/clusters/get") is None
    waits = [limiter.reserve("/api/2.0/workspace/import") for _ in range(5)]
    assert waits[:2] == [0.0, 0.0] and waits[2] > 0 and waits[4] > waits[3] > waits[2]


def test_host_resolution(dbx):
    class Cfg:
        host = "adb-1.2.azuredatabricks.net/"

    assert dbx.resolve_host(None, Cfg(), {}) == "https://adb-1.2.azuredatabricks.net"
    assert dbx.resolve_host(None, Cfg(), {"DATABRICKS_HOST": "http://127.0.0.1:8080/"}) == "http://127.0.0.1:8080"
    assert dbx.resolve_host("https://a.b", Cfg(), {"DATABRICKS_HOST": "http://c"}) == "https://a.b"
    with pytest.raises(ConfigError) as missing:
        dbx.resolve_host(None, None, {})
    assert "--host" in missing.value.one_line() and "DATABRICKS_HOST" in missing.value.one_line()
    with pytest.raises(ConfigError):
        dbx.resolve_host("ftp://x", None, {})


@pytest.mark.parametrize(
    "bad", ["/tmp/x.whl", "relative/x", "/Workspace/a/../b", "/Volumes/a/b", "/Shared//x", "/Volumes/c/s/v/./x"]
)
def test_remote_paths_outside_the_roots_or_with_dot_segments_are_refused(dbx, bad):
    with pytest.raises(InputError):
        dbx.remote_path(bad)


def test_remote_path_kinds(dbx):
    assert dbx.remote_path("/Users/me@x.com/init.sh") == dbx.RemotePath(
        "workspace", "/Workspace/Users/me@x.com/init.sh"
    )
    assert dbx.remote_path("/Volumes/c/s/v/libs/").path == "/Volumes/c/s/v/libs"
    assert dbx.remote_path("dbfs:/FileStore/x.whl").kind == "dbfs"
    with pytest.raises(InputError):
        dbx.remote_path("dbfs:/FileStore/x", allowed=("workspace", "volumes"))


# --- auth selection (only the Azure credential is faked: a cloud login cannot run here) ---------------------


class FakeCredential:
    """Stands in for an azure-identity credential: hands out numbered tokens with a chosen lifetime."""

    def __init__(self, *args, lifetime=3600, **kwargs):
        self.lifetime = lifetime
        self.scopes: list[str] = []

    def get_token(self, *scopes, **kwargs):
        from azure.core.credentials import AccessToken

        self.scopes.extend(scopes)
        return AccessToken(f"entra-token-{len(self.scopes)}", int(time.time()) + self.lifetime)


def test_auto_prefers_a_pat(dbx):
    auth = dbx.resolve_auth(
        None, {"DATABRICKS_TOKEN": DBX_TOKEN, "ARM_CLIENT_ID": "x", "ARM_TENANT_ID": "t", "ARM_CLIENT_SECRET": "s"}
    )
    assert auth.mode == "pat" and auth.headers() == {"Authorization": f"Bearer {DBX_TOKEN}"}
    assert DBX_TOKEN not in repr(auth)


def test_client_secret_from_arm_variables_gets_a_databricks_scoped_token(dbx, monkeypatch):
    import azure.identity

    made = []
    monkeypatch.setattr(azure.identity, "ClientSecretCredential", lambda **kw: made.append(kw) or FakeCredential())
    environ = {"ARM_CLIENT_ID": "app", "ARM_TENANT_ID": "tenant", "ARM_CLIENT_SECRET": "s3cret-value", "PATH": ""}
    for auth_type in (None, "azure-client-secret"):
        auth = dbx.resolve_auth(auth_type, environ)
        assert auth.mode == "entra" and auth.headers()["Authorization"].startswith("Bearer entra-token-")
        assert auth._credential.scopes == ["2ff814a6-3304-4ab8-85cb-cd0e6f879c1d/.default"]
        assert "s3cret-value" not in repr(auth) and "app" in auth.description
    assert made[0] == {
        "tenant_id": "tenant",
        "client_id": "app",
        "client_secret": "s3cret-value",
        "connection_timeout": 10,
        "read_timeout": 20,
        "retry_total": 2,
    }


def test_entra_token_is_refreshed_before_expiry_and_cached_otherwise(dbx):
    short = dbx.EntraAuth(FakeCredential(lifetime=60), "fake")
    assert short.headers() != short.headers()  # expires within the refresh margin: fetched again
    long = dbx.EntraAuth(FakeCredential(lifetime=3600), "fake")
    assert long.headers() == long.headers() and len(long._credential.scopes) == 1


def test_sp_management_headers_when_a_resource_id_is_configured(dbx, monkeypatch):
    import azure.identity

    monkeypatch.setattr(azure.identity, "ClientSecretCredential", lambda **kw: FakeCredential())
    resource = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Databricks/workspaces/w"
    environ = {
        "AZURE_CLIENT_ID": "a",
        "AZURE_TENANT_ID": "t",
        "AZURE_CLIENT_SECRET": "s",
        "DATABRICKS_AZURE_RESOURCE_ID": resource,
    }
    headers = dbx.resolve_auth("azure-client-secret", environ).headers()
    assert headers["X-Databricks-Azure-Workspace-Resource-Id"] == resource
    assert headers["X-Databricks-Azure-SP-Management-Token"].startswith("entra-token-")
    assert headers["Authorization"] != headers["X-Databricks-Azure-SP-Management-Token"]


def test_entra_token_works_end_to_end_against_the_workspace(dbx_workspace, dbx):
    # An Entra access token obtained elsewhere (AZURE_ACCESS_TOKEN); the local workspace accepts it as a bearer.
    ws = dbx_workspace(token="eyJhbGciOiJub25lIn0.eyJleHAiOjQxMDI0NDQ4MDB9.")
    client = dbx.connect(host=ws.url, auth="token", environ={"AZURE_ACCESS_TOKEN": ws.token})
    assert client.me()["userName"]


def test_failed_login_is_one_clear_error_without_secrets(dbx):
    class Broken(FakeCredential):
        def get_token(self, *scopes, **kwargs):
            raise RuntimeError("AADSTS7000215: Invalid client secret provided. Bearer abc.def.ghi")

    auth = dbx.EntraAuth(Broken(), "ClientSecretCredential")
    with pytest.raises(ConnectionFailed, match="Entra ID login failed") as caught:
        auth.headers()
    assert "abc.def.ghi" not in caught.value.one_line()


def test_no_credentials_and_unknown_auth_type(dbx):
    with pytest.raises(ConfigError, match="no Databricks credentials"):
        dbx.resolve_auth(None, {"PATH": "", "TF_BUILD": "True"})
    with pytest.raises(UsageError, match="unknown auth type"):
        dbx.resolve_auth("kerberos", {})


def test_dbfs_streamed_upload_starts_again_after_a_lost_add_block(dbx_workspace, dbx_client, tmp_path):
    ws = dbx_workspace(faults="path=*/dbfs/add-block,fault=reset,skip=1,times=1")
    client = dbx_client(ws)
    payload = bytes(range(256)) * 9000  # 2.2 MiB: three blocks
    source = tmp_path / "big.bin"
    source.write_bytes(payload)
    with open(source, "rb") as stream:
        assert client.dbfs.upload("dbfs:/FileStore/big.bin", stream, block_size=1024 * 1024) == len(payload)
    assert ws.dbfs_file("dbfs:/FileStore/big.bin") == payload  # no block appended twice
    assert len(calls(ws, "/dbfs/create")) == 2


@pytest.mark.parametrize(
    "status, code, message, path, expected",
    [
        (400, "INVALID_PARAMETER_VALUE", "Run 5 does not exist.", "/api/2.1/jobs/runs/get", "ResourceDoesNotExist"),
        (
            400,
            "INVALID_PARAMETER_VALUE",
            "Run: 5 in job: 7 doesn't exist",
            "/api/2.1/jobs/runs/get-output",
            "ResourceDoesNotExist",
        ),
        (400, "INVALID_PARAMETER_VALUE", "Job 5 does not exist.", "/api/2.1/jobs/get", "ResourceDoesNotExist"),
        (400, "INVALID_PARAMETER_VALUE", "Bad spark_version", "/api/2.0/clusters/get", "InvalidParameterValue"),
        (400, "INVALID_STATE", "Cluster c is in unexpected state Running.", "/api/2.0/clusters/start", "InvalidState"),
        (
            400,
            "RESOURCE_ALREADY_EXISTS",
            "Path (/x) already exists.",
            "/api/2.0/workspace/import",
            "ResourceAlreadyExists",
        ),
        (400, "MAX_BLOCK_SIZE_EXCEEDED", "too big", "/api/2.0/dbfs/add-block", "BadRequest"),
        (401, 401, "Credential was not sent", "/api/2.0/x", "Unauthenticated"),
        (403, 403, "Invalid access token.", "/api/2.0/x", "PermissionDenied"),
        (404, None, "", "/api/2.0/fs/files/Volumes/a/b/c/d", "NotFound"),
        (409, "ABORTED", "concurrent change", "/api/2.0/x", "Aborted"),
        (409, "ALREADY_EXISTS", "exists", "/api/2.0/fs/files/x", "ResourceAlreadyExists"),
        (429, None, "", "/api/2.0/x", "TooManyRequests"),
        (400, "REQUEST_LIMIT_EXCEEDED", "RPC token bucket limit has been exceeded.", "/api/2.0/x", "TooManyRequests"),
        (500, "DATA_LOSS", "lost", "/api/2.0/x", "InternalError"),
        (502, None, "Bad Gateway", "/api/2.0/x", "InternalError"),
        (503, "TEMPORARILY_UNAVAILABLE", "later", "/api/2.0/x", "TemporarilyUnavailable"),
        (504, None, "Gateway Timeout", "/api/2.0/x", "DeadlineExceeded"),
    ],
)
def test_error_class_is_chosen_by_override_then_error_code_then_status(status, code, message, path, expected):
    from cicdkit import errors

    error = errors.api_error(status, code, message, method="GET", path=path)
    assert type(error).__name__ == expected
    assert isinstance(error, errors.ApiError) and error.exit_code == 1
    assert (error.status, error.method, error.path) == (status, "GET", path)
    assert type(error).__doc__  # every class says when it happens and what to do


# --- values that cannot travel in an HTTP header ---------------------------------------------------------------


@pytest.mark.parametrize("damage", ["\n", " ", "\u20ac", "\x00"])
def test_header_values_http_cannot_carry_are_refused_by_name_never_by_value(dbx, monkeypatch, damage):
    import azure.identity

    bad = DBX_TOKEN[:10] + damage + DBX_TOKEN[10:]
    with pytest.raises(UsageError, match="DATABRICKS_TOKEN") as pat:
        dbx.resolve_auth(None, {"DATABRICKS_TOKEN": bad})
    with pytest.raises(UsageError, match="AZURE_ACCESS_TOKEN") as entra:
        dbx.resolve_auth("token", {"AZURE_ACCESS_TOKEN": bad})
    monkeypatch.setattr(azure.identity, "ClientSecretCredential", lambda **kw: FakeCredential())
    environ = {
        "AZURE_CLIENT_ID": "a",
        "AZURE_TENANT_ID": "t",
        "AZURE_CLIENT_SECRET": "s",
        "DATABRICKS_AZURE_RESOURCE_ID": "/subscriptions/s/resourceGroups/g" + damage + "/x",
    }
    with pytest.raises(UsageError, match="DATABRICKS_AZURE_RESOURCE_ID"):
        dbx.resolve_auth("environment", environ)
    for caught in (pat, entra):
        assert DBX_TOKEN[:10] not in caught.value.one_line() and DBX_TOKEN[10:] not in caught.value.one_line()


@pytest.mark.parametrize("bad", [DBX_TOKEN + "\n", DBX_TOKEN + "\r\n", "\n" + DBX_TOKEN, " " + DBX_TOKEN, "\n"])
def test_a_line_break_or_space_at_either_end_is_refused_too_not_stripped(dbx, monkeypatch, bad):
    # Before: DATABRICKS_TOKEN and AZURE_ACCESS_TOKEN were .strip()ped first, so a secret mapped with a trailing
    # newline was silently accepted although the README promises an error naming the variable.
    import azure.identity

    for auth, name in ((None, "DATABRICKS_TOKEN"), ("pat", "DATABRICKS_TOKEN"), ("token", "AZURE_ACCESS_TOKEN")):
        with pytest.raises(UsageError) as caught:
            dbx.resolve_auth(auth, {name: bad})
        assert caught.value.one_line().startswith(f"{name} contains "), caught.value.one_line()
        assert DBX_TOKEN not in caught.value.one_line()
    monkeypatch.setattr(azure.identity, "ClientSecretCredential", lambda **kw: FakeCredential())
    environ = {
        "AZURE_CLIENT_ID": "a",
        "AZURE_TENANT_ID": "t",
        "AZURE_CLIENT_SECRET": "s",
        "DATABRICKS_AZURE_RESOURCE_ID": bad.replace(DBX_TOKEN, "/subscriptions/s/resourceGroups/g"),
    }
    with pytest.raises(UsageError, match="^DATABRICKS_AZURE_RESOURCE_ID contains"):
        dbx.resolve_auth("environment", environ)


def test_an_entra_token_http_cannot_carry_is_a_login_failure_without_the_token(dbx):
    class Odd(FakeCredential):
        def get_token(self, *scopes, **kwargs):
            from azure.core.credentials import AccessToken

            return AccessToken("eyJodd-token\nsecond-half", int(time.time()) + 3600)

    with pytest.raises(ConnectionFailed, match="line break") as caught:
        dbx.EntraAuth(Odd(), "fake").headers()
    assert "odd-token" not in caught.value.one_line() and "second-half" not in caught.value.one_line()


@pytest.mark.parametrize("damage", ["\n", "\u20ac"])
def test_a_request_that_cannot_be_sent_is_one_line_without_the_token(dbx_workspace, dbx, damage):
    # An Auth built directly (no resolve_auth check): the client still turns the HTTP library's refusal, whose
    # text quotes the header, into one scrubbed line.
    ws = dbx_workspace()
    bad = DBX_TOKEN[:10] + damage + DBX_TOKEN[10:]
    client = dbx.Client(ws.url, dbx.PatAuth(bad))
    with pytest.raises(UsageError, match="cannot be sent") as caught:
        client.me()
    text = caught.value.one_line() + repr(caught.value)
    assert DBX_TOKEN[:10] not in text and DBX_TOKEN[10:] not in text and "Bearer" not in text
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


@pytest.mark.parametrize(
    "host", ["http://127.0.0.1:8080", "http://127.8.9.10", "http://localhost:5000", "http://[::1]:8443"]
)
def test_plain_http_is_accepted_for_a_loopback_workspace(dbx, host):
    assert dbx.resolve_host(host, None, {}) == host


@pytest.mark.parametrize(
    "host",
    ["http://adb-1.2.azuredatabricks.net", "http://10.0.0.5:8080", "http://[::2]", "http://localhost.example.com"],
)
def test_plain_http_to_any_other_host_is_refused_before_a_token_is_sent(dbx, host):
    with pytest.raises(ConfigError, match="http://") as caught:
        dbx.resolve_host(host, None, {})
    assert caught.value.exit_code == 2 and "https://" in caught.value.one_line()


@pytest.mark.parametrize(
    "bad, why",
    [
        ("not a url", "whitespace"),
        ("https://adb-1.2.azure\tdatabricks.net", "whitespace"),
        ("https://adb_1..azuredatabricks.net", "host name may only contain"),
        ("https://adb-1.2.azuredatabricks.net:99999", "port must be a number"),
        ("https://adb-1.2.azuredatabricks.net:https", "port must be a number"),
        ("adb-1.2.azuredatabricks.net:0", "port must be a number"),
        ("https://[::1", "cannot be read as a URL"),
        ("https://", "no host name"),
        ("https://exämple.azuredatabricks.net", "host name may only contain"),
        ("ftp://adb-1.2.azuredatabricks.net", "scheme must be https://"),
        # Anything after the host but one '/' used to be dropped without a word.
        ("http://127.0.0.1:8080/x", "it has a path"),
        ("https://adb-1.2.azuredatabricks.net//", "it has a path"),
        ("http://127.0.0.1:8765/##vso[task.complete]pwned", "it has a fragment"),
        ("https://adb-1.2.azuredatabricks.net/api/2.0", "it has a path"),
        ("https://adb-1.2.azuredatabricks.net/?o=1234567890", "it has a query"),
        ("https://adb-1.2.azuredatabricks.net?", "it has a query"),
        ("adb-1.2.azuredatabricks.net#workspace", "it has a fragment"),
    ],
)
def test_a_host_that_is_not_a_workspace_url_is_a_config_error_naming_its_source(dbx, bad, why):
    class Cfg:
        host = bad

    for kwargs, source in (
        ({"host": bad}, "--host"),
        ({"environ": {"DATABRICKS_HOST": bad}}, "DATABRICKS_HOST"),
        ({"config": Cfg(), "environ": {}}, "workspace.host in the config"),
    ):
        with pytest.raises(ConfigError) as caught:
            dbx.resolve_host(**{"environ": {}, **kwargs})
        assert caught.value.one_line().startswith(source + " ") and why in caught.value.one_line()


def test_a_host_with_credentials_in_it_is_refused_without_echoing_them(dbx):
    with pytest.raises(ConfigError, match="user name or password") as caught:
        dbx.resolve_host(None, None, {"DATABRICKS_HOST": "https://me:hunter2-secret@adb-1.2.azuredatabricks.net"})
    assert "hunter2-secret" not in caught.value.one_line()


@pytest.mark.parametrize(
    "host",
    [
        "https://me:hunter2-secret@adb-1.2.azuredatabricks.net/path",
        "https://me:hun/ter2-secret@adb-1.2.azuredatabricks.net",  # urlsplit sees host 'me', port 'hun', a path
        "https://me:hun?ter2-secret@adb-1.2.azuredatabricks.net",
        "https://me:hun#ter2-secret@adb-1.2.azuredatabricks.net",
        "me:hunter2-secret@adb-1.2.azuredatabricks.net?x",
    ],
)
def test_credentials_are_never_echoed_whatever_else_is_wrong(dbx, host):
    with pytest.raises(ConfigError) as caught:
        dbx.resolve_host(host, None, {})
    text = caught.value.one_line()
    assert text.startswith("--host is not a workspace URL")
    assert "hun" not in text and "ter2-secret" not in text


# --- waits end at their deadline, whatever each call's retry budget ---------------------------------------------


@pytest.mark.parametrize("fault", ["fault=503", "fault=429,retry_after=30"])
def test_a_wait_ends_with_wait_timed_out_at_its_deadline_while_the_service_keeps_refusing(
    dbx_workspace, dbx_client, fault
):
    # Each status call alone may retry for 60 s; the wait (1 s) bounds them: the wait's deadline is what fails.
    cluster_id = "0101-000000-local001"
    ws = dbx_workspace(faults=f"path=*/clusters/get,{fault}")
    client = dbx_client(ws, retry_budget_seconds=60, backoff=(0.05, 0.2))
    with pytest.raises(WaitTimedOut) as caught:
        client.clusters.wait_for_state(cluster_id, ("RUNNING",), timeout=1)
    line = caught.value.one_line()
    assert f"cluster {cluster_id} did not reach RUNNING" in line and "deadline (1s" in line
    assert ("503" if "503" in fault else "429") in line and "GET /api/2.0/clusters/get" in line
    assert DBX_TOKEN not in line


def test_outside_a_wait_a_call_keeps_its_own_budget(dbx_workspace, dbx_client):
    ws = dbx_workspace(faults="path=*/clusters/get,fault=503,times=3")
    client = dbx_client(ws, retry_budget_seconds=20)
    client.poll(lambda: None, lambda value: True, timeout=0.01, what="nothing")  # leaves no deadline behind
    assert client.clusters.get("0101-000000-local001")["state"]
    assert [r.status for r in calls(ws, "/clusters/get")] == [503, 503, 503, 200]


# --- the step's deadline bounds every call, its retries and its waits -------------------------------------------
# Elapsed times are compared with the deadline plus a generous margin only; what the client did is read from the
# local workspace's request log.


def test_a_call_retries_no_longer_than_the_step_has_left(dbx_workspace, dbx_client):
    from cicdkit.errors import StepTimedOut

    ws = dbx_workspace(faults="path=*/workspace/get-status,fault=503")
    client = dbx_client(ws, retry_budget_seconds=60, backoff=(0.05, 0.2), step_timeout=1)
    started = time.monotonic()
    with pytest.raises(StepTimedOut) as caught:
        client.workspace.get_status("/Shared")
    assert time.monotonic() - started < 1 + 3  # its own budget (60 s) would keep it going for a minute
    line = caught.value.one_line()
    assert (
        line.startswith("step deadline reached (--timeout 1s) after ") and "GET /api/2.0/workspace/get-status" in line
    )
    assert "503" in line and "raise --timeout" in line and caught.value.exit_code == 1
    assert len(calls(ws, "/workspace/get-status")) > 1  # it did retry, within the step's time


def test_a_slow_answer_is_cut_at_the_step_deadline_for_reads_and_for_writes_that_may_not_be_repeated(
    dbx_workspace, dbx_client
):
    from cicdkit.errors import StepTimedOut

    ws = dbx_workspace(latency_ms=["*/workspace/get-status=20000", "*/workspace/import=20000"])
    for call, path in (
        (lambda client: client.workspace.get_status("/Shared"), "/workspace/get-status"),
        (
            lambda client: client.workspace.import_("/Shared/x", b"x", format="RAW", overwrite=False),
            "/workspace/import",
        ),
    ):
        client = dbx_client(ws, step_timeout=1)  # the read timeout (60 s) and the latency (20 s) are far longer
        started = time.monotonic()
        with pytest.raises(StepTimedOut, match=r"step deadline reached \(--timeout 1s\): .*timed out") as caught:
            call(client)
        assert time.monotonic() - started < 1 + 3, path
        assert path in caught.value.one_line()
    assert ws.workspace_object("/Shared/x") is None  # still held by the latency: nothing landed yet


def test_no_call_is_sent_after_the_step_deadline(dbx_workspace, dbx_client):
    from cicdkit.errors import StepTimedOut

    ws = dbx_workspace()
    client = dbx_client(ws, step_timeout=0.2)
    client.workspace.mkdirs("/Shared/in-time")
    time.sleep(0.3)
    ws.clear_log()
    with pytest.raises(StepTimedOut, match="POST /api/2.0/workspace/mkdirs was not sent"):
        client.workspace.mkdirs("/Shared/too-late")
    assert ws.api_requests() == []
    assert client.time_left() < 0


def test_the_rate_limiter_does_not_hold_a_call_past_the_step_deadline(dbx_workspace, dbx_client):
    from cicdkit.errors import StepTimedOut

    ws = dbx_workspace()
    client = dbx_client(ws, rate_limits={"workspace": 0.01}, step_timeout=60)  # one call per 100 s
    client.workspace.mkdirs("/Shared/first")
    started = time.monotonic()
    with pytest.raises(StepTimedOut, match="rate limit holds it past the deadline"):
        client.workspace.mkdirs("/Shared/second")
    assert time.monotonic() - started < 20  # refused at once, not after sleeping towards the deadline (60 s)
    assert len(calls(ws, "/workspace/mkdirs")) == 1


def test_a_wait_longer_than_the_step_ends_at_the_step_deadline(dbx_workspace, dbx_client):
    from cicdkit.errors import StepTimedOut

    cluster_id = "0101-000000-local001"
    ws = dbx_workspace(time_scale=1000)  # a restart takes hours here
    client = dbx_client(ws, step_timeout=1.5)
    client.clusters.restart(cluster_id)
    started = time.monotonic()
    with pytest.raises(StepTimedOut) as caught:
        client.clusters.wait_for_state(cluster_id, ("RUNNING",), timeout=600)
    assert time.monotonic() - started < 1.5 + 3
    line = caught.value.one_line()
    assert f"cluster {cluster_id} did not reach RUNNING: still RESTARTING" in line and "the step's --timeout" in line
    assert [r.status for r in calls(ws, "/clusters/get")][-1] == 200  # the last status read was answered in time


# --- the retry classifier and policy on their own: a fake clock, no real sleeping ----------------------------------


class FakeClock:
    """A monotonic clock that moves only when the code under test sleeps (each sleep is recorded)."""

    def __init__(self, now=1000.0):
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


class Answer:
    """Stands in for a `requests.Response` (what the classifier reads: the status and the headers)."""

    def __init__(self, status_code, headers=None):
        self.status_code = status_code
        self.headers = headers or {}


def policy(clock, *, budget=120.0, backoff=(1.0, 10.0)):
    from cicdkit.dbclient import retry

    return retry.RetryPolicy(budget_seconds=budget, backoff=backoff, clock=clock, sleep=clock.sleep)


def test_the_classifier_retries_429_and_503_for_every_call_and_5xx_only_when_idempotent():
    from cicdkit.dbclient import retry

    for status in (429, 503):
        assert retry.classify("POST", response=Answer(status)).retry
        assert retry.classify("POST", idempotent=False, response=Answer(status)).retry
    for status in (500, 502, 504):
        assert retry.classify("GET", response=Answer(status)).retry
        assert retry.classify("POST", idempotent=True, response=Answer(status)).retry
        verdict = retry.classify("POST", response=Answer(status))
        assert not verdict.retry and "may not be repeated" in verdict.why
    for status in (400, 401, 403, 404, 409):
        assert not retry.classify("GET", response=Answer(status)).retry
    # A body that cannot be sent again is never retried, whatever the answer.
    assert not retry.classify("PUT", response=Answer(503), replayable=False).retry


def test_the_classifier_retries_a_lost_connection_only_for_idempotent_calls_and_twice_before_a_first_answer():
    import requests

    from cicdkit.dbclient import retry

    for error in (
        requests.ConnectionError("reset"),
        requests.Timeout("slow"),
        requests.exceptions.ChunkedEncodingError(),
    ):
        assert retry.classify("GET", error=error).retry
        assert retry.classify("POST", idempotent=True, error=error).retry
        assert not retry.classify("POST", error=error).retry  # a POST that is not idempotent: never repeated blindly
    lost = requests.ConnectionError("refused")
    assert [retry.classify("GET", error=lost, reached=False, attempt=n).retry for n in (1, 2, 3)] == [True, True, False]
    assert retry.classify("GET", error=lost, reached=True, attempt=3).retry
    assert not retry.classify("GET", error=ValueError("bad header")).retry


def test_a_post_that_is_not_idempotent_is_sent_once_on_500_but_again_on_503(dbx_workspace, dbx_client):
    # 503 (like 429) means the request was not processed, so even an appending add-block is sent again; a 500 may
    # have landed, so it is not.
    from cicdkit.errors import InternalError

    ws = dbx_workspace(faults="path=*/dbfs/add-block,fault=500,times=1")
    client = dbx_client(ws)
    handle = client.dbfs.create("/tmp/x.bin")
    with pytest.raises(InternalError):
        client.dbfs.add_block(handle, b"x")
    assert len(calls(ws, "/dbfs/add-block")) == 1
    ws = dbx_workspace(faults="path=*/dbfs/add-block,fault=503,times=1")
    client = dbx_client(ws)
    client.dbfs.add_block(client.dbfs.create("/tmp/x.bin"), b"x")
    assert [r.status for r in calls(ws, "/dbfs/add-block")] == [503, 200]


def test_retry_after_is_honoured_and_its_absence_means_exponential_backoff():
    from cicdkit.dbclient import retry

    verdict = retry.classify("GET", response=Answer(429, {"Retry-After": "7"}))
    assert verdict.retry and verdict.retry_after == 7.0
    clock = FakeClock()
    window = policy(clock).window()
    decision = window.next(1, verdict.retry_after)
    assert decision.retry and 7.0 <= decision.delay <= 8.0  # Retry-After plus at most a second of jitter
    backoff = policy(clock, backoff=(1.0, 10.0))
    assert 0.5 <= backoff.delay(1) <= 1.0 and 2.0 <= backoff.delay(3) <= 4.0 and 5.0 <= backoff.delay(9) <= 10.0
    assert retry.classify("GET", response=Answer(503, {"Retry-After": "soon"})).retry_after is None


def test_the_policy_stops_at_the_retry_budget():
    from cicdkit.dbclient import retry

    clock = FakeClock()
    window = policy(clock, budget=10.0, backoff=(1.0, 4.0)).window()
    assert window.bound_by == retry.BUDGET and window.socket_timeout((5.0, 60.0), clock()) == (5.0, 60.0)
    attempt = 1
    while (decision := window.next(attempt)).retry:
        clock.sleep(decision.delay)
        attempt += 1
    assert clock.now - 1000.0 <= 10.0 and attempt > 2
    assert decision.bound_by == retry.BUDGET and decision.delay == 0.0  # give up at once, no waiting
    # A Retry-After past the budget is not waited for at all.
    assert not policy(FakeClock(), budget=5.0).window().next(1, retry_after=30.0).retry
    assert window.give_up_note(attempt, retried=True).endswith(", retry budget 10s")


def test_the_policy_stops_at_the_step_deadline_and_cuts_socket_timeouts_to_it():
    from cicdkit.dbclient import retry

    clock = FakeClock()
    window = policy(clock, budget=120.0).window(step_deadline=clock() + 3.0)
    assert window.bound_by == retry.STEP and window.deadline == 1003.0
    assert window.socket_timeout((5.0, 60.0), clock()) == (3.0, 3.0)
    assert window.socket_timeout((5.0, 60.0), 1010.0) == (retry.MIN_CALL_SECONDS, retry.MIN_CALL_SECONDS)
    decision = window.next(1, retry_after=5.0)
    assert not decision.retry and decision.bound_by == retry.STEP and decision.delay == 0.0
    # A step deadline after the budget leaves the budget in charge.
    assert policy(clock, budget=10.0).window(step_deadline=clock() + 60.0).bound_by == retry.BUDGET


def test_inside_a_wait_the_policy_uses_the_time_left_then_gives_up_at_the_wait_deadline():
    from cicdkit.dbclient import retry

    clock = FakeClock()
    window = policy(clock).window(step_deadline=clock() + 60.0, wait_deadline=clock() + 2.0)
    assert window.bound_by == retry.WAIT
    decision = window.next(1, retry_after=30.0)
    assert not decision.retry and decision.delay == 2.0  # sleep until the wait's deadline, then let poll report


def test_the_rate_limiter_runs_on_the_injected_clock():
    from cicdkit.dbclient import rate

    clock = FakeClock()
    limiter = rate.RateLimiter({"jobs": 2}, clock=clock, sleep=clock.sleep)
    assert [limiter.reserve("/api/2.1/jobs/runs/get") for _ in range(3)] == [0.0, 0.0, 0.5]
    clock.now += 10  # tokens refill while time passes
    limiter.wait("/api/2.1/jobs/runs/get")
    assert clock.sleeps == []


# --- the adaptive rate controller (rate.py), on an injected clock -------------------------------------------


def adaptive(clock, concurrency=8, **kwargs):
    from cicdkit.dbclient import rate

    return rate.AdaptiveRate(concurrency, clock=clock, sleep=clock.sleep, **kwargs)


IMPORT = "/api/2.0/workspace/import"


def test_a_family_starts_at_the_step_concurrency_and_waits_when_its_window_is_full():
    clock = FakeClock()
    controller = adaptive(clock, concurrency=3)
    tickets = [controller.try_acquire(IMPORT)[0] for _ in range(3)]
    assert all(t is not None and t.family == "workspace/import" for t in tickets)
    assert controller.try_acquire(IMPORT) == (None, None)  # full: wait for a release
    assert controller.try_acquire("/api/2.0/fs/files/Volumes/a")[0] is not None  # another family is not held
    controller.release(tickets[0])
    assert controller.try_acquire(IMPORT)[0] is not None


def test_paths_map_to_the_most_specific_family_and_unknown_paths_are_not_controlled():
    controller = adaptive(FakeClock())
    assert controller.family(IMPORT) == "workspace/import"
    assert controller.family("/api/2.0/workspace/list") == "workspace"
    assert controller.family("/api/2.1/jobs/runs/get") == "jobs/runs"
    assert controller.family("/api/2.1/jobs/create") == "jobs"
    assert controller.family("/api/2.0/dbfs/put") == "dbfs"
    assert controller.family("/api/2.0/fs/files/Volumes/x") == "fs"
    assert controller.family("/api/2.0/preview/scim/v2/Me") is None
    ticket, wait = controller.try_acquire("/api/2.0/preview/scim/v2/Me")
    assert ticket is not None and ticket.family is None and wait == 0.0


def test_a_429_cuts_the_window_once_per_burst_and_holds_the_family_for_retry_after():
    clock = FakeClock()
    controller = adaptive(clock, concurrency=8, decrease=0.5)
    tickets = [controller.try_acquire(IMPORT)[0] for _ in range(8)]
    for ticket in tickets:  # the whole window came back 429 (one burst): one cut, not eight
        controller.release(ticket, throttled=True, retry_after=2.0)
    state = controller.state("workspace/import")
    assert state.window == 4.0 and state.cuts == 1 and state.throttled == 8 and state.in_flight == 0
    ticket, wait = controller.try_acquire(IMPORT)
    assert ticket is None and wait == 2.0  # Retry-After honoured for the whole family
    clock.now += 2.0
    granted = [controller.try_acquire(IMPORT)[0] for _ in range(5)]
    assert sum(t is not None for t in granted) == 4  # the new window
    controller.release(granted[0], throttled=True, retry_after=None)  # sent under the new window: cut again
    assert controller.state("workspace/import").window == 2.0
    assert controller.try_acquire(IMPORT)[1] == 1.0  # no Retry-After: the default hold


def test_the_window_climbs_back_by_one_after_a_run_of_successes_never_above_the_concurrency():
    clock = FakeClock()
    controller = adaptive(clock, concurrency=4, climb_after=2, decrease=0.5)
    controller.release(controller.try_acquire(IMPORT)[0], throttled=True, retry_after=0)
    assert controller.state("workspace/import").window == 2.0
    for expected in (3.0, 4.0, 4.0):
        for _ in range(int(2 * min(expected - 1, 3))):
            controller.release(controller.try_acquire(IMPORT)[0])
        assert controller.state("workspace/import").window == expected


def test_the_window_never_drops_below_one_call():
    clock = FakeClock()
    controller = adaptive(clock, concurrency=2)  # the default cut (3/4)
    for _ in range(5):
        ticket = controller.try_acquire(IMPORT)[0]
        controller.release(ticket, throttled=True, retry_after=0)
    assert controller.state("workspace/import").window == 1.0
    assert controller.try_acquire(IMPORT)[0] is not None


def test_acquire_sleeps_out_a_hold_on_the_injected_clock_and_refuses_past_the_deadline():
    clock = FakeClock()
    controller = adaptive(clock, concurrency=2)
    controller.release(controller.try_acquire(IMPORT)[0], throttled=True, retry_after=3.0)
    assert controller.acquire(IMPORT, deadline=clock() + 2.0) == 3.0  # would pass the deadline: nothing taken
    assert clock.sleeps == []
    ticket = controller.acquire(IMPORT, deadline=clock() + 10.0)
    assert clock.sleeps == [3.0] and ticket.family == "workspace/import"


def test_a_configured_cap_applies_on_top_of_the_window():
    from cicdkit.dbclient import rate

    clock = FakeClock()
    caps = rate.RateLimiter({"workspace/import": 2}, clock=clock, sleep=clock.sleep)
    controller = adaptive(clock, concurrency=8, caps=caps)
    for _ in range(3):
        controller.release(controller.acquire(IMPORT))
    assert clock.sleeps == [0.5]  # two at once (a second's burst), the third half a second later


def test_a_cap_slot_past_the_deadline_gives_the_window_back():
    from cicdkit.dbclient import rate

    clock = FakeClock()
    caps = rate.RateLimiter({"workspace/import": 0.1}, clock=clock, sleep=clock.sleep)
    controller = adaptive(clock, concurrency=1, caps=caps)
    controller.release(controller.acquire(IMPORT))
    assert controller.acquire(IMPORT, deadline=clock() + 1.0) == pytest.approx(10.0)
    assert controller.state("workspace/import").in_flight == 0


def test_request_limit_exceeded_is_retried_whatever_its_status():
    from cicdkit.dbclient import retry

    class Answer:
        status_code = 400
        headers = {"Retry-After": "2"}

    verdict = retry.classify("POST", response=Answer(), throttled=True)
    assert verdict.retry and verdict.retry_after == 2.0 and "REQUEST_LIMIT_EXCEEDED" in verdict.why
    assert not retry.classify("POST", response=Answer()).retry
