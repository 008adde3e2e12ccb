"""Every YAML file in pipelines/ validates against the Azure Pipelines schema; typos and bad inputs do not.

The validator (tests/pipeline_schema.py) reads the schema the way the Azure Pipelines language server does;
the negative cases below prove it still catches what an author gets wrong.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pipeline_schema
import pytest
from helpers import ROOT, SCRIPTS

PIPELINES = ROOT / "pipelines"
PIPELINE_FILES = sorted(p for p in PIPELINES.rglob("*") if p.suffix in (".yml", ".yaml"))
OWN_FILES = [
    PIPELINES / "azure-pipelines.yml",
    PIPELINES / "templates" / "ci-steps.yml",
    PIPELINES / "templates" / "python-setup-steps.yml",
]

BASE = """\
trigger:
  branches:
    include: [main]
parameters:
- name: pythonVersion
  type: string
  default: '3.11'
- name: runTests
  type: boolean
  default: true
variables:
- name: PIP_CACHE_DIR
  value: $(Pipeline.Workspace)/.pip
stages:
- stage: ci
  jobs:
  - job: build_${{ parameters.pythonVersion }}
    pool:
      vmImage: ubuntu-latest
    timeoutInMinutes: 30
    steps:
    - checkout: self
      fetchDepth: 1
    - task: UsePythonVersion@0
      inputs:
        versionSpec: ${{ parameters.pythonVersion }}
    - ${{ if eq(parameters.runTests, true) }}:
      - bash: python -m pytest --junitxml=TEST-all.xml
        displayName: Tests
        continueOnError: false
    - task: PublishTestResults@2
      condition: succeededOrFailed()
      inputs:
        testResultsFiles: '**/TEST-*.xml'
        failTaskOnFailedTests: true
    - task: AzureKeyVault@2
      inputs:
        azureSubscription: sc-dev
        KeyVaultName: kv-dev
        RunAsPreJob: false
- stage: cd
  dependsOn: [ci]
  jobs:
  - deployment: deploy
    environment: dev
    strategy:
      runOnce:
        deploy:
          steps:
          - download: current
            artifact: drop
