"""The repo's sample packages: their own unit tests pass (and can fail), and package1's test notebook reports JSON.

Run on a copy (make_repo "sample") so no cache or build file lands in the checkout.
"""
from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from helpers import script_env


def run_pytest(repo: Path, tests: str | None, junit: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """What the pipeline's test step does: from the repo root with a path, or in a package folder without."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}", *([tests] if tests else [])],
        cwd=repo, env=script_env(), capture_output=True, text=True, timeout=timeout,
    )


def junit_counts(junit: Path) -> dict[str, int]:
    suite = ET.parse(junit).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    return {key: int(suite.get(key, 0)) for key in ("tests", "failures", "errors", "skipped")}


def notebook_summary(stdout: str) -> dict:
    """The JSON summary the notebook prints last (after unittest's own output)."""
    lines = stdout.splitlines()
    start = max(index for index, line in enumerate(lines) if line == "{")
    return json.loads("\n".join(lines[start:]))


def test_package1_unit_tests_pass(sample_repo, tmp_path):
    result = run_pytest(sample_repo, "package1/tests", tmp_path / "TEST-package1.xml")
    assert result.returncode == 0, result.stdout + result.stderr
    counts = junit_counts(tmp_path / "TEST-package1.xml")
    assert counts["tests"] > 0 and counts["failures"] == counts["errors"] == 0


def test_plain_pytest_in_the_package_folder_runs_its_tests_not_the_notebooks(sample_repo, tmp_path):
    # notebooks/test_quality_rules.py matches test_*.py; collecting it must neither run nor exit.
    result = run_pytest(sample_repo / "package1", None, tmp_path / "TEST.xml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert junit_counts(tmp_path / "TEST.xml")["tests"] > 0
    assert "QualityRulesOnCluster" not in result.stdout


def test_package1_unit_tests_catch_a_regression(sample_repo, tmp_path):
    rules = sample_repo / "package1" / "package1" / "rules.py"
    rules.write_text(rules.read_text().replace('return f"is below {minimum}"', "return None"))
    result = run_pytest(sample_repo, "package1/tests", tmp_path / "TEST-package1.xml")
    assert result.returncode == 1, result.stdout + result.stderr
    assert junit_counts(tmp_path / "TEST-package1.xml")["failures"] >= 1


@pytest.mark.slow
def test_package2_unit_tests_pass_on_local_spark(sample_repo, tmp_path):
    result = run_pytest(sample_repo, "package2/tests", tmp_path / "TEST-package2.xml")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    counts = junit_counts(tmp_path / "TEST-package2.xml")
    assert counts["tests"] > 0 and counts["failures"] == counts["errors"] == counts["skipped"] == 0


def run_notebook(repo: Path) -> subprocess.CompletedProcess[str]:
    notebook = repo / "package1" / "notebooks" / "test_quality_rules.py"
    return subprocess.run([sys.executable, str(notebook)], cwd=repo, env=script_env(), capture_output=True, text=True, timeout=60)


def test_test_notebook_runs_locally_and_exits_with_a_json_summary(sample_repo):
    result = run_notebook(sample_repo)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = notebook_summary(result.stdout)
    assert summary["suite"] == "package1" and summary["passed"] is True
    assert summary["tests"] == len(summary["results"]) > 0
    assert summary["failures"] == summary["errors"] == summary["skipped"] == 0
    assert {record["status"] for record in summary["results"]} == {"passed"}
    source = (sample_repo / "package1" / "notebooks" / "test_quality_rules.py").read_text()
    assert source.startswith("# Databricks notebook source\n") and "dbutils.notebook.exit(json.dumps(summary))" in source


def test_test_notebook_reports_a_failing_test(sample_repo):
    rules = sample_repo / "package1" / "package1" / "rules.py"
    rules.write_text(rules.read_text().replace('return f"is below {minimum}"', "return None"))
    result = run_notebook(sample_repo)
    assert result.returncode == 1
    summary = notebook_summary(result.stdout)
    assert summary["passed"] is False and summary["failures"] == 1
    failed = [record for record in summary["results"] if record["status"] == "failed"]
    assert [record["name"].rsplit(".", 1)[-1] for record in failed] == ["test_each_rule_finds_its_violation"]
    assert "AssertionError" in failed[0]["message"]
