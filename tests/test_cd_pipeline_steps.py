"""The steps of pipelines/templates/cd-stage.yml (+ cd-databricks-step.yml), run in order the way the agent runs
them, for target `local` of the repo's config.json against a local workspace: issue 5's "done when".

The CI artifact is real: the sample packages built, notebooks copied, requirements merged, the init script
written for the CI target (dev) and the zip packaged by the CI scripts. The workspace URL reaches the steps as a
plain variable DATABRICKS_HOST (a variable group would do that) and the token as the secret variable
`databricks-token`, which only the `env:` mapping of cd-databricks-step.yml turns into DATABRICKS_TOKEN.
Tasks are the agent's business: DownloadPipelineArtifact@2 is a copy, UsePythonVersion a virtualenv; the Key
Vault step must be skipped by its own condition (target `local` names no vault).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pipeline_schema
import pytest
from deploy_fixtures import WRITE_METHODS
from helpers import DATA, ROOT, run_script
from pipeline_agent import Agent, agent_venv, chosen_items, expand_macros, expand_parameters

pytestmark = pytest.mark.slow
TEMPLATES = ROOT / "pipelines" / "templates"
TOKEN = "dapi-cd-steps-KNOWN-5e1f0c3b7a9d"
TARGET = "local"
CLUSTERS = ("0101-000000-local001", "0101-000000-local002")
LIBRARIES = "/Workspace/Shared/ci-cd/local/libraries"
INIT_SCRIPT = "/Workspace/Shared/ci-cd/local/init.sh"
NOTEBOOKS = "/Workspace/Shared/ci-cd/local/notebooks"
STEPS = [
    "Extract the artifact",
    "Verify the artifact against its MANIFEST",
    "Install the scripts' requirements",
    "Read config for local",
    "Upload wheels and requirements",
    "Create the init script for local",
    "Upload the init script",
    "Attach the init script to the clusters",
    "Install libraries on the clusters",
    "Deploy notebooks",
    "Deploy jobs",
    "Run the test notebooks",
    "Evaluate the test notebook runs",
]
JUNIT_SCHEMA = DATA / "junit" / "JUnit.xsd"


# ---- the template, expanded the way the agent expands it -------------------------------------------------------


def _load(name: str) -> dict:
    return pipeline_schema.load_yaml((TEMPLATES / name).read_text(encoding="utf-8"))


def _expand(node, parameters: dict[str, str]):
    if isinstance(node, str):
        return expand_parameters(node, parameters)
    if isinstance(node, list):
        return [_expand(item, parameters) for item in node]
    if isinstance(node, dict):
        return {_expand(key, parameters): _expand(value, parameters) for key, value in node.items()}
    return node


def _databricks_step(given: dict[str, str]) -> list[dict]:
    template = _load("cd-databricks-step.yml")
    parameters = {p["name"]: p.get("default", "") for p in template["parameters"]} | given
    steps = []
    for item in template["steps"]:
        ((key, body),) = item.items()
        if key.replace(" ", "") == "${{if eq(parameters.auth,'azure-cli')}}".replace(" ", ""):
            chosen = parameters["auth"] == "azure-cli"
        else:
            assert key.replace(" ", "") == "${{else}}", key
            chosen = parameters["auth"] != "azure-cli"
        if chosen:
            steps += _expand(body, parameters)
    return steps


def cd_job(given: dict[str, str]) -> tuple[dict[str, str], list[dict]]:
    """(stage variables, steps of the deployment job) with every template expression expanded."""
    template = _load("cd-stage.yml")
    parameters = {p["name"]: p.get("default", "") for p in template["parameters"]} | given
    stage = template["stages"][0]
    variables = {
        v["name"]: expand_parameters(v["value"], parameters)
        for v in stage["variables"]
        if isinstance(v, dict) and "name" in v
    }
    steps = []
    for step in chosen_items(stage["jobs"][0]["strategy"]["runOnce"]["deploy"]["steps"], parameters):
        if "template" in step:
            assert step["template"] == "cd-databricks-step.yml", step
            steps += _databricks_step({k: expand_parameters(v, parameters) for k, v in step["parameters"].items()})
        else:
            steps.append(_expand(step, parameters))
    return variables, steps


def run_cd(work: Path, artifact_zip: Path, workspace, venv: Path) -> dict[str, subprocess.CompletedProcess[str]]:
    """One CD stage run for target local on a fresh runner (`work`); returns step name -> result, in order."""
    variables, steps = cd_job({"target": TARGET, "environment": "databricks-local", "serviceConnection": "sc-local"})
    (work / "s").mkdir(parents=True)
    agent = Agent(
        venv,
        variables={
            "Pipeline.Workspace": str(work),
            "Agent.TempDirectory": str(work / "_temp"),
            "System.DefaultWorkingDirectory": str(work / "s"),
            "DATABRICKS_HOST": workspace.url,
        },
        secrets={"databricks-token": TOKEN},
    )
    for name, value in variables.items():
        agent.variables[name] = expand_macros(value, agent.variables)
    ran: dict[str, subprocess.CompletedProcess[str]] = {}
    for step in steps:
        task = step.get("task", "")
        if "download" in step or task.startswith("UsePythonVersion@"):
            continue
        if task == "DownloadPipelineArtifact@2":
            assert step["inputs"]["buildType"] == "current"
            target = Path(expand_macros(step["inputs"]["targetPath"], agent.variables))
            target.mkdir(parents=True)
            shutil.copy2(artifact_zip, target / "artifact.zip")
            continue
        if task == "PublishTestResults@2":
            assert agent.condition(step["condition"]), "the JUnit file of the test notebooks must be published"
            inputs = {key: expand_macros(str(value), agent.variables) for key, value in step["inputs"].items()}
            assert inputs["testResultsFormat"] == "JUnit" and inputs["failTaskOnFailedTests"].lower() == "true"
            ran["published tests"] = Path(inputs["testResultsFiles"])
            continue
        if task == "PublishPipelineArtifact@1":
            assert agent.condition(step["condition"])
            ran["published runs"] = Path(expand_macros(step["inputs"]["targetPath"], agent.variables))
            continue
        if task == "AzureCLI@2":
            assert step.get("name") == "secrets", f"the pat variant runs no AzureCLI@2 step but {step}"
            assert not agent.condition(step["condition"]), "target local names no Key Vault: the step must skip"
            continue
        assert "bash" in step, f"unexpected step {step}"
        if not agent.condition(step.get("condition")):
            continue
        result = agent.run_bash(
            step["bash"], env=step.get("env"), cwd=step.get("workingDirectory", "$(System.DefaultWorkingDirectory)")
        )
        ran[step["displayName"]] = result
        assert result.returncode == 0, f"step {step['displayName']!r} failed\n{result.stdout}\n{result.stderr}"
    for result in ran.values():
        assert isinstance(result, Path) or TOKEN not in result.stdout + result.stderr
    return ran


def check_tests_published(ran) -> None:
    """The sample test notebooks ran on the local workspace against the deployed wheels: every unittest test of both
    notebooks is a passing case in a JUnit file the schema accepts, and the run records were published."""
    import junitparser
    import xmlschema

    junit_file = ran.pop("published tests")
    xmlschema.XMLSchema(JUNIT_SCHEMA).validate(str(junit_file))
    suites = {suite.name: suite for suite in junitparser.JUnitXml.fromfile(str(junit_file))}
    assert sorted(suites) == ["package1/test_quality_rules", "package2/test_transforms"]
    for suite in suites.values():
        assert suite.tests >= 4 and suite.failures == suite.errors == 0, (suite.name, suite.tests)
        assert all(case.is_passed and case.name.startswith("test_") for case in suite)
    records = sorted(path.name for path in ran.pop("published runs").glob("*.json"))
    assert records == ["package1_test_quality_rules.json", "package2_test_transforms.json"]


# ---- a real CI artifact ------------------------------------------------------------------------------------------


def build_artifact(work: Path, version_suffix: str) -> Path:
    """The CI chain's scripts on the repo's packages, init script for the CI target dev, as the CI stage does."""
    staging, out = work / "staging", work / "drop" / "artifact.zip"
    config = ROOT / "config.json"
    for name, *args in (
        ("build_packages.py", "--root", ROOT, "--out-dir", staging / "wheels", "--version-suffix", version_suffix),
        ("copy_notebooks.py", ROOT, staging / "notebooks"),
        ("merge_requirements.py", "--kind", "common", "--root", ROOT, "--out", staging / "requirements.txt"),
        (
            "create_init_script.py",
            "--out",
            staging / "init" / "init.sh",
            "--requirements",
            staging / "requirements.txt",
            "--wheel-dir",
            staging / "wheels",
            "--config",
            config,
            "-t",
            "dev",
        ),
        ("package_artifact.py", staging, out, "--config", config, "-t", "dev"),
    ):
        result = run_script(name, *args, cwd=work)
        assert result.returncode == 0, f"{name}: {result.stdout}\n{result.stderr}"
    return out


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("ci")
    built = {}
    for build, suffix in (("old", ".dev41"), ("new", ".dev42")):
        (work / build).mkdir()
        built[build] = build_artifact(work / build, suffix)
    return built


@pytest.fixture
def workspace():
    """The local workspace with its two seed clusters (001 RUNNING, 002 TERMINATED), recording cluster bounces."""
    from local_cloud.workspace.server import LocalWorkspace

    with LocalWorkspace(token=TOKEN, time_scale=0.01) as ws:
        ws.bounces = []
        schedule = ws.emulator.schedule

        def recording(cluster, state, then, seconds):
            if state in ("PENDING", "RESTARTING"):  # start, restart, or the restart an edit of a running cluster does
                ws.bounces.append((cluster["cluster_id"], state))
            return schedule(cluster, state, then, seconds)

        ws.emulator.schedule = recording
        yield ws


def artifact_files(artifact_zip: Path, prefix: str) -> dict[str, bytes]:
    with zipfile.ZipFile(artifact_zip) as archive:
        return {
            name[len(prefix) :]: archive.read(name)
            for name in archive.namelist()
            if name.startswith(prefix) and not name.endswith("/")
        }


def bounces(ws) -> dict[str, list[str]]:
    return {cluster: [state for c, state in ws.bounces if c == cluster] for cluster in CLUSTERS}


def writes(ws) -> list[str]:
    """Writes that deploy something (test runs submitted and cancelled are not a deployment)."""
    return [
        f"{r.method} {r.path}"
        for r in ws.requests
        if r.path.startswith("/api/") and r.method in WRITE_METHODS and "/jobs/runs/" not in r.path
    ]


def check_deployed(ws, artifact_zip: Path) -> None:
    """Wheels + requirements uploaded, init script of THIS target uploaded and attached, every library INSTALLED,
    notebooks identical to the artifact's."""
    wheels = artifact_files(artifact_zip, "wheels/")
    assert sorted(name.split("-")[0] for name in wheels) == ["package1", "package2"]
    for name, data in {**wheels, "requirements.txt": artifact_files(artifact_zip, "requirements.txt")[""]}.items():
        assert ws.workspace_file(f"{LIBRARIES}/{name}") == data, name

    init = ws.workspace_file(INIT_SCRIPT).decode()
    assert all(f"{LIBRARIES}/{name}" in init for name in wheels), init
    assert "/Volumes/dev/" not in init  # the artifact's own init.sh points at the CI target's (dev) libraries
    assert "/Volumes/dev/" in artifact_files(artifact_zip, "init/init.sh")[""].decode()

    for cluster in CLUSTERS:
        details = ws.cluster(cluster)
        assert details["state"] == "RUNNING", details
        assert details["init_scripts"] == [{"workspace": {"destination": INIT_SCRIPT}}], details
        statuses = {
            s["library"].get("whl", json.dumps(s["library"])): s["status"] for s in ws.library_statuses(cluster)
        }
        assert statuses == {f"{LIBRARIES}/{name}": "INSTALLED" for name in wheels}, (cluster, statuses)

    from databricks.sdk import WorkspaceClient

    client = WorkspaceClient(host=ws.url, token=TOKEN, auth_type="pat")
    jobs = {j.settings.tags.get("cicd-job-key"): j.settings for j in client.jobs.list() if j.settings.tags}
    assert {key: settings.name for key, settings in jobs.items()} == {
        "quality_report": "package1 quality report (local)",
        "orders_by_day": "package2 orders by day (local)",
    }
    assert all(s.tags["cicd-bundle"] == "databricks-ci-cd" and s.tags["cicd-target"] == TARGET for s in jobs.values())

    notebooks = artifact_files(artifact_zip, "notebooks/")
    assert len(notebooks) >= 7
    for relative, source in notebooks.items():
        deployed = ws.workspace_file(f"{NOTEBOOKS}/{relative.rsplit('.', 1)[0]}")
        assert deployed is not None, relative
        assert deployed.decode().strip() == source.decode().strip(), relative