"""


@pytest.mark.parametrize("path", PIPELINE_FILES, ids=lambda p: p.relative_to(PIPELINES).as_posix())
def test_pipeline_file_is_valid(path):
    assert pipeline_schema.validate_file(path) == []


def test_the_pipeline_files_exist():
    names = {p.relative_to(PIPELINES).as_posix() for p in PIPELINE_FILES}
    assert {
        "azure-pipelines.yml",
        "templates/ci-steps.yml",
        "templates/python-setup-steps.yml",
        "templates/cd-stage.yml",
    } <= names


def test_base_document_is_valid():
    assert pipeline_schema.validate_text(BASE) == []


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "    steps:\n",
            "    stpes:\n",
            "stages/0/jobs/0 :: Additional properties are not allowed ('stpes' was unexpected)",
        ),
        (
            "task: UsePythonVersion@0",
            "task: UsePythonVersoin@0",
            "stages/0/jobs/0/steps/1/task :: unknown task 'UsePythonVersoin@0'",
        ),
        (
            "versionSpec:",
            "versionSpecc:",
            "stages/0/jobs/0/steps/1/inputs :: Additional properties are not allowed ('versionSpecc' was unexpected)",
        ),
        (
            "        KeyVaultName: kv-dev\n",
            "",
            "stages/0/jobs/0/steps/4/inputs :: 'KeyVaultName' is a required property",
        ),
        (
            "continueOnError: false",
            "continueOnError: maybe",
            "stages/0/jobs/0/steps/2/continueOnError :: 'maybe' is not a valid value here",
        ),
        (
            "        failTaskOnFailedTests: true",
            "        failTaskOnFailedTests: sometimes",
            "steps/3/inputs/failTaskOnFailedTests :: 'sometimes' is not of type 'boolean'",
        ),
        (
            "RunAsPreJob: false",
            "RunAsPreJob: perhaps",
            "steps/4/inputs/RunAsPreJob :: 'perhaps' is not of type 'boolean'",
        ),
        ("  type: boolean\n", "  type: boolen\n", "parameters/1/type"),
        (
            "    timeoutInMinutes: 30\n",
            "    timeoutInMinutes: 30\n    timeout: 30\n",
            "Additional properties are not allowed ('timeout' was unexpected)",
        ),
        ("          - download: current\n", "          - downlod: current\n", "strategy/runOnce/deploy/steps/0"),
        (
            "  dependsOn: [ci]\n",
            "  dependson: [ci]\n",
            "stages/1 :: Additional properties are not allowed ('dependson' was unexpected)",
        ),
    ],
)
def test_mistakes_are_reported_precisely(old, new, expected):
    assert old in BASE
    problems = pipeline_schema.validate_text(BASE.replace(old, new, 1))
    assert problems, "the mistake was not detected"
    assert any(expected in problem for problem in problems), problems


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("task: UsePythonVersion@0", "task: usepythonversion@0"),
        ("versionSpec:", "VERSIONSPEC:"),
        ("failTaskOnFailedTests: true", "failTaskOnFailedTests: yes"),
        ("failTaskOnFailedTests: true", "FailTaskOnFailedTests: 'TRUE'"),
        ("azureSubscription: sc-dev", "ConnectedServiceName: sc-dev"),
        ("RunAsPreJob: false", "RunAsPreJob: $(runAsPreJob)"),
        ("continueOnError: false", "continueOnError: ${{ parameters.runTests }}"),
        ("fetchDepth: 1", "fetchDepth: '1'"),
    ],
)
def test_what_azure_pipelines_accepts_passes(old, new):
    assert old in BASE
    assert pipeline_schema.validate_text(BASE.replace(old, new, 1)) == []


def test_mistakes_in_our_own_template_are_caught():
    text = (PIPELINES / "templates" / "ci-steps.yml").read_text()
    assert pipeline_schema.validate_text(text.replace("\nsteps:\n", "\nstpes:\n", 1))
    assert pipeline_schema.validate_text(text.replace("failTaskOnFailedTests: true", "failTaskOnFailedTests: maybe"))
    assert pipeline_schema.validate_text(text.replace("task: PublishTestResults@2", "task: PublishTestResult@2"))


def test_variables_template_and_hoisted_keys():
    assert pipeline_schema.validate_text("variables:\n- name: a\n  value: b\n- group: shared\n") == []
    assert pipeline_schema.validate_text("variables:\n- name: a\n  vaule: b\n")
    hoisted = pipeline_schema.hoist(
        pipeline_schema.load_yaml(
            "steps:\n- ${{ if true }}:\n  - bash: a\n  - bash: b\n- bash: c\npool:\n  ${{ if true }}:\n    vmImage: x\n"
        )
    )
    assert hoisted == {"steps": [{"bash": "a"}, {"bash": "b"}, {"bash": "c"}], "pool": {"vmImage": "x"}}


def test_loader_keeps_every_scalar_a_string():
    assert pipeline_schema.load_yaml("a: 1\nb: true\nc: null\nd: 1.5\n") == {
        "a": "1",
        "b": "true",
        "c": "null",
        "d": "1.5",
    }


# --- what the pipeline must do (issue contract) --------------------------------------------------------------------


def _load(path: Path):
    return pipeline_schema.load_yaml(path.read_text(encoding="utf-8"))


def _steps(path: Path) -> list[dict]:
    return [step for step in pipeline_schema.hoist(_load(path)).get("steps", []) if isinstance(step, dict)]


def test_entry_pipeline_triggers_parameters_and_stages():
    entry = _load(PIPELINES / "azure-pipelines.yml")
    assert entry["trigger"]["branches"]["include"] == ["main", "release/*"]
    assert entry["pr"]["branches"]["include"] == ["main", "release/*"]
    assert {p["name"] for p in entry["parameters"]} >= {"pythonVersion", "configFile", "artifactName"}
    stages = entry["stages"]
    assert stages[0]["stage"] == "ci"
    cd = [s for s in pipeline_schema.hoist(stages) if s.get("template") == "templates/cd-stage.yml"]
    assert [s["parameters"]["target"] for s in cd] == ["dev", "test", "prod"]
    prod_guard = [key for item in stages if isinstance(item, dict) for key in item if key.startswith("${{")]
    assert prod_guard == ["${{ if eq(variables['Build.SourceBranch'], 'refs/heads/main') }}"]
    assert "refs/heads/main" in cd[2]["parameters"]["condition"]
    for stage in cd:
        assert "PullRequest" in stage["parameters"]["condition"]
        assert set(stage["parameters"]) >= {"target", "environment", "serviceConnection", "dependsOn", "condition"}


def test_ci_steps_contract():
    setup = _steps(PIPELINES / "templates" / "python-setup-steps.yml")
    ci = _steps(PIPELINES / "templates" / "ci-steps.yml")
    tasks = [step.get("task") for step in setup + ci if "task" in step]
    # UniversalPackages@0 comes from the ${{ if }} block hoisted by _steps: only with an artifactFeed.
    assert tasks == [
        "UsePythonVersion@0",
        "Cache@2",
        "PublishTestResults@2",
        "PublishPipelineArtifact@1",
        "UniversalPackages@0",
    ]
    feed = next(step for step in ci if step.get("task") == "UniversalPackages@0")
    assert feed["inputs"]["command"] == "publish" and feed["inputs"]["versionOption"] == "patch"
    assert feed["inputs"]["publishDirectory"] == "$(Build.ArtifactStagingDirectory)/drop"
    publish = next(step for step in ci if step.get("task") == "PublishTestResults@2")
    assert publish["inputs"]["failTaskOnFailedTests"] == "true"
    assert publish["condition"] == "succeededOrFailed()"
    scripts = "\n".join(step.get("bash", "") for step in ci)
    order = [
        "validate_config.py --config",
        "read_config.py",
        "find_files.py",
        "install_requirements.py",
        "build_packages.py",
        "python -m pytest",
        "copy_notebooks.py",
        "merge_requirements.py",
        "create_init_script.py",
        "package_artifact.py",
    ]
    positions = [scripts.index(word) for word in order]
    assert positions == sorted(positions)
    # The config is validated first, for every target, and a warning fails the step.
    assert ci[0]["bash"].count("validate_config.py") == 1 and "--all-targets --strict" in ci[0]["bash"]


def test_no_swallowed_failures_and_every_referenced_script_exists():
    for path in PIPELINE_FILES:
        lines = path.read_text(encoding="utf-8").splitlines()
        text = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
        assert "|| true" not in text and "||true" not in text, path
        for script in re.findall(r"ci_cd_scripts/([A-Za-z0-9_]+\.py)", text):
            assert (SCRIPTS / script).is_file(), f"{path.name} runs missing {script}"
        for template in re.findall(r"template:\s*(\S+\.yml)", text):
            assert (path.parent / template).is_file(), f"{path.name} uses missing template {template}"


def _bash_steps(path: Path) -> list[str]:
    found = []

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("bash"), str):
                found.append(node["bash"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(pipeline_schema.hoist(_load(path)))
    return found


@pytest.mark.parametrize("path", PIPELINE_FILES, ids=lambda p: p.relative_to(PIPELINES).as_posix())
def test_bash_steps_parse(path):
    for script in _bash_steps(path):
        text = re.sub(r"\$\{\{.*?\}\}", "placeholder", script)
        result = subprocess.run(["bash", "-n"], input=text, capture_output=True, text=True)
        assert result.returncode == 0, f"{path.name}: {result.stderr}\n{script}"


@pytest.mark.parametrize("path", OWN_FILES, ids=lambda p: p.name)
def test_own_bash_steps_are_strict_and_take_values_from_env(path):
    for script in _bash_steps(path):
        assert script.startswith("set -euo pipefail\n"), script
        # $(macros) are pasted into the script text before bash runs: keep them in env: values only.
        assert not re.search(r"\$\([A-Za-z_][A-Za-z0-9_.]*\)", script), script
        assert "${{" not in script, script
