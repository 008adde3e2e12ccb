"""deploy_jobs.py end to end against the local workspace, driven as a subprocess like a pipeline step: identity,
create-or-reset, zero writes when nothing changed, prune, references, permissions, wheels, errors."""

from __future__ import annotations

import json

from deploy_fixtures import KNOWN_TOKEN
from helpers import assert_one_line_error
from jobs_fixtures import bundle, job, ok

TWO_JOBS = {"load": job("etl/load"), "report": job("etl/report", name="report (${bundle.target})")}


def setup(jobs_env, jobs: dict = TWO_JOBS, **top) -> None:
    jobs_env.write(bundle(jobs, **top))
    jobs_env.notebook("etl/load")
    jobs_env.notebook("etl/report")
    jobs_env.workspace.clear_log()


def test_create_then_nothing_to_do_then_one_reset(jobs_env):
    setup(jobs_env)
    first = jobs_env.deploy()
    ok(first)
    deployed = jobs_env.ours()
    assert set(deployed) == {"load", "report"}
    load = deployed["load"]["settings"]
    assert load["name"] == "load (local)"
    assert load["tags"] == {"cicd-bundle": "app", "cicd-target": "local", "cicd-job-key": "load"}
    assert load["tasks"][0]["notebook_task"]["notebook_path"] == "/Workspace/Shared/app/local/notebooks/etl/load"
    assert sorted(jobs_env.writes()) == ["POST /api/2.2/jobs/create"] * 2
    assert "create load (job" in first.stdout and f"{jobs_env.workspace.url}/#job/" in first.stdout

    jobs_env.workspace.clear_log()
    second = jobs_env.deploy()
    ok(second)
    assert jobs_env.writes() == []  # nothing changed: zero writes
    assert "nothing to change" in second.stdout

    changed = dict(TWO_JOBS, report=job("etl/report", name="report (${bundle.target})", timeout_seconds=600))
    jobs_env.write(bundle(changed))
    jobs_env.workspace.clear_log()
    third = jobs_env.deploy()
    ok(third)
    assert jobs_env.writes() == ["POST /api/2.2/jobs/reset"]
    assert "update report" in third.stdout and "timeout_seconds" in third.stdout
    assert jobs_env.ours()["report"]["settings"]["timeout_seconds"] == 600
    assert jobs_env.ours()["report"]["job_id"] == deployed["report"]["job_id"]  # the same job, reset


def test_a_changed_task_is_one_reset_with_the_full_settings(jobs_env):
    setup(jobs_env)
    ok(jobs_env.deploy())
    jobs_env.notebook("etl/other")
    changed = dict(TWO_JOBS, load=job("etl/other"))
    jobs_env.write(bundle(changed))
    jobs_env.workspace.clear_log()
    result = jobs_env.deploy()
    ok(result)
    assert jobs_env.writes() == ["POST /api/2.2/jobs/reset"]
    assert "tasks[main].notebook_task.notebook_path" in result.stdout
    settings = jobs_env.ours()["load"]["settings"]
    assert settings["tasks"][0]["notebook_task"]["notebook_path"].endswith("/etl/other")
    assert settings["tags"]["cicd-job-key"] == "load" and settings["job_clusters"][0]["job_cluster_key"] == "main"


def test_renamed_job_key_is_pruned_and_created(jobs_env):
    setup(jobs_env)
    ok(jobs_env.deploy())
    old_id = jobs_env.ours()["load"]["job_id"]
    renamed = {"ingest": job("etl/load"), "report": TWO_JOBS["report"]}
    jobs_env.write(bundle(renamed))
    jobs_env.workspace.clear_log()
    without_prune = jobs_env.deploy()
    ok(without_prune)
    assert set(jobs_env.ours()) == {"load", "ingest", "report"}  # without --prune the old one stays
    jobs_env.workspace.clear_log()
    result = jobs_env.deploy("--prune")
    ok(result)
    assert jobs_env.writes() == ["POST /api/2.2/jobs/delete"]
    assert f"delete load (job {old_id})" in result.stdout
    assert set(jobs_env.ours()) == {"ingest", "report"}


def test_dev_target_is_prefixed_paused_and_tagged_and_prod_is_not(jobs_env):
    scheduled = {"load": job("etl/load", schedule={"quartz_cron_expression": "0 0 6 * * ?", "timezone_id": "UTC"})}
    jobs_env.write(bundle(scheduled))
    jobs_env.notebook("etl/load", target="dev")
    jobs_env.notebook("etl/load", target="prod")
    ok(jobs_env.deploy("-t", "dev"))
    ok(jobs_env.deploy("-t", "prod"))
    dev = jobs_env.ours("dev")["load"]["settings"]
    prod = jobs_env.ours("prod")["load"]["settings"]
    assert dev["name"] == "[dev local_user] load (dev)"
    assert dev["schedule"]["pause_status"] == "PAUSED"
    assert dev["tags"]["dev"] == "local_user" and dev["tags"]["cicd-target"] == "dev"
    assert prod["name"] == "load (prod)" and prod["schedule"].get("pause_status") != "PAUSED"
    assert "dev" not in prod["tags"]
    jobs_env.workspace.clear_log()
    ok(jobs_env.deploy("-t", "dev"))
    ok(jobs_env.deploy("-t", "prod"))
    assert jobs_env.writes() == []


