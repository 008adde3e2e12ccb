"""The CD stage template keeps its contract: parameters, a deployment job on the Environment, the artifact of this
run, and secrets reaching steps only through ``env:`` mappings. (Schema validity: tests/test_pipelines_schema.py.)"""
from __future__ import annotations

import re

import yaml

from helpers import ROOT

TEMPLATES = ROOT / "pipelines" / "templates"
SECRET_MACRO = re.compile(r"\$\((databricks-token|\$\{\{ parameters\.(tokenSecret|databricksTokenSecret) \}\})\)")


def load(name: str) -> dict:
    return yaml.safe_load((TEMPLATES / name).read_text(encoding="utf-8"))


def walk_steps(node):
    """Every step mapping, including steps inside ${{ if }} blocks."""
    if isinstance(node, list):
        for item in node:
            if isinstance(item, dict) and any(key in item for key in ("task", "bash", "script", "template", "download")):
                yield item
            yield from walk_steps(item)
    elif isinstance(node, dict):
        for value in node.values():
            yield from walk_steps(value)


def strings_outside_env(node, inside_env=False):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from strings_outside_env(value, inside_env or key == "env")
    elif isinstance(node, list):
        for item in node:
            yield from strings_outside_env(item, inside_env)
    elif isinstance(node, str) and not inside_env:
        yield node


def test_parameters_follow_the_contract():
    parameters = {p["name"]: p for p in load("cd-stage.yml")["parameters"]}
    expected = {
        "target": ("string", None), "environment": ("string", None), "serviceConnection": ("string", None),
        "variableGroup": ("string", ""), "artifactName": ("string", "drop"), "pythonVersion": ("string", "3.11"),
        "configFile": ("string", "config.json"), "dependsOn": ("object", []), "condition": ("string", "succeeded()"),
    }
    for name, (kind, default) in expected.items():
        assert parameters[name]["type"] == kind, name
        assert parameters[name].get("default") == default, name
    assert all("default" in p for name, p in parameters.items() if name not in ("target", "environment", "serviceConnection"))


def test_deployment_job_on_the_environment_with_the_artifact_of_this_run():
    stage = load("cd-stage.yml")["stages"][0]
    job = stage["jobs"][0]
    assert job["environment"] == "${{ parameters.environment }}"
    steps = job["strategy"]["runOnce"]["deploy"]["steps"]
    assert steps[0] == {"download": "none"}
    download = steps[1]
    assert download["task"] == "DownloadPipelineArtifact@2"
    assert download["inputs"]["buildType"] == "current"
    names = [step.get("name") for step in steps]
    assert "config" in names and "secrets" in names
    order = [step.get("inputs", {}).get("inlineScript", "") + step.get("bash", "") + str(step.get("parameters", {}).get("script", ""))
             for step in steps]
    positions = [next(i for i, text in enumerate(order) if script in text) for script in
                 ("package_artifact.py --verify", "read_config.py", "fetch_secrets.py", "upload_files.py",
                  "create_init_script.py", "attach_init_script.py", "install_libraries.py", "deploy_notebooks.py")]
    assert positions == sorted(positions)


def test_the_init_script_is_written_for_the_stage_target_before_it_is_uploaded():
    """The artifact's init/init.sh points at the CI target's libraries path; each stage writes its own."""
    steps = load("cd-stage.yml")["stages"][0]["jobs"][0]["strategy"]["runOnce"]["deploy"]["steps"]
    scripts = [step.get("bash", "") + str(step.get("parameters", {}).get("script", "")) for step in steps]
    create = next(i for i, text in enumerate(scripts) if "create_init_script.py" in text)
    upload = next(i for i, text in enumerate(scripts) if "upload_files.py" in text and "DEPLOY_INIT_SCRIPT_PATH" in text)
    assert create < upload
    command = " ".join(scripts[create].replace("\\\n", " ").split())
    for part in ('--out "deploy-init/${DEPLOY_INIT_SCRIPT_PATH##*/}"', "--requirements requirements.txt",
                 "--wheel-dir wheels", '--config "${{ parameters.configFile }}"', '-t "${{ parameters.target }}"'):
        assert part in command, part
    assert '"deploy-init/${DEPLOY_INIT_SCRIPT_PATH##*/}"' in scripts[upload]
    # Nothing uploads the CI target's script any more.
    assert not any("init/init.sh" in text for text in scripts)


def test_secrets_reach_steps_only_through_env_mappings():
    for name in ("cd-stage.yml", "cd-databricks-step.yml"):
        document = load(name)
        leaked = [text for text in strings_outside_env(document) if SECRET_MACRO.search(text)]
        assert leaked == [], f"{name}: secret macro outside env: {leaked}"
    step = load("cd-databricks-step.yml")
    env_values = [s.get("env", {}) for s in walk_steps(step["steps"])]
    assert {"DATABRICKS_TOKEN": "$(${{ parameters.tokenSecret }})", "DATABRICKS_AUTH_TYPE": "pat"} in env_values
    # No step prints variables or turns on shell tracing (which would echo command lines).
    for name in ("cd-stage.yml", "cd-databricks-step.yml"):
        text = (TEMPLATES / name).read_text(encoding="utf-8")
        assert "set -x" not in text and "printenv" not in text and "System.Debug" not in text
