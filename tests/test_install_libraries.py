"""install_libraries.py end to end against the local workspace, run as a pipeline runs it (subprocess)."""

from __future__ import annotations

import json
import time

import pytest
from databricks_fixtures import DBX_TOKEN, dbx_env
from helpers import assert_one_line_error, run_script

LIBS = "/Volumes/main/default/libs"
C1, C2 = "0101-000000-cluster01", "0101-000000-cluster02"
FAST = ["--poll-interval", "0.05", "--timeout", "60"]


def wheel(name: str, version: str) -> str:
    return f"{LIBS}/{name}-{version}-py3-none-any.whl"


def cluster(cluster_id: str, state: str = "RUNNING", spark_version: str = "15.4.x-scala2.12") -> dict:
    return {
        "cluster_id": cluster_id,
        "cluster_name": f"name-{cluster_id[-2:]}",
        "spark_version": spark_version,
        "state": state,
    }


def wait_installed(ws, cluster_id: str, paths: list[str], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = {s["library"].get("whl"): s["status"] for s in ws.library_statuses(cluster_id)}
        if all(states.get(path) == "INSTALLED" for path in paths):
            return
        time.sleep(0.02)
    raise AssertionError(f"not installed in time: {ws.library_statuses(cluster_id)}")


def seed(ws, dbx_client, installed: dict[str, list[str]], uploaded: list[str], wait: bool = True) -> None:
    """Upload wheel files and install the given ones (as an earlier deployment would have)."""
    for path in uploaded:
        ws.put_file(path, b"PK\x03\x04 wheel bytes of " + path.encode())
    client = dbx_client(ws)
    for cluster_id, paths in installed.items():
        client.libraries.install(cluster_id, [{"whl": path} for path in paths])
        if wait and ws.cluster(cluster_id)["state"] == "RUNNING":
            wait_installed(ws, cluster_id, paths)
    ws.clear_log()


def posts(ws, pattern: str = "*") -> list:
    return [r for r in ws.api_requests("POST", pattern) if r.status == 200]


def statuses(ws, cluster_id: str) -> dict[str, str]:
    return {s["library"].get("whl") or json.dumps(s["library"]): s["status"] for s in ws.library_statuses(cluster_id)}


def no_token(result) -> None:
    assert DBX_TOKEN not in result.stdout and DBX_TOKEN not in result.stderr


@pytest.fixture
def two_clusters(dbx_workspace, dbx_client):
    ws = dbx_workspace(clusters=[cluster(C1), cluster(C2)])
    old = [wheel("package1", "0.1.0"), wheel("package2", "0.1.0")]
    new = [wheel("package1", "0.2.0"), wheel("package2", "0.2.0")]
    seed(ws, dbx_client, {C1: old, C2: old}, old + new)
    return ws, old, new


def test_rollout_replaces_old_versions_with_one_restart_per_cluster_and_rerun_changes_nothing(two_clusters, tmp_path):
    ws, old, new = two_clusters
    args = ["--cluster-id", C1, "--cluster-id", C2, "--wheel", new[0], "--wheel", new[1], *FAST]
    result = run_script("install_libraries.py", *args, env=dbx_env(ws), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    no_token(result)
    for cluster_id in (C1, C2):
        assert statuses(ws, cluster_id) == {new[0]: "INSTALLED", new[1]: "INSTALLED"}
        assert ws.cluster(cluster_id)["state"] == "RUNNING"
        for endpoint in ("libraries/uninstall", "libraries/install", "clusters/restart"):
            calls = [r for r in posts(ws, f"*/{endpoint}")]
            assert len(calls) == 2, (endpoint, calls)  # one per cluster
    assert "Install libraries: 2 changed, 0 unchanged" in result.stdout
    assert "install 2, replace 2, restart once" in result.stdout

    ws.clear_log()
    again = run_script("install_libraries.py", *args, env=dbx_env(ws), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert posts(ws) == [] and "0 changed, 2 unchanged" in again.stdout
    assert f"cluster {C1}" in again.stdout and "up to date" in again.stdout


def test_dry_run_prints_the_plan_and_writes_nothing(two_clusters, tmp_path):
    ws, old, new = two_clusters
    result = run_script(
        "install_libraries.py", "--cluster-id", C1, "--wheel", new[0], "--dry-run", env=dbx_env(ws), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert f"would uninstall {old[0]}; install {new[0]}; restart" in result.stdout
    assert [r for r in ws.api_requests() if r.method not in ("GET", "HEAD")] == []
    assert statuses(ws, C1)[old[0]] == "INSTALLED"


def test_terminated_cluster_is_started_and_no_restart_leaves_a_notice(dbx_workspace, dbx_client, tmp_path):
    ws = dbx_workspace(clusters=[cluster(C1, state="TERMINATED"), cluster(C2)])
    new = wheel("package1", "0.2.0")
    seed(ws, dbx_client, {C2: [wheel("package1", "0.1.0")]}, [new, wheel("package1", "0.1.0")])
    started = run_script(
        "install_libraries.py", "--cluster-id", C1, "--wheel", new, *FAST, env=dbx_env(ws), cwd=tmp_path
    )
    assert started.returncode == 0, started.stderr
    assert statuses(ws, C1) == {new: "INSTALLED"} and len(posts(ws, "*/clusters/start")) == 1

    ws.clear_log()
    held = run_script(
        "install_libraries.py", "--cluster-id", C2, "--wheel", new, "--no-restart", *FAST, env=dbx_env(ws), cwd=tmp_path
    )
    assert held.returncode == 0, held.stderr
    assert posts(ws, "*/clusters/restart") == [] and len(posts(ws, "*/libraries/uninstall")) == 1
    assert "not restarted (--no-restart)" in held.stdout
    # The next run without --no-restart performs the pending restart exactly once.
    ws.clear_log()
    finish = run_script(
        "install_libraries.py", "--cluster-id", C2, "--wheel", new, *FAST, env=dbx_env(ws), cwd=tmp_path
    )
    assert finish.returncode == 0, finish.stderr
    assert len(posts(ws, "*/clusters/restart")) == 1 and statuses(ws, C2) == {new: "INSTALLED"}


def test_library_that_fails_to_install_fails_the_step_with_the_service_message(dbx_workspace, tmp_path):
    ws = dbx_workspace(clusters=[cluster(C1)])
    legacy = "dbfs:/FileStore/wheels/package1-0.3.0-py3-none-any.whl"
    ws.put_file(legacy, b"wheel")
    result = run_script(
        "install_libraries.py", "--cluster-id", C1, "--wheel", legacy, *FAST, env=dbx_env(ws), cwd=tmp_path
    )
    line = assert_one_line_error(result, code=1, contains="failed to install")
    assert "DBFS library installations are not supported on DBR 15 or above" in line
    assert "FAILED: " in result.stdout
    no_token(result)


def test_restart_that_never_finishes_hits_the_deadline(dbx_workspace, dbx_client, tmp_path):
    ws = dbx_workspace(clusters=[cluster(C1)], time_scale=1000)  # a restart takes hours here
    new = wheel("package1", "0.2.0")
    seed(ws, dbx_client, {C1: [wheel("package1", "0.1.0")]}, [new, wheel("package1", "0.1.0")], wait=False)
    result = run_script(
        "install_libraries.py",
        "--cluster-id",
        C1,
        "--wheel",
        new,
        "--timeout",
        "1",
        "--poll-interval",
        "0.1",
        env=dbx_env(ws),
        cwd=tmp_path,
    )
    assert_one_line_error(result, code=1, contains=f"cluster {C1} did not reach RUNNING: still RESTARTING")
    assert "deadline 1s" in result.stderr or "deadline" in result.stderr
    no_token(result)


def test_cluster_in_error_fails_with_its_message(dbx_workspace, tmp_path):
    ws = dbx_workspace(clusters=[cluster(C1)])
    ws.put_file(wheel("package1", "0.2.0"), b"w")
    ws.set_cluster_state(C1, "ERROR")
    result = run_script(
        "install_libraries.py",
        "--cluster-id",
        C1,
        "--wheel",
        wheel("package1", "0.2.0"),
        *FAST,
        env=dbx_env(ws),
        cwd=tmp_path,
    )
    assert_one_line_error(result, code=1, contains="ERROR")
    assert posts(ws) == []


def test_rollout_under_injected_faults_ends_exactly_right(dbx_workspace, dbx_client, tmp_path):
    ws = dbx_workspace(clusters=[cluster(C1), cluster(C2)], seed=11)
    old = [wheel("package1", "0.1.0"), wheel("package2", "0.1.0")]
    new = [wheel("package1", "0.2.0"), wheel("package2", "0.2.0")]
    seed(ws, dbx_client, {C1: old, C2: old}, old + new)
    ws.set_faults(
        "path=/api/*,fault=429,rate=0.1,retry_after=1; path=/api/*,fault=503,rate=0.05; path=/api/*,fault=reset,rate=0.02"
    )
    args = ["--cluster-id", C1, "--cluster-id", C2, "--wheel", new[0], "--wheel", new[1], *FAST]
    result = run_script("install_libraries.py", *args, env=dbx_env(ws), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    for cluster_id in (C1, C2):
        assert statuses(ws, cluster_id) == {new[0]: "INSTALLED", new[1]: "INSTALLED"}
    assert len(posts(ws, "*/clusters/restart")) == 2
    assert [r for r in ws.api_requests() if r.fault] != []  # the faults really fired
    no_token(result)


def test_summary_section_under_azure_devops(two_clusters, tmp_path):
    ws, old, new = two_clusters
    summary_dir = tmp_path / "summary"
    env = dbx_env(ws, TF_BUILD="True", CICD_SUMMARY_DIR=str(summary_dir))
    result = run_script("install_libraries.py", "--cluster-id", C1, "--wheel", new[0], *FAST, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    section = summary_dir / "install_libraries.md"
    assert f"##vso[task.uploadsummary]{section}" in result.stdout
    text = section.read_text(encoding="utf-8")
    assert text.startswith("### Install libraries — succeeded") and C1 in text and DBX_TOKEN not in text
    no_token(result)


def test_config_supplies_clusters_and_libraries_path(two_clusters, tmp_path):
    ws, old, new = two_clusters
    config = {
        "bundle": {"name": "demo"},
        "workspace": {"host": ws.url},
        "targets": {
            "dev": {"default": True, "deploy": {"clusters": [C1], "libraries_path": LIBS, "timeout_seconds": 60}}
        },
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    env = dbx_env(ws, DATABRICKS_HOST=None)
    result = run_script(
        "install_libraries.py", "--wheel", new[0].rsplit("/", 1)[-1], "--poll-interval", "0.05", env=env, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert statuses(ws, C1) == {new[0]: "INSTALLED", old[1]: "INSTALLED"}
    assert statuses(ws, C2)[old[0]] == "INSTALLED"  # not in deploy.clusters: untouched


@pytest.mark.parametrize(
    "args, code, contains",
    [
        (
            ["--cluster-id", "0000-000000-unknown", "--wheel", wheel("package1", "0.2.0")],
            2,
            "cluster 0000-000000-unknown does not exist",
        ),
        (["--cluster-id", C1, "--wheel", f"{LIBS}/../package1-0.2.0-py3-none-any.whl"], 2, "'..'"),
        (["--cluster-id", C1, "--wheel", "/tmp/package1-0.2.0-py3-none-any.whl"], 2, "outside the allowed roots"),
        (["--cluster-id", C1, "--wheel", wheel("package1", "9.9.9")], 2, "does not exist in the workspace"),
        (["--cluster-id", C1, "--wheel", f"{LIBS}/not-a-wheel.zip"], 2, "not a wheel"),
        (["--cluster-id", C1], 2, "nothing to install"),
        (["--wheel", wheel("package1", "0.2.0")], 2, "no cluster given"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(two_clusters, tmp_path, args, code, contains):
    ws, old, new = two_clusters
    result = run_script("install_libraries.py", *args, *FAST, env=dbx_env(ws), cwd=tmp_path)
    assert_one_line_error(result, code=code, contains=contains)
    assert [r for r in ws.api_requests() if r.method not in ("GET", "HEAD")] == []
    no_token(result)


def test_missing_token_wrong_token_and_wrong_host(two_clusters, tmp_path):
    ws, old, new = two_clusters
    args = ["--cluster-id", C1, "--wheel", new[0], *FAST]
    missing = run_script(
        "install_libraries.py",
        *args,
        env=dbx_env(ws, DATABRICKS_TOKEN=None, PATH="/usr/bin:/bin", TF_BUILD="True"),
        cwd=tmp_path,
    )
    assert_one_line_error(missing, code=2, contains="DATABRICKS_TOKEN")
    wrong = run_script("install_libraries.py", *args, env=dbx_env(ws, DATABRICKS_TOKEN="dapi-wrong-0000"), cwd=tmp_path)
    line = assert_one_line_error(wrong, code=1, contains="403")
    assert "DATABRICKS_TOKEN" in line and "dapi-wrong-0000" not in wrong.stdout + wrong.stderr
    host = run_script("install_libraries.py", *args, "--host", "http://127.0.0.1:9", env=dbx_env(ws), cwd=tmp_path)
    assert_one_line_error(host, code=1, contains="127.0.0.1:9")
    no_token(host)
    assert [r for r in ws.api_requests() if r.method not in ("GET", "HEAD")] == []


def test_requirements_local_file_becomes_pypi_libraries_and_remote_file_a_requirements_library(two_clusters, tmp_path):
    ws, old, new = two_clusters
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# pinned for the cluster\nrequests==2.32.3\n--prefer-binary\n")
    local = run_script(
        "install_libraries.py", "--cluster-id", C1, "--requirements", requirements, *FAST, env=dbx_env(ws), cwd=tmp_path
    )
    assert local.returncode == 0, local.stderr
    assert "notice: requirements.txt:3: ignored --prefer-binary" in local.stdout
    assert statuses(ws, C1)[json.dumps({"pypi": {"package": "requests==2.32.3"}})] == "INSTALLED"
    assert posts(ws, "*/clusters/restart") == []  # nothing replaced: no restart
    remote = f"{LIBS}/requirements.txt"
    ws.put_file(remote, b"pyyaml>=6\n")
    result = run_script(
        "install_libraries.py", "--cluster-id", C2, "--requirements", remote, *FAST, env=dbx_env(ws), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert statuses(ws, C2)[json.dumps({"requirements": remote})] == "INSTALLED"
    unreadable = run_script(
        "install_libraries.py",
        "--cluster-id",
        C1,
        "--requirements",
        tmp_path / "missing.txt",
        *FAST,
        env=dbx_env(ws),
        cwd=tmp_path,
    )
    assert_one_line_error(unreadable, code=2, contains="missing.txt does not exist")
    (tmp_path / "extra.txt").write_text("--extra-index-url https://extra.example/simple\nrequests==2.32.3\n")
    ws.clear_log()
    extra = run_script(
        "install_libraries.py",
        "--cluster-id",
        C1,
        "--requirements",
        tmp_path / "extra.txt",
        *FAST,
        env=dbx_env(ws),
        cwd=tmp_path,
    )
    assert_one_line_error(
        extra, code=2, contains="extra.txt:1: --extra-index-url cannot be installed as a cluster library"
    )
    assert ws.api_requests() == []


def test_auth_takes_the_shared_vocabulary_and_its_hints_name_accepted_values(two_clusters, tmp_path):
    ws, old, new = two_clusters
    args = ["install_libraries.py", "--cluster-id", C1, "--wheel", new[0], "--dry-run"]
    # An Entra token from elsewhere (fetch_secrets' `token` mode); the local workspace accepts it as a bearer.
    token = run_script(
        *args, "--auth", "token", env=dbx_env(ws, DATABRICKS_TOKEN=None, AZURE_ACCESS_TOKEN=DBX_TOKEN), cwd=tmp_path
    )
    assert token.returncode == 0, token.stderr
    no_token(token)
    for alias in ("azure-client-secret", "environment"):
        missing = run_script(*args, "--auth", alias, env=dbx_env(ws, DATABRICKS_TOKEN=None), cwd=tmp_path)
        assert_one_line_error(missing, code=2, contains="--auth environment needs AZURE_TENANT_ID")
    nothing = run_script(
        *args, env=dbx_env(ws, DATABRICKS_TOKEN=None, TF_BUILD="True", PATH="/nonexistent"), cwd=tmp_path
    )
    # Against the local workspace the hint is its token, not the Azure logins (those are for a real host).
    assert_one_line_error(nothing, code=2, contains="the local workspace takes DATABRICKS_TOKEN=dapi-local-token")
    assert [r for r in ws.api_requests() if r.method not in ("GET", "HEAD")] == []


def test_wait_ends_at_the_timeout_while_cluster_status_answers_503(dbx_workspace, dbx_client, tmp_path):
    # Every status call in the wait has the default 300 s retry budget, far longer than --timeout 2: before the
    # fix the first status call alone retried for 300 s. The generous subprocess timeout (120 s) is what fails then.
    ws = dbx_workspace(clusters=[cluster(C1)], faults="path=*/clusters/get,fault=503,skip=1")  # the plan's read works
    new = wheel("package1", "0.2.0")
    seed(ws, dbx_client, {C1: [wheel("package1", "0.1.0")]}, [new, wheel("package1", "0.1.0")])
    result = run_script(
        "install_libraries.py",
        "--cluster-id",
        C1,
        "--wheel",
        new,
        "--timeout",
        "2",
        "--poll-interval",
        "0.1",
        env=dbx_env(ws),
        cwd=tmp_path,
        timeout=120,
    )
    line = assert_one_line_error(result, code=1, contains=f"cluster {C1} did not reach RUNNING")
    assert "deadline (2s" in line and "503" in line
    assert [r.status for r in ws.api_requests("POST", "*/clusters/restart")] == [200]
    no_token(result)


def timed(*args, **kwargs):
    started = time.monotonic()
    result = run_script(*args, **kwargs)
    return result, time.monotonic() - started


@pytest.mark.parametrize("slow", ["*/clusters/get", "*/libraries/cluster-status", "*/fs/files/*"])
def test_the_reads_before_the_rollout_end_within_the_step_timeout(dbx_workspace, tmp_path, slow):
    # The issue: --timeout 12 took 32 s when clusters/get answered after 20 s, because the reads before the wait
    # were outside the deadline. Here each read would answer after 30 s; the step must end at its --timeout (3 s),
    # with a generous margin for interpreter start-up on a busy machine, far below the 30 s.
    ws = dbx_workspace(clusters=[cluster(C1)], latency_ms=[f"{slow}=30000"])
    ws.put_file(wheel("package1", "0.2.0"), b"w")
    ws.clear_log()
    result, elapsed = timed(
        "install_libraries.py",
        "--cluster-id",
        C1,
        "--wheel",
        wheel("package1", "0.2.0"),
        "--timeout",
        "3",
        env=dbx_env(ws),
        cwd=tmp_path,
        timeout=120,
    )
    line = assert_one_line_error(result, code=1, contains="step deadline reached (--timeout 3s)")
    assert "timed out" in line and slow.split("/")[1] in line
    assert elapsed < 3 + 6, elapsed
    assert [r for r in ws.api_requests() if r.method not in ("GET", "HEAD")] == []  # it never got to write
    no_token(result)


def test_a_rollout_that_fails_half_way_counts_the_writes_that_landed(dbx_workspace, dbx_client, tmp_path):
    # The uninstall, install and restart land, then the restart outlasts --timeout: the step fails, and its summary
    # says what it changed (before, a failed cluster counted as "0 changed" although all three writes had landed).
    ws = dbx_workspace(clusters=[cluster(C1)], time_scale=1000)  # a restart takes hours here
    new = wheel("package1", "0.2.0")
    seed(ws, dbx_client, {C1: [wheel("package1", "0.1.0")]}, [new, wheel("package1", "0.1.0")], wait=False)
    result, elapsed = timed(
        "install_libraries.py",
        "--cluster-id",
        C1,
        "--wheel",
        new,
        "--timeout",
        "2",
        "--poll-interval",
        "0.1",
        env=dbx_env(ws),
        cwd=tmp_path,
        timeout=120,
    )
    assert_one_line_error(result, code=1, contains=f"cluster {C1} did not reach RUNNING: still RESTARTING")
    assert elapsed < 2 + 6, elapsed
    landed = {
        endpoint: len(posts(ws, f"*/{endpoint}"))
        for endpoint in ("libraries/uninstall", "libraries/install", "clusters/restart")
    }
    assert landed == {"libraries/uninstall": 1, "libraries/install": 1, "clusters/restart": 1}
    assert "Install libraries: 1 changed, 0 unchanged, 1 failed" in result.stdout
    assert f"change: {C1}: install 1, replace 1, restart once" in result.stdout
    assert f"FAILED: {C1}: cluster {C1} did not reach RUNNING" in result.stdout
    no_token(result)