def test_a_reference_between_jobs_creates_the_referenced_job_first(jobs_env):
    caller = {
        "name": "caller",
        "tasks": [{"task_key": "call", "run_job_task": {"job_id": "${resources.jobs.load.id}"}}],
        "description": "calls job ${resources.jobs.load.id}",
    }
    setup(jobs_env, {"caller": caller, "load": job("etl/load")})
    ok(jobs_env.deploy())
    deployed = jobs_env.ours()
    load_id = deployed["load"]["job_id"]
    assert deployed["caller"]["settings"]["tasks"][0]["run_job_task"]["job_id"] == load_id
    assert deployed["caller"]["settings"]["description"] == f"calls job {load_id}"
    assert load_id < deployed["caller"]["job_id"]  # created first
    jobs_env.workspace.clear_log()
    ok(jobs_env.deploy())
    assert jobs_env.writes() == []


def test_a_reference_cycle_is_a_config_error_before_any_call(jobs_env):
    a = {"name": "a", "tasks": [{"task_key": "t", "run_job_task": {"job_id": "${resources.jobs.b.id}"}}]}
    b = {"name": "b", "tasks": [{"task_key": "t", "run_job_task": {"job_id": "${resources.jobs.a.id}"}}]}
    jobs_env.write(bundle({"a": a, "b": b}))
    jobs_env.workspace.clear_log()
    result = jobs_env.deploy()
    assert_one_line_error(result, 2, "cycle: a -> b -> a")
    assert [r for r in jobs_env.workspace.requests if r.path.startswith("/api/2.2/")] == []


def test_permissions_are_applied_and_left_alone_when_equal(jobs_env):
    perms = [{"level": "CAN_VIEW", "group_name": "data-team"}]
    jobs = {"load": job("etl/load", permissions=[{"level": "CAN_MANAGE_RUN", "user_name": "ops@example.com"}])}
    setup(jobs_env, jobs, permissions=perms)
    ok(jobs_env.deploy())
    job_id = jobs_env.ours()["load"]["job_id"]
    acl = jobs_env.client.jobs.get_permissions(str(job_id)).as_dict()["access_control_list"]
    direct = {
        (e.get("user_name") or e.get("group_name"), p["permission_level"])
        for e in acl
        for p in e["all_permissions"]
        if not p.get("inherited")
    }
    assert direct == {
        ("local-user@example.com", "IS_OWNER"),
        ("data-team", "CAN_VIEW"),
        ("ops@example.com", "CAN_MANAGE_RUN"),
    }
    jobs_env.workspace.clear_log()
    ok(jobs_env.deploy())
    assert jobs_env.writes() == []  # equal: no PUT
    from databricks.sdk.service import jobs as sdk_jobs

    jobs_env.client.jobs.set_permissions(  # someone changes them by hand
        str(job_id),
        access_control_list=[
            sdk_jobs.JobAccessControlRequest(
                group_name="data-team", permission_level=sdk_jobs.JobPermissionLevel.CAN_MANAGE
            )
        ],
    )
    jobs_env.workspace.clear_log()
    result = jobs_env.deploy()
    ok(result)
    assert jobs_env.writes() == [f"PUT /api/2.0/permissions/jobs/{job_id}"] and "permissions changed" in result.stdout


def test_a_hand_made_job_with_the_same_name_is_never_touched(jobs_env):
    setup(jobs_env, {"load": job("etl/load", name="load")})
    hand = jobs_env.client.jobs.create(name="load", tags={"owner": "me"}).job_id
    ok(jobs_env.deploy("--prune"))
    ok(jobs_env.deploy("--prune"))
    assert jobs_env.client.jobs.get(hand).settings.tags == {"owner": "me"}
    assert jobs_env.ours()["load"]["job_id"] != hand
    assert len(list(jobs_env.client.jobs.list(name="load"))) == 2


def test_two_jobs_with_one_identity_are_an_error_naming_both(jobs_env):
    setup(jobs_env)
    ok(jobs_env.deploy())
    original = jobs_env.ours()["load"]
    copy = jobs_env.client.jobs.create(name="copy", tags=original["settings"]["tags"]).job_id
    jobs_env.workspace.clear_log()
    result = jobs_env.deploy()
    line = assert_one_line_error(result, 1, "two jobs carry the identity of job load")
    assert str(original["job_id"]) in line and str(copy) in line
    assert jobs_env.writes() == []


