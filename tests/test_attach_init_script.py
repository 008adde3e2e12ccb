"""attach_init_script.py end to end against the local workspace (subprocess, as the pipeline runs it)."""

from __future__ import annotations

import pytest
from databricks_fixtures import DBX_TOKEN, dbx_env
from helpers import assert_one_line_error, run_script

C1, C2 = "0101-000000-cluster01", "0101-000000-cluster02"
SCRIPT = "/Workspace/Shared/ci-cd/init.sh"
VOLUME_SCRIPT = "/Volumes/main/default/scripts/init.sh"
FIRST = {"volumes": {"destination": "/Volumes/main/default/scripts/first.sh"}}


@pytest.fixture
def ws(dbx_workspace):
    ws = dbx_workspace(
        clusters=[
            {
                "cluster_id": C1,
                "cluster_name": "dev",
                "spark_version": "15.4.x-scala2.12",
                "state": "RUNNING",
                "autoscale": {"min_workers": 1, "max_workers": 3},
                "spark_conf": {"spark.databricks.delta.preview.enabled": "true"},
                "custom_tags": {"team": "data"},
                "spark_env_vars": {"ENV": "dev"},
                "autotermination_minutes": 45,
                "init_scripts": [FIRST],
            },
            {
                "cluster_id": C2,
                "cluster_name": "test",
                "spark_version": "14.3.x-scala2.12",
                "state": "TERMINATED",
                "num_workers": 2,
            },
        ]
    )
    ws.put_file(SCRIPT, b"#!/bin/bash\nset -euo pipefail\n")
    ws.put_file(VOLUME_SCRIPT, b"#!/bin/bash\n")
    ws.clear_log()
    return ws


def edits(ws) -> list:
    return [r for r in ws.api_requests("POST") if r.status == 200]