def check_nothing_changed(ws, ran: dict[str, subprocess.CompletedProcess[str]]) -> None:
    """Zero writes and zero cluster bounces, and every Databricks step says that nothing changed, and why."""
    assert writes(ws) == [], writes(ws)
    assert ws.bounces == []
    says = {
        "Upload wheels and requirements": "(same SHA-256)",
        "Upload the init script": "(same SHA-256)",
        "Attach the init script to the clusters": "already attached",
        "Install libraries on the clusters": "libraries already installed",
        "Deploy notebooks": "nothing to change: the workspace matches the source",
        "Deploy jobs": "nothing to change: every job matches the config",
    }
    for step, reason in says.items():
        out = ran[step].stdout
        assert re.search(r": 0 changed, [1-9]\d* unchanged in ", out), f"{step}:\n{out}"
        assert not re.search(r"^  change: ", out, re.MULTILINE) and reason in out, f"{step}:\n{out}"
        assert re.search(r"^  note: nothing to change: ", out, re.MULTILINE), f"{step}:\n{out}"


# ---- the tests ---------------------------------------------------------------------------------------------------


def test_cd_steps_deploy_the_artifact_to_two_clusters_and_a_rerun_changes_nothing(tmp_path, artifacts, workspace):
    ws, venv = workspace, agent_venv(tmp_path)
    ran = run_cd(tmp_path / "run1", artifacts["new"], ws, venv)
    check_tests_published(ran)
    assert list(ran) == STEPS
    assert "every file matches MANIFEST.json" in ran["Verify the artifact against its MANIFEST"].stdout
    check_deployed(ws, artifacts["new"])
    # One bounce per cluster: 001 (RUNNING) restarts for the init-script edit and installs live; 002 (TERMINATED)
    # is edited while down, then started once by the library install.
    assert bounces(ws) == {CLUSTERS[0]: ["RESTARTING"], CLUSTERS[1]: ["PENDING"]}
    posts = lambda suffix: sum(1 for r in ws.requests if r.method == "POST" and r.path.endswith(suffix))  # noqa: E731
    assert (posts("clusters/edit"), posts("clusters/start"), posts("clusters/restart")) == (2, 1, 0)
    assert (posts("libraries/install"), posts("libraries/uninstall")) == (2, 0)

    ws.clear_log()
    ws.bounces.clear()
    again = run_cd(tmp_path / "run2", artifacts["new"], ws, venv)  # a fresh runner, the same artifact
    check_tests_published(again)
    assert list(again) == STEPS
    check_nothing_changed(ws, again)
    check_deployed(ws, artifacts["new"])


