"""The bash steps of pipelines/templates/ci-steps.yml, run in order the way the agent runs them.

Tasks (UsePythonVersion, Cache, PublishTestResults, PublishPipelineArtifact) are the agent's business and are
skipped; every bash step runs with its `env:` mapping, `${{ parameters.* }}` replaced by the template
defaults and `$(...)` macros by agent-like values, in a virtualenv (so installing the built wheels does not
touch the test interpreter), on the odd-shaped repo with ci_cd_scripts/ copied in as a real repo has it.
Proves the YAML itself works: the artifact appears, JUnit files are written per package, a failing
package test fails the test step, the tests run against the installed wheel (a module the wheel lacks fails
them even though the source has it), and a package without tests fails the step with a message naming it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
import zipfile
from pathlib import Path

import pipeline_schema
import pytest
from agent_decoder import parse_line
from helpers import ROOT, SCRIPTS, script_env
from pipeline_agent import Agent, agent_venv, chosen_items, expand_parameters
from repo_fixtures import ODD, make_repo
from workspace_fixtures import make_wheel

from cicdkit import artifact

pytestmark = pytest.mark.slow
CI_STEPS = ROOT / "pipelines" / "templates" / "ci-steps.yml"
TEST_STEP = "Unit tests (pytest per package, installed wheels)"
CONFIG = '{"bundle": {"name": "odd"}, "targets": {"dev": {"default": true, "deploy": {"libraries_path": "/Volumes/main/ci/libs"}}}}'


def bash_steps() -> list[dict]:
    template = pipeline_schema.load_yaml(CI_STEPS.read_text(encoding="utf-8"))
    defaults = {p["name"]: p.get("default", "") for p in template["parameters"]}
    steps = []
    for step in chosen_items(template["steps"], defaults):  # no artifactFeed by default: no feed steps
        if "bash" not in step:
            continue
        steps.append(
            {
                "name": expand_parameters(step.get("displayName", ""), defaults),
                "script": step["bash"],
                "env": {key: expand_parameters(value, defaults) for key, value in (step.get("env") or {}).items()},
            }
        )
    return steps


def agent_macros(tmp_path: Path, repo: Path) -> dict[str, str]:
    return {
        "Build.SourcesDirectory": str(repo),
        "Build.ArtifactStagingDirectory": str(tmp_path / "a"),
        "Agent.TempDirectory": str(tmp_path / "_temp"),
        "Build.BuildId": "4711",
        "Build.RequestedForEmail": "dev@example.com",
    }


def run_steps(
    tmp_path: Path, repo: Path, stop_after: str | None = None
) -> list[tuple[str, subprocess.CompletedProcess[str]]]:
    agent = Agent(agent_venv(tmp_path), variables=agent_macros(tmp_path, repo))
    ran = []
    for step in bash_steps():
        result = agent.run_bash(step["script"], env=step["env"], cwd=repo)
        ran.append((step["name"], result))
        if result.returncode != 0 or step["name"] == stop_after:
            break
    return ran


@pytest.fixture
def odd_pipeline_repo(tmp_path: Path) -> Path:
    repo = make_repo(tmp_path, "odd")
    shutil.copytree(SCRIPTS, repo / "ci_cd_scripts", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy2(ROOT / "requirements.txt", repo / "requirements.txt")
    (repo / "config.json").write_text(CONFIG, encoding="utf-8")
    # A test notebook (runs on a cluster in CD) must not be collected by the unit-test step.
    (repo / "beta" / "notebooks" / "test_on_cluster.py").write_text(
        "# Databricks notebook source\ndbutils.notebook.exit('{}')\n", encoding="utf-8"
    )
    return repo


def test_ci_steps_produce_the_artifact_and_junit_per_package(tmp_path, odd_pipeline_repo):
    ran = run_steps(tmp_path, odd_pipeline_repo)
    for name, result in ran:
        assert result.returncode == 0, f"step {name!r} failed\n{result.stdout}\n{result.stderr}"
    assert len(ran) == len(bash_steps())
    outputs = {name: result.stdout for name, result in ran}
    assert "Target: dev" in outputs["Validate config (every target, strict)"]
    assert "##vso[task.setvariable variable=deploy_libraries_path" in outputs["Read config (dev)"]
    assert "##vso[task.setvariable variable=requirements_files" in outputs["Find requirement files and packages"]

    results = tmp_path / "_temp" / "test-results"
    junit = sorted(p.name for p in results.glob("TEST-*.xml"))
    assert junit == ["TEST-beta.xml", "TEST-gamma pkg.xml", "TEST-libs_alpha.xml"]
    for path in results.glob("TEST-*.xml"):
        suite = ElementTree.parse(path).getroot().find("testsuite")
        assert (suite.get("failures"), suite.get("errors")) == ("0", "0") and int(suite.get("tests")) >= 1

    zip_path = tmp_path / "a" / "drop" / "artifact.zip"
    assert artifact.verify_zip(zip_path) == []
    with zipfile.ZipFile(zip_path) as archive:
        names = {entry.path for entry in artifact.read_manifest(archive)}
    assert {f"notebooks/{n}" for n in ODD.notebooks} <= names
    assert {"init/init.sh", "requirements.txt", "config.json", "ci_cd_scripts/requirements.txt"} <= names
    assert sorted(n.split("/")[1].split("-")[0] for n in names if n.startswith("wheels/")) == [
        "alpha",
        "beta",
        "gamma_pkg",
    ]
    assert all(".dev4711-" in n for n in names if n.startswith("wheels/"))


def test_a_failing_package_test_fails_the_test_step_after_all_packages_ran(tmp_path, odd_pipeline_repo):
    (odd_pipeline_repo / "gamma pkg" / "tests" / "test_gamma.py").write_text(
        "from gamma import double\n\ndef test_double():\n    assert double(2) == 5\n"
    )
    ran = run_steps(tmp_path, odd_pipeline_repo)
    name, result = ran[-1]
    assert name == TEST_STEP and result.returncode == 1, (name, result.stdout, result.stderr)
    junit = sorted(p.name for p in (tmp_path / "_temp" / "test-results").glob("TEST-*.xml"))
    assert junit == ["TEST-beta.xml", "TEST-gamma pkg.xml", "TEST-libs_alpha.xml"]


def test_the_tests_run_against_the_installed_wheel_not_the_source(tmp_path, odd_pipeline_repo):
    """gamma/extra/ exists in the source but the wheel leaves it out (packages = ["gamma"]): testing the source
    would pass, testing what the CD stage deploys must not."""
    gamma = odd_pipeline_repo / "gamma pkg"
    (gamma / "gamma" / "extra").mkdir()
    (gamma / "gamma" / "extra" / "__init__.py").write_text("def triple(x):\n    return 3 * x\n")
    (gamma / "tests" / "test_extra.py").write_text(
        "from gamma.extra import triple\n\ndef test_triple():\n    assert triple(2) == 6\n"
    )
    ran = run_steps(tmp_path, odd_pipeline_repo)
    name, result = ran[-1]
    assert name == TEST_STEP and result.returncode == 1, (name, result.stdout, result.stderr)
    assert "No module named 'gamma.extra'" in result.stdout, result.stdout
    wheels = list((tmp_path / "a" / "staging" / "wheels").glob("gamma_pkg-*.whl"))
    with zipfile.ZipFile(wheels[0]) as wheel:
        assert not [n for n in wheel.namelist() if n.startswith("gamma/extra/")]  # the wheel really lacks it
    suite = ElementTree.parse(tmp_path / "_temp" / "test-results" / "TEST-gamma pkg.xml").getroot().find("testsuite")
    assert int(suite.get("errors")) + int(suite.get("failures")) >= 1


def test_a_package_without_tests_fails_the_step_with_a_message_naming_it(tmp_path, odd_pipeline_repo):
    shutil.rmtree(odd_pipeline_repo / "libs" / "alpha" / "tests")
    ran = run_steps(tmp_path, odd_pipeline_repo)
    name, result = ran[-1]
    assert name == TEST_STEP and result.returncode == 1, (name, result.stdout, result.stderr)
    assert (
        "error: package libs/alpha has no tests (pytest collected none, exit 5): add a tests/test_*.py" in result.stderr
    )
    assert "'!libs/alpha/**'" in result.stderr
    # The other packages still ran.
    junit = sorted(p.name for p in (tmp_path / "_temp" / "test-results").glob("TEST-*.xml"))
    assert {"TEST-beta.xml", "TEST-gamma pkg.xml"} <= set(junit)


DISTRIBUTIONS = "import importlib.metadata as m, json; print(json.dumps(sorted({(d.metadata['Name'].lower(), d.version) for d in m.distributions()})))"


def distributions(python: str | Path) -> list[list[str]]:
    listed = subprocess.run(
        [str(python), "-c", DISTRIBUTIONS], env=script_env(), capture_output=True, text=True, timeout=60
    )
    assert listed.returncode == 0, listed.stderr
    return json.loads(listed.stdout)


def test_the_agent_python_sees_the_test_interpreters_packages_and_installs_apart(tmp_path):
    # Whether the tests run in a fresh venv or the base interpreter, the steps must find pytest, pathspec, build...
    python = agent_venv(tmp_path) / "bin" / "python"
    before = distributions(sys.executable)
    assert distributions(python) == before
    name, data = make_wheel("agent_only_probe")
    (tmp_path / name).write_bytes(data)
    installed = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-index",
            "--no-deps",
            str(tmp_path / name),
        ],
        env=script_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert ["agent_only_probe", "1.0"] in distributions(python)
    assert distributions(sys.executable) == before  # the test interpreter is untouched


def test_a_config_warning_fails_the_validate_step_with_file_line_and_column(tmp_path, odd_pipeline_repo):
    """The issue's new user: a typo in a job fails the pull request, the issue names config.json, line and column
    as the agent decodes the logging command, and the resolved tree shows the YAML/JSON boolean tag as "true"."""
    document = json.loads(CONFIG)
    document["resources"] = {"jobs": {"nightly": {"name": "nightly", "max_concurent_runs": 2, "tags": {"prod": True}}}}
    text = json.dumps(document, indent=2)
    (odd_pipeline_repo / "config.json").write_text(text, encoding="utf-8")
    ran = run_steps(tmp_path, odd_pipeline_repo)
    (name, result), *_ = ran
    assert len(ran) == 1 and name == "Validate config (every target, strict)" and result.returncode == 2
    issues = [command for line in result.stderr.splitlines() if (command := parse_line(line)) is not None]
    line_number = next(n for n, line in enumerate(text.splitlines(), 1) if "max_concurent_runs" in line)
    column = text.splitlines()[line_number - 1].index('"max_concurent_runs"') + 1
    assert [(c.area, c.event, c.properties, c.data) for c in issues] == [
        (
            "task",
            "logissue",
            {
                "type": "warning",
                "sourcepath": "config.json",
                "linenumber": str(line_number),
                "columnnumber": str(column),
            },
            "unknown field: max_concurent_runs (at resources.jobs.nightly)",
        )
    ]
    assert "error: 1 warning was found. Warnings are not allowed in strict mode" in result.stderr
    resolved = subprocess.run(
        [sys.executable, str(odd_pipeline_repo / "ci_cd_scripts" / "validate_config.py"), "--output", "json"]
        + ["--current-user", "dev@example.com"],
        cwd=odd_pipeline_repo,
        env=script_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(resolved.stdout)["resources"]["jobs"]["nightly"]["tags"]["prod"] == "true"
