"""destroy.py end to end against the local workspace: everything of the deployment goes, nothing else does."""

from __future__ import annotations

import io

from deploy_fixtures import KNOWN_TOKEN, write_notebook
from helpers import assert_one_line_error
from jobs_fixtures import CLUSTER, bundle, job, ok

OTHER_SCRIPT = {"workspace": {"destination": "/Workspace/Shared/other/init.sh"}}


def upload(jobs_env, path: str, data: bytes) -> None:
    from databricks.sdk.service.workspace import ImportFormat

    jobs_env.client.workspace.upload(path, io.BytesIO(data), format=ImportFormat.AUTO, overwrite=True)


def deploy_everything(jobs_env, tmp_path, target: str = "local") -> None:
    """What the CD stage leaves behind: notebooks (with their manifest), libraries, init script, jobs."""
    jobs_env.write(bundle({"load": job("etl/load"), "report": job("etl/report", name="report")}))
    source = tmp_path / f"notebooks-{target}"
    write_notebook(source, "etl/load.py")
    write_notebook(source, "etl/report.py")
    ok(jobs_env.run("deploy_notebooks.py", "-t", target, str(source)))
    base = f"/Workspace/Shared/app/{target}"
    for name in ("package1-1.0-py3-none-any.whl", "requirements.txt"):
        jobs_env.client.workspace.mkdirs(f"{base}/libraries")
        upload(jobs_env, f"{base}/libraries/{name}", b"x")
    upload(jobs_env, f"{base}/init.sh", b"#!/bin/bash\n")
    ok(jobs_env.run("attach_init_script.py", "-t", target))
    ok(jobs_env.deploy("-t", target))


def test_destroy_leaves_nothing_of_the_deployment_and_nothing_else(jobs_env, tmp_path):
    from databricks.sdk.service import compute

    spec = jobs_env.client.clusters.get(CLUSTER)
    jobs_env.client.clusters.edit(
        CLUSTER,
        spark_version=spec.spark_version,
        cluster_name=spec.cluster_name,
        init_scripts=[compute.InitScriptInfo.from_dict(OTHER_SCRIPT)],
    )
    deploy_everything(jobs_env, tmp_path, "local")
    deploy_everything(jobs_env, tmp_path, "dev")  # another target's deployment in the same workspace
    hand = jobs_env.client.jobs.create(name="load (local)").job_id
    upload(jobs_env, "/Workspace/Shared/app/keep.txt", b"keep")
    upload(jobs_env, "/Workspace/Shared/app/local/notebooks/mine.txt", b"not deployed")  # not in the manifest
    scripts = [s.as_dict() for s in jobs_env.client.clusters.get(CLUSTER).init_scripts]
    assert {"workspace": {"destination": "/Workspace/Shared/app/local/init.sh"}} in scripts

    jobs_env.workspace.clear_log()
    dry = jobs_env.run("destroy.py", "--dry-run")
    ok(dry)
    assert [r for r in jobs_env.workspace.requests if r.method != "GET" and r.path.startswith("/api/")] == []
    for what in ("remove job load", "remove job report", "init script entry", "remove library", "deploy manifest"):
        assert what in dry.stdout, dry.stdout

    result = jobs_env.run("destroy.py")
    ok(result)
    assert jobs_env.ours("local") == {}
    assert set(jobs_env.ours("dev")) == {"load", "report"}
    assert jobs_env.client.jobs.get(hand).settings.name == "load (local)"
    names = {o.path for o in jobs_env.client.workspace.list("/Workspace/Shared/app")}
    assert names == {"/Shared/app/dev", "/Shared/app/keep.txt", "/Shared/app/local"}, names
    left = {o.path for o in jobs_env.client.workspace.list("/Workspace/Shared/app/local", recursive=True)}
    assert left == {"/Shared/app/local/notebooks/mine.txt"}  # someone else's file, and so its folder, stay
    assert "kept folder /Workspace/Shared/app/local/notebooks (once empty): something else is in it" in result.stdout
    scripts = [s.as_dict() for s in jobs_env.client.clusters.get(CLUSTER).init_scripts]
    assert scripts == [OTHER_SCRIPT, {"workspace": {"destination": "/Workspace/Shared/app/dev/init.sh"}}]
    assert KNOWN_TOKEN not in result.stdout + result.stderr

    jobs_env.workspace.clear_log()
    again = jobs_env.run("destroy.py")
    ok(again)
    assert "nothing to remove" in again.stdout
    assert [r for r in jobs_env.workspace.requests if r.method != "GET" and r.path.startswith("/api/")] == []


def test_production_is_refused_without_yes(jobs_env, tmp_path):
    jobs_env.write(bundle({"load": job("etl/load")}))
    jobs_env.notebook("etl/load", target="prod")
    ok(jobs_env.deploy("-t", "prod"))
    assert_one_line_error(jobs_env.run("destroy.py", "-t", "prod"), 2, "refuses it without --yes")
    assert set(jobs_env.ours("prod")) == {"load"}
    ok(jobs_env.run("destroy.py", "-t", "prod", "--yes"))
    assert jobs_env.ours("prod") == {}