def test_attach_keeps_every_field_appends_once_and_says_a_restart_happens(ws, tmp_path):
    before = ws.cluster(C1)
    result = run_script(
        "attach_init_script.py",
        "--cluster-id",
        C1,
        "--cluster-id",
        C2,
        "--script",
        SCRIPT,
        env=dbx_env(ws),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    after = ws.cluster(C1)
    assert after["init_scripts"] == [FIRST, {"workspace": {"destination": SCRIPT}}]
    for key in (
        "autoscale",
        "spark_conf",
        "custom_tags",
        "spark_env_vars",
        "autotermination_minutes",
        "cluster_name",
        "spark_version",
    ):
        assert after[key] == before[key], key
    assert ws.cluster(C2)["num_workers"] == 2 and ws.cluster(C2)["init_scripts"] == [
        {"workspace": {"destination": SCRIPT}}
    ]
    assert f"notice: cluster {C1} restarts now" in result.stdout
    assert f"notice: cluster {C2} is TERMINATED: the init script runs at its next start" in result.stdout
    assert DBX_TOKEN not in result.stdout + result.stderr

    ws.clear_log()
    again = run_script(
        "attach_init_script.py", "--cluster-id", C1, "--script", "/Shared/ci-cd/init.sh", env=dbx_env(ws), cwd=tmp_path
    )
    assert again.returncode == 0, again.stderr
    assert edits(ws) == [] and "already attached" in again.stdout
    assert len(ws.cluster(C1)["init_scripts"]) == 2


def test_volume_script_gets_a_volumes_destination(ws, tmp_path):
    result = run_script(
        "attach_init_script.py", "--cluster-id", C2, "--script", VOLUME_SCRIPT, env=dbx_env(ws), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert ws.cluster(C2)["init_scripts"] == [{"volumes": {"destination": VOLUME_SCRIPT}}]


def test_dry_run_changes_nothing(ws, tmp_path):
    result = run_script(
        "attach_init_script.py", "--cluster-id", C1, "--script", SCRIPT, "--dry-run", env=dbx_env(ws), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert f"would attach {SCRIPT}" in result.stdout and "dry run, nothing written" in result.stdout
    assert edits(ws) == [] and ws.cluster(C1)["init_scripts"] == [FIRST]


@pytest.mark.parametrize(
    "args, code, contains",
    [
        (["--cluster-id", C1, "--script", "dbfs:/databricks/init/x.sh"], 2, "end-of-life"),
        (["--cluster-id", C1, "--script", "/Workspace/Shared/../init.sh"], 2, "'..'"),
        (["--cluster-id", C1, "--script", "/etc/init.sh"], 2, "outside the allowed roots"),
        (["--cluster-id", C1, "--script", "/Workspace/Shared/missing.sh"], 2, "does not exist in the workspace"),
        (
            ["--cluster-id", "0000-000000-unknown", "--cluster-id", C1, "--script", SCRIPT],
            2,
            "cluster 0000-000000-unknown does not exist",
        ),
        (["--script", SCRIPT], 2, "no cluster given"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(ws, tmp_path, args, code, contains):
    result = run_script("attach_init_script.py", *args, env=dbx_env(ws), cwd=tmp_path)
    assert_one_line_error(result, code=code, contains=contains)
    assert edits(ws) == [] and ws.cluster(C1)["init_scripts"] == [FIRST]
    assert DBX_TOKEN not in result.stdout + result.stderr


def test_wrong_token_fails_with_an_auth_hint_and_no_leak(ws, tmp_path):
    result = run_script(
        "attach_init_script.py",
        "--cluster-id",
        C1,
        "--script",
        SCRIPT,
        env=dbx_env(ws, DATABRICKS_TOKEN="dapi-wrong-1111"),
        cwd=tmp_path,
    )
    line = assert_one_line_error(result, code=1, contains="403")
    assert "DATABRICKS_TOKEN" in line and "dapi-wrong-1111" not in result.stdout + result.stderr


def test_a_restarting_cluster_is_waited_for_and_a_stuck_one_hits_the_deadline(ws, tmp_path):
    # The first attach restarts C1 (editing a running cluster restarts it); the second waits for RUNNING, then edits.
    first = run_script("attach_init_script.py", "--cluster-id", C1, "--script", SCRIPT, env=dbx_env(ws), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    second = run_script(
        "attach_init_script.py",
        "--cluster-id",
        C1,
        "--script",
        VOLUME_SCRIPT,
        "--poll-interval",
        "0.02",
        env=dbx_env(ws),
        cwd=tmp_path,
    )
    assert second.returncode == 0, second.stderr
    assert ws.cluster(C1)["init_scripts"] == [
        FIRST,
        {"workspace": {"destination": SCRIPT}},
        {"volumes": {"destination": VOLUME_SCRIPT}},
    ]
    ws.set_cluster_state(C2, "PENDING")  # forced: never moves on
    stuck = run_script(
        "attach_init_script.py",
        "--cluster-id",
        C2,
        "--script",
        SCRIPT,
        "--timeout",
        "0.5",
        "--poll-interval",
        "0.1",
        env=dbx_env(ws),
        cwd=tmp_path,
    )
    assert_one_line_error(stuck, code=1, contains=f"cluster {C2} did not reach RUNNING/TERMINATED: still PENDING")
    assert "init_scripts" not in ws.cluster(C2) or ws.cluster(C2)["init_scripts"] in (None, [])


def test_the_reads_before_any_wait_end_within_the_step_timeout(dbx_workspace, tmp_path):
    # clusters/get would answer after 30 s; the step ends at its --timeout (2 s; generous margin for start-up).
    import time

    ws = dbx_workspace(
        clusters=[{"cluster_id": C1, "spark_version": "15.4.x-scala2.12", "state": "RUNNING"}],
        latency_ms=["*/clusters/get=30000"],
    )
    ws.put_file(SCRIPT, b"#!/bin/bash\n")
    started = time.monotonic()
    result = run_script(
        "attach_init_script.py",
        "--cluster-id",
        C1,
        "--script",
        SCRIPT,
        "--timeout",
        "2",
        env=dbx_env(ws),
        cwd=tmp_path,
        timeout=120,
    )
    elapsed = time.monotonic() - started
    assert_one_line_error(
        result, code=1, contains="step deadline reached (--timeout 2s): GET /api/2.0/clusters/get: timed out"
    )
    assert elapsed < 2 + 6, elapsed
    assert edits(ws) == []


def test_a_failure_after_an_edit_still_prints_the_summary_with_that_edit(ws, tmp_path):
    ws.set_cluster_state(C2, "PENDING")  # forced: never settles, so C2's wait ends at the step's deadline
    result = run_script(
        "attach_init_script.py",
        "--cluster-id",
        C1,
        "--cluster-id",
        C2,
        "--script",
        SCRIPT,
        "--timeout",
        "1",
        "--poll-interval",
        "0.1",
        env=dbx_env(ws),
        cwd=tmp_path,
        timeout=120,
    )
    assert_one_line_error(result, code=1, contains=f"cluster {C2} did not reach RUNNING/TERMINATED: still PENDING")
    assert [r.path for r in edits(ws)] == ["/api/2.0/clusters/edit"]  # C1's edit landed
    assert "Attach init script: 1 changed, 0 unchanged, 1 failed" in result.stdout
    assert f"change: {C1}: attached {SCRIPT}" in result.stdout and f"FAILED: {C2}: " in result.stdout
