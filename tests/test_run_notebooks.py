"""run_notebooks.py against the local workspace: notebooks imported with databricks-sdk, executed for real by the
local workspace's run subprocess, then evaluated by evaluate_runs.py into JUnit read back with junitparser."""

from __future__ import annotations

import base64
import json
import signal
import sys
import threading
import time
from pathlib import Path

import junitparser
import pytest
import xmlschema
from databricks_fixtures import DBX_TOKEN, dbx_env
from helpers import DATA, SCRIPTS, assert_one_line_error, run_script, stop_with_sigterm

FOLDER = "/Workspace/Shared/ci/tests"
SCHEMA = xmlschema.XMLSchema(DATA / "junit" / "JUnit.xsd")

SUMMARY_NOTEBOOK = """# Databricks notebook source
import json
tests = [
    {"name": "test_one", "classname": "suite.Checks", "status": "passed", "duration_seconds": 0.01},
    {"name": "test_two", "classname": "suite.Checks", "status": "%s", "message": "2 != 3", "details": "Traceback: 2 != 3"},
]
dbutils.notebook.exit(json.dumps({"tests": tests}))
"""
FAILING_NOTEBOOK = """# Databricks notebook source
def divide():
    return 1 / 0

divide()
"""
SLEEPING_NOTEBOOK = """# Databricks notebook source
import time
time.sleep(120)
"""
PARAMETER_NOTEBOOK = """# Databricks notebook source
dbutils.notebook.exit("catalog=" + dbutils.widgets.get("catalog"))
"""


@pytest.fixture
def workspace(dbx_workspace):
    return dbx_workspace(time_scale=0.01)


def sdk(ws):
    from databricks.sdk import WorkspaceClient
    from databricks.sdk.core import Config

    return WorkspaceClient(config=Config(host=ws.url, token=DBX_TOKEN, auth_type="pat", retry_timeout_seconds=60))


def put_notebooks(ws, notebooks: dict[str, str]) -> None:
    from databricks.sdk.service.workspace import ImportFormat, Language

    client = sdk(ws)
    for path, source in notebooks.items():
        client.workspace.mkdirs(path.rsplit("/", 1)[0])
        client.workspace.import_(
            path,
            content=base64.b64encode(source.encode()).decode(),
            format=ImportFormat.SOURCE,
            language=Language.PYTHON,
            overwrite=True,
        )


def cluster_id(ws) -> str:
    return ws.cluster_ids[0]


def run_notebooks(ws, tmp_path: Path, *args: str, env=None):
    out = tmp_path / "runs"
    started = time.monotonic()
    result = run_script(
        "run_notebooks.py",
        *args,
        "--out-dir",
        out,
        "--cluster-id",
        cluster_id(ws),
        "--poll-max",
        "1",
        env=env or dbx_env(ws),
        timeout=240,
    )
    result.seconds = time.monotonic() - started
    return result, out


def records(out: Path) -> dict[str, dict]:
    return {data["name"]: data for data in (json.loads(p.read_text()) for p in sorted(out.glob("*.json")))}


def evaluate(out: Path) -> tuple[int, dict[str, junitparser.TestCase], str]:
    junit_file = out.parent / "tests.xml"
    result = run_script("evaluate_runs.py", out, "--junit-xml", junit_file)
    SCHEMA.validate(str(junit_file))
    document = junitparser.JUnitXml.fromfile(str(junit_file))
    return result.returncode, {case.name: case for suite in document for case in suite}, result.stdout


def test_a_folder_runs_its_test_notebooks_concurrently_and_the_results_become_junit(workspace, tmp_path):
    put_notebooks(
        workspace,
        {
            f"{FOLDER}/test_summary": SUMMARY_NOTEBOOK % "passed",
            f"{FOLDER}/deeper/test_params": PARAMETER_NOTEBOOK,
            f"{FOLDER}/helper_not_a_test": PARAMETER_NOTEBOOK,
        },
    )

    result, out = run_notebooks(workspace, tmp_path, FOLDER, "--param", "catalog=dev_catalog")

    assert result.returncode == 0, result.stdout + result.stderr
    found = records(out)
    assert sorted(found) == [f"{FOLDER}/deeper/test_params", f"{FOLDER}/test_summary"]
    params = found[f"{FOLDER}/deeper/test_params"]
    assert params["output"]["notebook_output"]["result"] == "catalog=dev_catalog"
    assert params["run"]["state"]["result_state"] == "SUCCESS"
    # get-output was read for the task run, never the parent (which the service refuses)
    assert params["output"]["metadata"]["run_id"] == params["run"]["tasks"][0]["run_id"] != params["run"]["run_id"]
    assert result.stdout.count(params["run"]["run_page_url"]) == 1
    assert f"{FOLDER}/deeper/test_params: now TERMINATED SUCCESS" in result.stdout
    assert workspace.count("POST", "*/jobs/runs/submit") == 2

    code, cases, _ = evaluate(out)
    assert code == 0 and sorted(cases) == ["test_one", "test_params", "test_two"]
    assert all(case.is_passed for case in cases.values())