def test_cd_steps_roll_out_a_new_build_over_an_old_one_with_one_restart_per_cluster(tmp_path, artifacts, workspace):
    ws, venv = workspace, agent_venv(tmp_path)
    run_cd(tmp_path / "old", artifacts["old"], ws, venv)  # the previous deployment
    check_deployed(ws, artifacts["old"])
    old_wheels = {f"{LIBRARIES}/{name}" for name in artifact_files(artifacts["old"], "wheels/")}
    ws.clear_log()
    ws.bounces.clear()

    ran = run_cd(tmp_path / "new", artifacts["new"], ws, venv)
    check_tests_published(ran)
    check_deployed(ws, artifacts["new"])  # old builds gone from every cluster, new ones INSTALLED
    assert bounces(ws) == {cluster: ["RESTARTING"] for cluster in CLUSTERS}
    posts = lambda suffix: sum(1 for r in ws.requests if r.method == "POST" and r.path.endswith(suffix))  # noqa: E731
    assert (posts("libraries/uninstall"), posts("libraries/install"), posts("clusters/restart")) == (2, 2, 2)
    assert posts("clusters/edit") == 0  # the init script was attached by the previous deployment
    for cluster in CLUSTERS:
        assert not old_wheels & {s["library"].get("whl") for s in ws.library_statuses(cluster)}
    out = ran["Install libraries on the clusters"].stdout
    assert "2 changed" in out and "package1-1.0.0.dev41" in out, out
