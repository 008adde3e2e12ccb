"""evaluate_runs.py: run records in, a JUnit file out that the Ant JUnit schema accepts and a JUnit library reads.

The records are built with `run_results.record`, the function run_notebooks.py writes them with, holding runs/get
and runs/get-output answers in the service's shapes (test_run_notebooks.py makes real ones on the local
workspace). The JUnit file is validated against tests/data/junit/JUnit.xsd and parsed back with junitparser."""

from __future__ import annotations

import json
from pathlib import Path

import junitparser
import pytest
import xmlschema
from helpers import DATA, assert_one_line_error, run_script, script_env

from cicdkit import run_results

SCHEMA = xmlschema.XMLSchema(DATA / "junit" / "JUnit.xsd")
PAGE = "https://adb-1234.5.azuredatabricks.net/?o=1234#job/77/run/78"


def run(
    life_cycle: str = "TERMINATED",
    result_state: str | None = "SUCCESS",
    message: str = "",
    *,
    execution_ms: int = 4000,
    run_id: int = 78,
) -> dict:
    state = {"life_cycle_state": life_cycle, "state_message": message}
    if result_state:
        state["result_state"] = result_state
    return {
        "run_id": run_id,
        "run_page_url": PAGE,
        "run_type": "SUBMIT_RUN",
        "state": state,
        "start_time": 1_765_000_000_000,
        "end_time": 1_765_000_000_000 + execution_ms + 1000,
        "run_duration": execution_ms + 1000,
        "tasks": [{"task_key": "notebook", "run_id": run_id + 1, "state": state, "execution_duration": execution_ms}],
    }


def output(result: str | None = None, *, truncated: bool = False, error: str = "", trace: str = "") -> dict:
    answer: dict = {"metadata": {"run_id": 79}}
    if result is not None:
        answer["notebook_output"] = {"result": result, "truncated": truncated}
    if error:
        answer["error"], answer["error_trace"] = error, trace
    return answer


def summary(*tests: dict) -> str:
    return json.dumps({"tests": list(tests)})


def write(folder: Path, name: str, **fields) -> None:
    fields.setdefault("run", run())
    fields.setdefault("output", output())
    run_results.write_record(folder, run_results.record(notebook_path=f"/Workspace/ci/{name}", name=name, **fields))


def evaluate(folder: Path, *extra: str, env: dict | None = None):
    junit_file = folder.parent / "tests.xml"
    result = run_script("evaluate_runs.py", folder, "--junit-xml", junit_file, *extra, env=env)
    return result, junit_file


def parsed(junit_file: Path) -> junitparser.JUnitXml:
    SCHEMA.validate(str(junit_file))
    return junitparser.JUnitXml.fromfile(str(junit_file))


def cases(document: junitparser.JUnitXml) -> dict[str, junitparser.TestCase]:
    return {case.name: case for suite in document for case in suite}