def test_a_missing_notebook_is_an_error_before_any_write(jobs_env):
    jobs_env.write(bundle(TWO_JOBS))
    jobs_env.notebook("etl/load")  # etl/report is not deployed
    jobs_env.workspace.clear_log()
    result = jobs_env.deploy()
    assert_one_line_error(result, 2, "job report runs /Workspace/Shared/app/local/notebooks/etl/report")
    assert "deploy the notebooks first" in result.stderr
    assert jobs_env.writes() == []


def test_a_spec_the_service_rejects_is_relayed_with_the_job_key(jobs_env):
    bad = job("etl/report")
    bad["tasks"][0]["task_key"] = "not ok!"  # the service accepts letters, digits, '_' and '-'
    setup(jobs_env, {"load": job("etl/load"), "report": bad})
    result = jobs_env.deploy()
    line = assert_one_line_error(result, 1, "creating job report")
    assert "Invalid task_key 'not ok!'" in line
    assert set(jobs_env.ours()) == {"load"}  # written before the failure: found by identity next time
    assert KNOWN_TOKEN not in result.stdout + result.stderr


def test_dry_run_prints_the_plan_and_writes_nothing(jobs_env):
    setup(jobs_env)
    ok(jobs_env.deploy())
    changed = {"load": job("etl/load", max_concurrent_runs=2), "new": job("etl/report", name="new")}
    jobs_env.write(bundle(changed))
    jobs_env.workspace.clear_log()
    result = jobs_env.deploy("--dry-run", "--prune")
    ok(result)
    assert jobs_env.writes() == []
    assert "update load" in result.stdout and "max_concurrent_runs" in result.stdout
    assert "create new" in result.stdout and "delete report" in result.stdout
    assert "dry run, nothing written" in result.stdout


def test_relative_wheels_resolve_to_the_uploaded_place_and_ambiguity_is_an_error(jobs_env, tmp_path):
    wheels = tmp_path / "dist"
    wheels.mkdir()
    (wheels / "package1-1.0-py3-none-any.whl").write_bytes(b"w")
    task_job = job("etl/load")
    task_job["tasks"][0]["libraries"] = [{"whl": "../dist/package1-*.whl"}, {"pypi": {"package": "pyyaml"}}]
    setup(jobs_env, {"load": task_job})
    ok(jobs_env.deploy("--wheels-dir", str(wheels)))
    libraries = jobs_env.ours()["load"]["settings"]["tasks"][0]["libraries"]
    assert libraries == [
        {"whl": "/Workspace/Shared/app/local/libraries/package1-1.0-py3-none-any.whl"},
        {"pypi": {"package": "pyyaml"}},
    ]
    (wheels / "package1-1.1-py3-none-any.whl").write_bytes(b"w")
    jobs_env.workspace.clear_log()
    two = jobs_env.deploy("--wheels-dir", str(wheels))
    assert_one_line_error(two, 2, "job load task main: library whl '../dist/package1-*.whl' matches 2 wheels")
    none = jobs_env.deploy("--wheels-dir", str(tmp_path / "missing"))
    assert_one_line_error(none, 2, "matches no wheel")
    assert jobs_env.writes() == []


def test_job_selects_one_job_and_run_as_goes_into_the_settings(jobs_env):
    setup(jobs_env, run_as={"service_principal_name": "9f0c0000-0000-0000-0000-000000000001"})
    ok(jobs_env.deploy("--job", "load"))
    deployed = jobs_env.ours()
    assert set(deployed) == {"load"}
    assert deployed["load"]["settings"]["run_as"] == {"service_principal_name": "9f0c0000-0000-0000-0000-000000000001"}
    assert deployed["load"]["run_as_user_name"] == "9f0c0000-0000-0000-0000-000000000001"
    assert_one_line_error(jobs_env.deploy("--job", "nope"), 2, "--job nope is not a job of this target")


def test_pipeline_exports_job_ids(jobs_env):
    setup(jobs_env)
    jobs_env.env.update({"TF_BUILD": "True", "AGENT_TEMPDIRECTORY": str(jobs_env.folder)})
    result = jobs_env.deploy()
    ok(result)
    ids = {k: v["job_id"] for k, v in jobs_env.ours().items()}
    assert f"##vso[task.setvariable variable=job_load_id]{ids['load']}" in result.stdout
    assert f"##vso[task.setvariable variable=job_report_id]{ids['report']}" in result.stdout
    section = json.dumps((jobs_env.folder.parent / "summary" / "deploy_jobs.md").read_text())
    assert f"#job/{ids['load']}" in section


def test_identity_is_found_on_every_page_of_the_job_list(jobs_env):
    for index in range(105):  # other people's jobs first: ours land on the second page of 100
        jobs_env.client.jobs.create(name=f"someone else's {index}")
    setup(jobs_env)
    ok(jobs_env.deploy())
    jobs_env.workspace.clear_log()
    ok(jobs_env.deploy())
    assert jobs_env.writes() == []
    lists = jobs_env.workspace.api_requests("GET", "*/jobs/list")
    assert len(lists) == 2 and all("expand_tasks=false" in r.query and "limit=100" in r.query for r in lists)