def test_a_failing_notebook_and_a_failing_test_exit_1_with_their_messages(workspace, tmp_path):
    put_notebooks(
        workspace, {f"{FOLDER}/test_broken": FAILING_NOTEBOOK, f"{FOLDER}/test_summary": SUMMARY_NOTEBOOK % "failed"}
    )

    result, out = run_notebooks(workspace, tmp_path, FOLDER)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "ZeroDivisionError" in result.stdout  # the output is relayed
    code, cases, stdout = evaluate(out)
    assert code == 1
    broken = cases["test_broken"].result[0]
    assert isinstance(broken, junitparser.Failure) and "ZeroDivisionError" in broken.message
    assert "divide" in broken.text  # the traceback names the failing function
    failed = cases["test_two"].result[0]
    assert isinstance(failed, junitparser.Failure) and failed.message == "2 != 3"
    assert cases["test_one"].is_passed


def test_a_run_past_the_deadline_is_cancelled_and_recorded_as_a_timeout(workspace, tmp_path):
    put_notebooks(workspace, {f"{FOLDER}/test_sleeps": SLEEPING_NOTEBOOK, f"{FOLDER}/test_quick": PARAMETER_NOTEBOOK})

    result, out = run_notebooks(
        workspace, tmp_path, f"{FOLDER}/test_sleeps", f"{FOLDER}/test_quick", "--param", "catalog=c", "--timeout", "4"
    )

    assert result.returncode == 1, result.stdout + result.stderr
    assert result.seconds < 60  # far from the notebook's 120 s: the deadline ended it
    sleeping = records(out)[f"{FOLDER}/test_sleeps"]
    assert sleeping["timed_out"] is True and sleeping["run"]["state"]["result_state"] == "CANCELED"
    assert records(out)[f"{FOLDER}/test_quick"]["run"]["state"]["result_state"] == "SUCCESS"
    assert workspace.count("POST", "*/jobs/runs/cancel") == 1
    code, cases, _ = evaluate(out)
    assert code == 1 and "timed out after 4 s" in cases["test_sleeps"].result[0].message
    assert cases["test_quick"].is_passed


def test_a_run_cancelled_from_outside_is_an_error_not_a_timeout(workspace, tmp_path):
    put_notebooks(workspace, {f"{FOLDER}/test_sleeps": SLEEPING_NOTEBOOK})
    client = sdk(workspace)

    def cancel_when_running() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for run in client.jobs.list_runs(active_only=True):
                if run.state and run.state.life_cycle_state and run.state.life_cycle_state.value == "RUNNING":
                    client.jobs.cancel_run(run.run_id)
                    return
            time.sleep(0.2)

    canceller = threading.Thread(target=cancel_when_running)
    canceller.start()
    result, out = run_notebooks(workspace, tmp_path, f"{FOLDER}/test_sleeps", "--timeout", "90")
    canceller.join()

    assert result.returncode == 1
    record = records(out)[f"{FOLDER}/test_sleeps"]
    assert record["timed_out"] is False and record["run"]["state"]["result_state"] == "CANCELED"
    code, cases, _ = evaluate(out)
    assert "the run was cancelled" in cases["test_sleeps"].result[0].message


