"""run_job.py end to end against the local workspace: a deployed job run by its key, followed to its end, its
record read by evaluate_runs.py; failure and timeout (the run is cancelled)."""

from __future__ import annotations

import json
import signal
import sys

from deploy_fixtures import KNOWN_TOKEN
from helpers import SCRIPTS, assert_one_line_error, stop_with_sigterm
from jobs_fixtures import bundle, job, ok


def deploy(jobs_env, source: str, **extra) -> int:
    jobs_env.write(bundle({"load": job("etl/load", **extra)}))
    jobs_env.notebook("etl/load", source)
    ok(jobs_env.deploy())
    return jobs_env.ours()["load"]["job_id"]


def test_success_with_parameters_and_a_record_evaluate_runs_reads(jobs_env, tmp_path):
    source = "dbutils.notebook.exit('env=' + dbutils.widgets.get('env'))\n"
    job_id = deploy(jobs_env, source, parameters=[{"name": "env", "default": "dev"}])
    jobs_env.workspace.clear_log()
    result = jobs_env.run("run_job.py", "load", "--param", "env=qa", "--out-dir", str(tmp_path / "runs"))
    ok(result)
    assert f"#job/{job_id}/run/" in result.stdout and "PASS job load: TERMINATED SUCCESS" in result.stdout
    assert [r.path for r in jobs_env.workspace.api_requests("POST", "*/jobs/run-now")] == ["/api/2.2/jobs/run-now"]
    record = json.loads((tmp_path / "runs" / "load.json").read_text())
    assert record["run"]["job_id"] == job_id and record["output"]["notebook_output"]["result"] == "env=qa"
    evaluated = jobs_env.run("evaluate_runs.py", str(tmp_path / "runs"), "--junit-xml", str(tmp_path / "t.xml"))
    ok(evaluated)
    assert 'failures="0"' in (tmp_path / "t.xml").read_text()


def test_failure_relays_the_task_error_and_exits_1(jobs_env, tmp_path):
    deploy(jobs_env, "raise ValueError('the report is broken')\n")
    result = jobs_env.run("run_job.py", "load", "--out-dir", str(tmp_path / "runs"))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "main: TERMINATED FAILED: ValueError: the report is broken" in result.stdout
    assert "FAIL job load: TERMINATED FAILED" in result.stdout
    assert KNOWN_TOKEN not in result.stdout + result.stderr
    evaluated = jobs_env.run("evaluate_runs.py", str(tmp_path / "runs"), "--junit-xml", str(tmp_path / "t.xml"))
    assert evaluated.returncode == 1 and "the report is broken" in (tmp_path / "t.xml").read_text()


def test_timeout_cancels_the_run(jobs_env, tmp_path):
    deploy(jobs_env, "import time\ntime.sleep(60)\n")
    result = jobs_env.run("run_job.py", "load", "--timeout", "3", "--out-dir", str(tmp_path / "runs"))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "cancelling run" in result.stdout and "FAIL job load: timed out" in result.stdout
    run_id = json.loads((tmp_path / "runs" / "load.json").read_text())["run"]["run_id"]
    assert jobs_env.workspace.run(run_id)["state"]["result_state"] == "CANCELED"


def test_sigterm_cancels_the_run_before_the_step_exits(jobs_env, tmp_path):
    deploy(jobs_env, "import time\ntime.sleep(60)\n")
    command = [sys.executable, str(SCRIPTS / "run_job.py"), "load", "--timeout", "90"]
    started = lambda: bool(jobs_env.workspace.api_requests("POST", "*/jobs/run-now"))  # noqa: E731
    code, stdout, stderr = stop_with_sigterm(command, started, env=jobs_env.env, cwd=jobs_env.folder)
    assert code == 128 + signal.SIGTERM, stdout + stderr
    assert "interrupted: cancelling run" in stdout and stderr.strip().endswith("error: stopped (SIGTERM)")
    assert len(jobs_env.workspace.api_requests("POST", "*/jobs/runs/cancel")) == 1


def test_no_wait_returns_once_started_and_unknown_key_is_an_error(jobs_env):
    deploy(jobs_env, "dbutils.notebook.exit('ok')\n")
    ok(jobs_env.run("run_job.py", "load", "--no-wait"))
    assert_one_line_error(jobs_env.run("run_job.py", "nope"), 2, "job nope of app/local is not deployed")
    assert_one_line_error(jobs_env.run("run_job.py", "load", "--param", "novalue"), 2, "--param expects NAME=VALUE")


def test_the_repos_quality_report_job_runs_the_deployed_notebook_against_the_deployed_wheel(dbx_workspace, tmp_path):
    """The issue's done-when on the repository's own config.json, target local: wheels uploaded, notebooks and jobs
    deployed, then `run_job.py quality_report -t local` succeeds on the job's own cluster (its task library is the
    package1 wheel, resolved from the wheels folder by deploy_jobs.py)."""
    from databricks_fixtures import dbx_env
    from helpers import ROOT, run_script

    workspace = dbx_workspace(time_scale=0.01)
    env = dbx_env(workspace)
    config = ["--config", str(ROOT / "config.json"), "-t", "local"]

    def step(name: str, *args) -> str:
        result = run_script(name, *args, env=env, cwd=tmp_path, timeout=600)
        assert result.returncode == 0, f"{name}: {result.stdout}\n{result.stderr}"
        return result.stdout

    step("build_packages.py", "--root", ROOT, "--out-dir", tmp_path / "wheels", "--version-suffix", ".dev7")
    step("copy_notebooks.py", ROOT, tmp_path / "notebooks")
    step(
        "upload_files.py",
        *config,
        "/Workspace/Shared/ci-cd/local/libraries",
        *sorted((tmp_path / "wheels").glob("*.whl")),
    )
    step("deploy_notebooks.py", *config, tmp_path / "notebooks")
    step("deploy_jobs.py", *config, "--wheels-dir", tmp_path / "wheels")
    out = step("run_job.py", "quality_report", *config, "--out-dir", tmp_path / "runs")

    assert "PASS job quality_report: TERMINATED SUCCESS" in out, out
    record = json.loads((tmp_path / "runs" / "quality_report.json").read_text())
    assert json.loads(record["output"]["notebook_output"]["result"])["passed"] is True
