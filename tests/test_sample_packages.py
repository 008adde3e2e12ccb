"""The repo's sample packages: their own unit tests pass (and can fail), and package1's test notebook reports JSON.

Run on a copy (make_repo "sample") so no cache or build file lands in the checkout. The unit tests run the way
the CI test step runs them: against the package's WHEEL installed in a fresh virtualenv, from a folder that is
not the package (so the source tree is not on sys.path). One test runs plain `python -m pytest` in the package
folder, the developer's local loop, which uses the source. The test notebook's local run imports the source
next to it by design (see the notebook).
"""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from helpers import run_script, script_env
from pipeline_agent import agent_venv


def install_wheels(repo: Path, work: Path, *packages: str) -> Path:
    """Build the packages' wheels with build_packages.py and install them into a fresh virtualenv; its python."""
    wheels = work / "wheels"
    built = run_script("build_packages.py", *(repo / name for name in packages), "--out-dir", wheels, cwd=work)
    assert built.returncode == 0, built.stdout + built.stderr
    python = agent_venv(work) / "bin" / "python"
    installed = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-deps",
            "--no-index",
            *map(str, sorted(wheels.glob("*.whl"))),
        ],
        env=script_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return python


def run_pytest(python: Path, package: Path, junit: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """What the CI test step does: from outside the package, importlib mode, so only the installed wheel imports."""
    return subprocess.run(
        [
            str(python),
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            str(package),
            "--rootdir",
            str(package),
            "--import-mode=importlib",
            f"--ignore={package / 'notebooks'}",
            f"--junitxml={junit}",
        ],
        cwd=junit.parent,
        env=script_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_pytest_in_package_folder(package: Path, junit: Path) -> subprocess.CompletedProcess[str]:
    """A developer's local run: plain `python -m pytest` in the package folder (the source is on sys.path)."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}"],
        cwd=package,
        env=script_env(),
        capture_output=True,
        text=True,
        timeout=120,
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


def test_package1_unit_tests_pass_against_its_installed_wheel(sample_repo, tmp_path):
    python = install_wheels(sample_repo, tmp_path, "package1")
    result = run_pytest(python, sample_repo / "package1", tmp_path / "TEST-package1.xml")
    assert result.returncode == 0, result.stdout + result.stderr
    counts = junit_counts(tmp_path / "TEST-package1.xml")
    assert counts["tests"] > 0 and counts["failures"] == counts["errors"] == 0
    # notebooks/test_quality_rules.py matches test_*.py; it must not be collected.
    assert "QualityRulesOnCluster" not in result.stdout


def test_the_tests_import_the_wheel_not_the_source(sample_repo, tmp_path):
    """A module the wheel lacks fails the tests even though the source tree has it (no conftest puts the source
    on sys.path any more)."""
    package = sample_repo / "package1"
    module = package / "package1" / "extra_rules.py"
    module.write_text("VALUE = 1\n")
    (package / "tests" / "test_extra_rules.py").write_text(
        "from package1.extra_rules import VALUE\n\ndef test_value():\n    assert VALUE == 1\n"
    )
    (tmp_path / "with").mkdir()
    (tmp_path / "without").mkdir()
    with_module = install_wheels(sample_repo, tmp_path / "with", "package1")
    module.unlink()
    without_module = install_wheels(sample_repo, tmp_path / "without", "package1")

    # The source lacks the module, the wheel has it: passes, so the import came from the wheel ...
    passing = run_pytest(with_module, package, tmp_path / "with" / "TEST.xml")
    assert passing.returncode == 0, passing.stdout + passing.stderr
    # ... and the source has it, the wheel lacks it: fails, so the source is not on sys.path.
    module.write_text("VALUE = 1\n")
    failing = run_pytest(without_module, package, tmp_path / "without" / "TEST.xml")
    assert failing.returncode != 0, failing.stdout + failing.stderr
    assert "No module named 'package1.extra_rules'" in failing.stdout


def test_plain_pytest_in_the_package_folder_runs_its_tests_not_the_notebooks(sample_repo, tmp_path):
    # notebooks/test_quality_rules.py matches test_*.py; collecting it must neither run nor exit.
    result = run_pytest_in_package_folder(sample_repo / "package1", tmp_path / "TEST.xml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert junit_counts(tmp_path / "TEST.xml")["tests"] > 0
    assert "QualityRulesOnCluster" not in result.stdout


def test_package1_unit_tests_catch_a_regression(sample_repo, tmp_path):
    rules = sample_repo / "package1" / "package1" / "rules.py"
    rules.write_text(rules.read_text().replace('return f"is below {minimum}"', "return None"))
    python = install_wheels(sample_repo, tmp_path, "package1")
    result = run_pytest(python, sample_repo / "package1", tmp_path / "TEST-package1.xml")
    assert result.returncode == 1, result.stdout + result.stderr
    assert junit_counts(tmp_path / "TEST-package1.xml")["failures"] >= 1


@pytest.mark.slow
def test_package2_unit_tests_pass_on_local_spark_against_its_installed_wheel(sample_repo, tmp_path):
    python = install_wheels(sample_repo, tmp_path, "package2")
    result = run_pytest(python, sample_repo / "package2", tmp_path / "TEST-package2.xml")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    counts = junit_counts(tmp_path / "TEST-package2.xml")
    assert counts["tests"] > 0 and counts["failures"] == counts["errors"] == counts["skipped"] == 0


def run_notebook(repo: Path) -> subprocess.CompletedProcess[str]:
    notebook = repo / "package1" / "notebooks" / "test_quality_rules.py"
    return subprocess.run(
        [sys.executable, str(notebook)], cwd=repo, env=script_env(), capture_output=True, text=True, timeout=60
    )


def test_test_notebook_runs_locally_and_exits_with_a_json_summary(sample_repo):
    result = run_notebook(sample_repo)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = notebook_summary(result.stdout)
    assert summary["suite"] == "package1" and len(summary["tests"]) > 0
    assert {test["status"] for test in summary["tests"]} == {"passed"}
    assert all(test["classname"] == "package1.QualityRulesOnCluster" for test in summary["tests"])
    source = (sample_repo / "package1" / "notebooks" / "test_quality_rules.py").read_text()
    assert (
        source.startswith("# Databricks notebook source\n") and "dbutils.notebook.exit(json.dumps(summary))" in source
    )


def test_test_notebook_reports_a_failing_test(sample_repo):
    rules = sample_repo / "package1" / "package1" / "rules.py"
    rules.write_text(rules.read_text().replace('return f"is below {minimum}"', "return None"))
    result = run_notebook(sample_repo)
    assert result.returncode == 1
    summary = notebook_summary(result.stdout)
    failed = [test for test in summary["tests"] if test["status"] != "passed"]
    assert [(test["name"], test["status"]) for test in failed] == [("test_each_rule_finds_its_violation", "failed")]
    assert failed[0]["message"].startswith("AssertionError") and "Traceback" in failed[0]["details"]