def test_sigterm_cancels_the_runs_it_started_as_ctrl_c_does(workspace, tmp_path):
    """A runner stopping the step (the local runner at a timeout, an agent on cancel) sends SIGTERM: the step
    cancels its runs before it exits, instead of leaving them to run to their own timeout."""
    put_notebooks(workspace, {f"{FOLDER}/test_sleeps": SLEEPING_NOTEBOOK})
    out = tmp_path / "runs"
    command = [sys.executable, str(SCRIPTS / "run_notebooks.py"), f"{FOLDER}/test_sleeps", "--out-dir", str(out)]
    command += ["--cluster-id", cluster_id(workspace), "--poll-max", "1", "--timeout", "90"]
    submitted = lambda: workspace.count("POST", "*/jobs/runs/submit") > 0  # noqa: E731
    code, stdout, stderr = stop_with_sigterm(command, submitted, env=dbx_env(workspace))
    assert code == 128 + signal.SIGTERM, stdout + stderr
    assert stderr.strip().splitlines()[-1] == "error: stopped (SIGTERM)"
    assert workspace.count("POST", "*/jobs/runs/cancel") == 1
    record = records(out)[f"{FOLDER}/test_sleeps"]
    assert record["run"]["state"]["life_cycle_state"] in ("TERMINATING", "TERMINATED")


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ("SKIPPED", "the run was skipped: Skipped: no capacity"),
        ("INTERNAL_ERROR", "internal error: Skipped: no capacity"),
    ],
)
def test_skipped_and_internal_error_runs_are_errors(workspace, tmp_path, state, message):
    path = f"{FOLDER}/test_platform"
    put_notebooks(workspace, {path: PARAMETER_NOTEBOOK})
    workspace.script_run(path, result_state=state, error="Skipped: no capacity")

    result, out = run_notebooks(workspace, tmp_path, path)

    assert result.returncode == 1, result.stdout + result.stderr
    assert records(out)[path]["run"]["state"]["life_cycle_state"] == state
    assert f"now {state}" in result.stdout
    code, cases, _ = evaluate(out)
    assert code == 1 and message in cases["test_platform"].result[0].message


def test_output_over_the_5_mb_limit_is_reported_as_truncated(workspace, tmp_path):
    put_notebooks(
        workspace,
        {
            f"{FOLDER}/test_big": "# Databricks notebook source\nimport json\n"
            'dbutils.notebook.exit(json.dumps({"tests": [{"name": "t", "status": "passed", '
            '"message": "x" * (6 * 1024 * 1024)}]}))\n'
        },
    )

    result, out = run_notebooks(workspace, tmp_path, f"{FOLDER}/test_big")

    assert result.returncode == 1, result.stdout + result.stderr
    output = records(out)[f"{FOLDER}/test_big"]["output"]["notebook_output"]
    assert output["truncated"] is True and len(output["result"]) <= 5 * 1024 * 1024
    code, cases, _ = evaluate(out)
    assert code == 1 and "truncated" in cases["test_big"].result[0].message


def test_submit_answered_with_429s_and_resets_starts_exactly_one_run_per_notebook(workspace, tmp_path):
    notebooks = {f"{FOLDER}/test_{index}": PARAMETER_NOTEBOOK for index in range(4)}
    put_notebooks(workspace, notebooks)
    workspace.set_faults(
        "path=*/jobs/runs/submit,fault=429,rate=0.5,retry_after=0; path=*/jobs/runs/submit,fault=reset-after,rate=0.4"
    )

    result, out = run_notebooks(workspace, tmp_path, FOLDER, "--param", "catalog=c")

    assert result.returncode == 0, result.stdout + result.stderr
    assert [r for r in workspace.api_requests("POST", "*/jobs/runs/submit") if r.fault]  # the faults fired
    runs = [run for run in sdk(workspace).jobs.list_runs() if run.run_name and run.run_name.startswith("ci-cd test")]
    assert sorted(run.run_name for run in runs) == sorted(f"ci-cd test: {path}" for path in notebooks)


def test_notebook_output_cannot_inject_logging_commands(workspace, tmp_path):
    injected = "##vso[task.setvariable variable=pwned]yes"
    put_notebooks(
        workspace,
        {
            f"{FOLDER}/test_evil": f'# Databricks notebook source\nprint("{injected}")\n'
            f'raise RuntimeError("{injected}")\n'
        },
    )

    result, out = run_notebooks(workspace, tmp_path, f"{FOLDER}/test_evil", env=dbx_env(workspace, TF_BUILD="True"))

    assert result.returncode == 1
    live = [line for line in (result.stdout + result.stderr).splitlines() if "##vso[" in line or "##[" in line]
    ours = (
        "##vso[task.logissue type=error]",
        "##[group]",
        "##[endgroup]",
        "##vso[task.setvariable variable=run_notebooks_out_dir]",
    )
    assert live and all(line.startswith(ours) for line in live), live
    assert all("pwned" not in line.split("]", 1)[0] for line in live)