def test_one_case_per_reported_test_and_the_failure_carries_its_message(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    write(
        runs,
        "package1/test_rules",
        output=output(
            summary(
                {"name": "test_clean", "classname": "package1.Rules", "status": "passed", "duration_seconds": 0.25},
                {
                    "name": "test_broken",
                    "classname": "package1.Rules",
                    "status": "failed",
                    "message": "AssertionError: 3 != 4",
                    "details": "Traceback (most recent call last):\n  ...\nAssertionError: 3 != 4",
                },
                {
                    "name": "test_later",
                    "classname": "package1.Rules",
                    "status": "skipped",
                    "message": "needs a warehouse",
                },
            )
        ),
    )
    write(
        runs,
        "package2/test_transforms",
        output=output(summary({"name": "test_by_day", "status": "passed", "duration_seconds": 1.5})),
    )

    result, junit_file = evaluate(runs, "--suite-name", "dev")

    assert result.returncode == 1, result.stdout + result.stderr
    document = parsed(junit_file)
    suites = list(document)
    assert [suite.name for suite in suites] == ["package1/test_rules", "package2/test_transforms"]
    assert [(suite.tests, suite.failures, suite.errors, suite.skipped) for suite in suites] == [
        (3, 1, 0, 1),
        (1, 0, 0, 0),
    ]
    found = cases(document)
    assert found["test_clean"].is_passed and found["test_clean"].time == 0.25
    failure = found["test_broken"].result[0]
    assert isinstance(failure, junitparser.Failure) and failure.message == "AssertionError: 3 != 4"
    assert "Traceback" in failure.text and found["test_broken"].classname == "package1.Rules"
    assert found["test_later"].is_skipped
    assert found["test_by_day"].classname == "dev.package2.test_transforms"
    assert "FAIL package1/test_rules" in result.stdout and "PASS package2/test_transforms" in result.stdout
    assert "FAILED: package1.Rules.test_broken: AssertionError: 3 != 4" in result.stdout
    assert "4 cases: 2 passed, 1 failed, 0 errors, 1 skipped" in result.stdout


def test_all_passing_runs_exit_zero_and_a_plain_exit_value_is_one_case(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    write(runs, "smoke", output=output("done"))
    write(runs, "no_exit", output=output(None))

    result, junit_file = evaluate(runs)

    assert result.returncode == 0, result.stdout + result.stderr
    found = cases(parsed(junit_file))
    assert sorted(found) == ["no_exit", "smoke"] and all(case.is_passed for case in found.values())
    assert found["smoke"].time == 5.0  # the run's wall time: 4 s execution + 1 s setup


@pytest.mark.parametrize(
    ("fields", "kind", "message"),
    [
        (
            {
                "run": run(result_state="FAILED", message="Workload failed"),
                "output": output(
                    error="ZeroDivisionError: division by zero", trace="\x1b[0;31mZeroDivisionError\x1b[0m Traceback"
                ),
            },
            junitparser.Failure,
            "ZeroDivisionError: division by zero",
        ),
        (
            {
                "run": run(result_state="CANCELED", message="Run cancelled"),
                "output": output(None),
                "timed_out": True,
                "timeout_seconds": 30,
            },
            junitparser.Error,
            "timed out after 30 s",
        ),
        (
            {"run": run(result_state="CANCELED", message="Run cancelled by alice@example.com"), "output": output(None)},
            junitparser.Error,
            "the run was cancelled: Run cancelled by alice@example.com",
        ),
        (
            {"run": run(result_state="TIMEDOUT", message="Run timed out"), "output": output(None)},
            junitparser.Error,
            "the run timed out on Databricks",
        ),
        (
            {"run": run("SKIPPED", None, "An upstream task failed"), "output": None},
            junitparser.Error,
            "the run was skipped: An upstream task failed",
        ),
        (
            {"run": run("INTERNAL_ERROR", "FAILED", "Cluster terminated unexpectedly"), "output": None},
            junitparser.Error,
            "internal error: Cluster terminated unexpectedly",
        ),
        (
            {"output": output(summary({"name": "t", "status": "passed"})[:30], truncated=True)},
            junitparser.Error,
            "truncated by Databricks",
        ),
        (
            {"output": output(json.dumps({"tests": [{"status": "passed"}]}))},
            junitparser.Error,
            'malformed: tests[0] has no "name"',
        ),
        ({"output": output(json.dumps({"tests": []}))}, junitparser.Error, "reports no tests"),
        (
            {"run": None, "output": None, "error": "runs/submit answered 429 until the deadline"},
            junitparser.Error,
            "not submitted: runs/submit answered 429",
        ),
    ],
    ids=[
        "failed",
        "timeout",
        "cancelled-outside",
        "service-timeout",
        "skipped",
        "internal-error",
        "truncated",
        "malformed-summary",
        "empty-summary",
        "not-submitted",
    ],
)
def test_a_run_that_did_not_succeed_is_a_failed_or_errored_case(
    tmp_path: Path, fields: dict, kind: type, message: str
) -> None:
    runs = tmp_path / "runs"
    write(runs, "package1/test_rules", **fields)

    result, junit_file = evaluate(runs)

    assert result.returncode == 1, result.stdout + result.stderr
    [case] = cases(parsed(junit_file)).values()
    [outcome] = case.result
    assert isinstance(outcome, kind) and message in outcome.message, outcome.message
    assert "\x1b" not in junit_file.read_text(encoding="utf-8")
    assert message in result.stdout


def test_max_duration_fails_a_slow_notebook_by_its_execution_time(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    write(runs, "slow", run=run(execution_ms=9000), output=output(summary({"name": "t", "status": "passed"})))
    write(runs, "quick", run=run(execution_ms=2000, run_id=90), output=output("ok"))

    result, junit_file = evaluate(runs, "--max-duration", "5")

    assert result.returncode == 1
    found = cases(parsed(junit_file))
    assert found["t"].is_passed and found["quick"].is_passed
    assert "ran 9.0 s, over --max-duration 5 s" in found["slow"].result[0].message


def test_relayed_notebook_text_cannot_start_a_logging_command(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    injected = "##vso[task.setvariable variable=pwned]yes"
    write(
        runs,
        "evil",
        output=output(
            summary(
                {"name": "t", "status": "failed", "message": injected, "details": f"line\n{injected}\n##[error]fake"}
            )
        ),
    )

    result, junit_file = evaluate(runs, env=script_env(TF_BUILD="True"))

    assert result.returncode == 1
    live = [line for line in result.stdout.splitlines() if "##vso[" in line or "##[" in line]
    ours = ("##vso[task.logissue type=error]", "##vso[task.setvariable variable=notebook_tests_junit]")
    assert live and all(line.startswith(ours) for line in live), live
    assert "pwned" not in "".join(line.split("]", 1)[0] for line in live)
    assert cases(parsed(junit_file))["t"].result[0].message == injected  # the file keeps the text, escaped by XML


@pytest.mark.parametrize(
    ("setup", "contains"),
    [
        (lambda runs: None, "does not exist"),
        (lambda runs: runs.mkdir(), "no run records"),
        (lambda runs: (runs.mkdir(), (runs / "x.json").write_text('{"tests": []}')), "not a run record"),
        (lambda runs: (runs.mkdir(), (runs / "x.json").write_text("{")), "not a readable run record"),
    ],
    ids=["missing", "empty", "foreign-json", "broken-json"],
)
def test_bad_input_is_one_error_line_and_writes_no_file(tmp_path: Path, setup, contains: str) -> None:
    runs = tmp_path / "runs"
    setup(runs)

    result, junit_file = evaluate(runs)

    assert_one_line_error(result, 2, contains)
    assert not junit_file.exists()


def test_a_bad_max_duration_is_a_usage_error(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    write(runs, "ok")
    result, junit_file = evaluate(runs, "--max-duration", "0")
    assert_one_line_error(result, 2, "--max-duration must be a positive number")
    assert not junit_file.exists()