def test_an_unknown_notebook_is_bad_input_and_nothing_is_submitted(workspace, tmp_path):
    put_notebooks(workspace, {f"{FOLDER}/test_summary": SUMMARY_NOTEBOOK % "passed"})

    result, out = run_notebooks(workspace, tmp_path, f"{FOLDER}/test_summary", f"{FOLDER}/test_missing")

    assert_one_line_error(result, 2, f"notebook {FOLDER}/test_missing does not exist in the workspace")
    assert workspace.count("POST", "*/jobs/runs/submit") == 0 and not out.exists()


@pytest.mark.parametrize(
    ("args", "contains"),
    [
        (["--new-cluster", "{"], "--new-cluster is not valid JSON"),
        (["--param", "novalue"], "--param expects NAME=VALUE"),
        (["--poll-max", "0"], "--poll-max must be at least 1 second"),
        (["--timeout", "-1"], "--timeout must be a positive number"),
        ([f"{FOLDER}/empty"], "holds no notebook matching 'test_*'"),
        (["relative/test_x"], "is relative and there is no deploy.notebooks_path"),
    ],
)
def test_bad_input_is_one_error_line(workspace, tmp_path, args, contains):
    put_notebooks(workspace, {f"{FOLDER}/empty/helper": PARAMETER_NOTEBOOK})
    paths = [] if any(a.startswith(("/", "relative")) for a in args) else [FOLDER]
    cluster = [] if "--new-cluster" in args else ["--cluster-id", cluster_id(workspace)]
    result = run_script(
        "run_notebooks.py",
        *paths,
        *args,
        "--out-dir",
        tmp_path / "runs",
        *cluster,
        env=dbx_env(workspace),
        cwd=tmp_path,
    )
    assert_one_line_error(result, 2, contains)
    assert workspace.count("POST", "*/jobs/runs/submit") == 0


def test_dry_run_lists_the_runs_and_submits_nothing(workspace, tmp_path):
    put_notebooks(workspace, {f"{FOLDER}/test_summary": SUMMARY_NOTEBOOK % "passed"})
    result, out = run_notebooks(workspace, tmp_path, FOLDER, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert f"would run {FOLDER}/test_summary" in result.stdout
    assert workspace.count("POST", "*/jobs/runs/submit") == 0 and not out.exists()


def test_a_broken_rule_in_the_deployed_wheel_fails_exactly_its_test_with_its_message(workspace, tmp_path, sample_repo):
    """The sample test notebook on the local workspace, against a package1 wheel built from a broken rule: exactly the
    test that checks that rule fails, with unittest's message, and every other test still passes."""
    from databricks.sdk.service import compute

    rules = sample_repo / "package1" / "package1" / "rules.py"
    rules.write_text(rules.read_text().replace('return f"is below {minimum}"', "return None"))
    built = run_script("build_packages.py", sample_repo / "package1", "--out-dir", tmp_path / "wheels", cwd=tmp_path)
    assert built.returncode == 0, built.stdout + built.stderr
    wheel = next((tmp_path / "wheels").glob("package1-*.whl"))
    client = sdk(workspace)
    client.files.upload_from(f"/Volumes/main/ci/libs/{wheel.name}", str(wheel))
    client.libraries.install(cluster_id(workspace), [compute.Library(whl=f"/Volumes/main/ci/libs/{wheel.name}")])
    put_notebooks(
        workspace,
        {
            f"{FOLDER}/test_quality_rules": (
                sample_repo / "package1" / "notebooks" / "test_quality_rules.py"
            ).read_text()
        },
    )

    result, out = run_notebooks(workspace, tmp_path, f"{FOLDER}/test_quality_rules")

    assert result.returncode == 1, result.stdout + result.stderr
    code, cases, stdout = evaluate(out)
    failed = {name: case for name, case in cases.items() if not case.is_passed}
    assert code == 1 and list(failed) == ["test_each_rule_finds_its_violation"], stdout
    assert failed["test_each_rule_finds_its_violation"].result[0].message.startswith("AssertionError")
    assert (
        len(cases) >= 4 and failed["test_each_rule_finds_its_violation"].classname == "package1.QualityRulesOnCluster"
    )
