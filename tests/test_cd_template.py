"""The CD stage template keeps its contract: parameters, a deployment job on the Environment, the artifact of this
run, and secrets reaching steps only through ``env:`` mappings. (Schema validity: tests/test_pipelines_schema.py.)"""

from __future__ import annotations

import re
import subprocess
import sys

import yaml
from helpers import ROOT, SCRIPTS, run_script, script_env

TEMPLATES = ROOT / "pipelines" / "templates"
SECRET_MACRO = re.compile(r"\$\((databricks-token|\$\{\{ parameters\.(tokenSecret|databricksTokenSecret) \}\})\)")


def load(name: str) -> dict:
    return yaml.safe_load((TEMPLATES / name).read_text(encoding="utf-8"))


def walk_steps(node):
    """Every step mapping, including steps inside ${{ if }} blocks."""
    if isinstance(node, list):
        for item in node:
            if isinstance(item, dict) and any(
                key in item for key in ("task", "bash", "script", "template", "download")
            ):
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
        "target": ("string", None),
        "environment": ("string", None),
        "serviceConnection": ("string", None),
        "variableGroup": ("string", ""),
        "artifactName": ("string", "drop"),
        "pythonVersion": ("string", "3.11"),
        "configFile": ("string", "config.json"),
        "dependsOn": ("object", []),
        "condition": ("string", "succeeded()"),
    }
    for name, (kind, default) in expected.items():
        assert parameters[name]["type"] == kind, name
        assert parameters[name].get("default") == default, name
    assert all(
        "default" in p for name, p in parameters.items() if name not in ("target", "environment", "serviceConnection")
    )


def test_deployment_job_on_the_environment_with_the_artifact_of_this_run():
    stage = load("cd-stage.yml")["stages"][0]
    job = stage["jobs"][0]
    assert job["environment"] == "${{ parameters.environment }}"
    steps = job["strategy"]["runOnce"]["deploy"]["steps"]
    assert steps[0] == {"download": "none"}
    # This run's artifact unless a feed version is asked for (then that version, or an error without a feed).
    ((this_run_key, this_run),) = steps[1].items()
    ((no_feed_key, no_feed),) = steps[2].items()
    ((feed_key, feed),) = steps[3].items()
    assert this_run_key == "${{ if eq(parameters.artifactVersion, '') }}"
    assert this_run[0]["task"] == "DownloadPipelineArtifact@2" and this_run[0]["inputs"]["buildType"] == "current"
    assert no_feed_key == "${{ elseif eq(parameters.artifactFeed, '') }}" and "exit 2" in no_feed[0]["bash"]
    assert feed_key == "${{ else }}" and feed[0]["task"] == "UniversalPackages@0"
    assert feed[0]["inputs"]["command"] == "download"
    assert feed[0]["inputs"]["vstsPackageVersion"] == "${{ parameters.artifactVersion }}"
    assert feed[0]["inputs"]["downloadDirectory"] == "$(artifactDir)"
    names = [step.get("name") for step in steps]
    assert "config" in names and "secrets" in names
    order = [
        step.get("inputs", {}).get("inlineScript", "")
        + step.get("bash", "")
        + str(step.get("parameters", {}).get("script", ""))
        for step in steps
    ]
    positions = [
        next(i for i, text in enumerate(order) if script in text)
        for script in (
            "package_artifact.py --verify",
            "read_config.py",
            "fetch_secrets.py",
            "upload_files.py",
            "create_init_script.py",
            "attach_init_script.py",
            "install_libraries.py",
            "deploy_notebooks.py",
            "run_notebooks.py",
            "evaluate_runs.py",
        )
    ]
    assert positions == sorted(positions)


def test_the_artifact_is_verified_before_pip_reads_anything_from_it():
    """A tampered ci_cd_scripts/requirements.txt in the zip must be caught before pip installs from it."""
    steps = load("cd-stage.yml")["stages"][0]["jobs"][0]["strategy"]["runOnce"]["deploy"]["steps"]
    scripts = [step.get("bash", "") + step.get("inputs", {}).get("inlineScript", "") for step in steps]
    verify = next(i for i, text in enumerate(scripts) if "package_artifact.py --verify" in text)
    installs = [i for i, text in enumerate(scripts) if "pip install" in text]
    assert installs and verify < min(installs), (verify, installs)


def test_verify_needs_only_the_standard_library(tmp_path):
    """The verify step runs before the scripts' requirements are installed: python -S (no site-packages) must do."""
    from test_package_artifact import make_staging

    staging, config = make_staging(tmp_path)
    out = tmp_path / "artifact.zip"
    assert run_script("package_artifact.py", staging, out, "--config", config).returncode == 0
    result = subprocess.run(
        [sys.executable, "-S", str(SCRIPTS / "package_artifact.py"), "--verify", str(out)],
        cwd=tmp_path,
        env=script_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "every file matches MANIFEST.json" in result.stdout


def test_the_init_script_is_written_for_the_stage_target_before_it_is_uploaded():
    """The artifact's init/init.sh points at the CI target's libraries path; each stage writes its own."""
    steps = load("cd-stage.yml")["stages"][0]["jobs"][0]["strategy"]["runOnce"]["deploy"]["steps"]
    scripts = [step.get("bash", "") + str(step.get("parameters", {}).get("script", "")) for step in steps]
    create = next(i for i, text in enumerate(scripts) if "create_init_script.py" in text)
    upload = next(
        i for i, text in enumerate(scripts) if "upload_files.py" in text and "DEPLOY_INIT_SCRIPT_PATH" in text
    )
    assert create < upload
    command = " ".join(scripts[create].replace("\\\n", " ").split())
    for part in (
        '--out "deploy-init/${DEPLOY_INIT_SCRIPT_PATH##*/}"',
        "--requirements requirements.txt",
        "--wheel-dir wheels",
        '--config "$CONFIG_FILE"',
        '-t "$TARGET"',
    ):
        assert part in command, part
    assert '"deploy-init/${DEPLOY_INIT_SCRIPT_PATH##*/}"' in scripts[upload]
    # Nothing uploads the CI target's script any more.
    assert not any("init/init.sh" in text for text in scripts)


def test_test_notebook_results_are_published_even_when_a_test_failed():
    """run_notebooks.py exits 1 when a test fails: evaluating, publishing the JUnit (failing the task on failed tests)
    and publishing the run records must still happen, and only when there are records (a variable the steps set)."""
    steps = load("cd-stage.yml")["stages"][0]["jobs"][0]["strategy"]["runOnce"]["deploy"]["steps"]
    run = next(s for s in steps if "run_notebooks.py" in str(s.get("parameters", {}).get("script", "")))
    evaluate = next(s for s in steps if "evaluate_runs.py" in s.get("bash", ""))
    publish = next(s for s in steps if s.get("task") == "PublishTestResults@2")
    artifact = next(s for s in steps if s.get("task") == "PublishPipelineArtifact@1")
    assert steps.index(run) < steps.index(evaluate) < steps.index(publish) < steps.index(artifact)
    assert "deploy_test_notebooks" in run["parameters"]["condition"] and run["parameters"]["condition"].startswith(
        "and(succeeded()"
    )
    assert (
        evaluate["condition"].startswith("and(succeededOrFailed()") and "run_notebooks_out_dir" in evaluate["condition"]
    )
    assert publish["condition"].startswith("and(succeededOrFailed()") and "notebook_tests_junit" in publish["condition"]
    assert artifact["condition"].startswith("and(always()") and "run_notebooks_out_dir" in artifact["condition"]
    inputs = publish["inputs"]
    assert inputs["testResultsFormat"] == "JUnit" and inputs["failTaskOnFailedTests"] is True
    assert (
        inputs["testResultsFiles"] == "$(notebook_tests_junit)" and "${{ parameters.target }}" in inputs["testRunTitle"]
    )
    assert "$(System.JobAttempt)" in artifact["inputs"]["artifact"]  # a re-run of the stage can publish again
    # the variables the conditions read are the ones the scripts set
    for script, variable in (
        ("run_notebooks.py", "run_notebooks_out_dir"),
        ("evaluate_runs.py", "notebook_tests_junit"),
    ):
        assert f'ado.set_variable("{variable}"' in (SCRIPTS / script).read_text(encoding="utf-8")


def test_jobs_are_deployed_after_the_notebooks_before_the_tests_and_a_smoke_test_is_optional():
    template = load("cd-stage.yml")
    parameters = {p["name"]: p for p in template["parameters"]}
    assert parameters["smokeTestJob"] == {"name": "smokeTestJob", "type": "string", "default": ""}
    stage = template["stages"][0]
    assert {"name": "smokeTestJob", "value": "${{ parameters.smokeTestJob }}"} in stage["variables"]
    steps = stage["jobs"][0]["strategy"]["runOnce"]["deploy"]["steps"]
    names = [s.get("parameters", {}).get("displayName") or s.get("displayName") for s in steps]
    assert names.index("Deploy notebooks") < names.index("Deploy jobs") < names.index("Run the test notebooks")
    deploy = steps[names.index("Deploy jobs")]
    assert deploy["template"] == "cd-databricks-step.yml" and "deploy_jobs.py" in deploy["parameters"]["script"]
    assert "--prune" in deploy["parameters"]["script"]
    smoke = steps[names.index("Run the smoke test job")]
    assert names.index("Run the smoke test job") == len(names) - 1
    assert 'run_job.py "$SMOKETESTJOB"' in smoke["parameters"]["script"]
    assert smoke["parameters"]["condition"] == "and(succeeded(), ne(coalesce(variables['smokeTestJob'], ''), ''))"


def test_secrets_reach_steps_only_through_env_mappings():
    for name in ("cd-stage.yml", "cd-databricks-step.yml"):
        document = load(name)
        leaked = [text for text in strings_outside_env(document) if SECRET_MACRO.search(text)]
        assert leaked == [], f"{name}: secret macro outside env: {leaked}"
    step = load("cd-databricks-step.yml")
    env_values = [s.get("env", {}) for s in walk_steps(step["steps"])]
    assert {
        "DATABRICKS_TOKEN": "$(${{ parameters.tokenSecret }})",
        "DATABRICKS_AUTH_TYPE": "pat",
        "CONFIG_FILE": "${{ parameters.configFile }}",
        "TARGET": "${{ parameters.target }}",
    } in env_values
    # No step prints variables or turns on shell tracing (which would echo command lines).
    for name in ("cd-stage.yml", "cd-databricks-step.yml"):
        text = (TEMPLATES / name).read_text(encoding="utf-8")
        assert "set -x" not in text and "printenv" not in text and "System.Debug" not in text


# ---- no template expression inside script text ---------------------------------------------------------------------

PIPELINES = ROOT / "pipelines"
SCRIPT_KEYS = ("bash", "script", "pwsh", "powershell", "inlineScript")
EXPRESSION = re.compile(r"\$\{\{.*?\}\}", re.S)
# cd-databricks-step.yml splices its `script` parameter: template text from cd-stage.yml (checked below as the
# caller's `script:`), never a runtime value.
ALLOWED_SPLICE = {("cd-databricks-step.yml", "${{ parameters.script }}")}


def script_bodies(node, where=""):
    """(where, text) of every script body: step bash/script/pwsh, AzureCLI@2 inlineScript, template `script:`."""
    if isinstance(node, list):
        for index, item in enumerate(node):
            yield from script_bodies(item, f"{where}[{index}]")
    elif isinstance(node, dict):
        for key, value in node.items():
            if key in SCRIPT_KEYS and isinstance(value, str):
                yield f"{where}.{key}", value
            elif (
                key == "parameters"
                and "template" in node
                and isinstance(value, dict)
                and isinstance(value.get("script"), str)
            ):
                yield f"{where}.parameters.script", value["script"]
            else:
                yield from script_bodies(value, f"{where}.{key}")


def expressions_in_scripts(path) -> list[str]:
    found = []
    for where, text in script_bodies(yaml.safe_load(path.read_text(encoding="utf-8"))):
        for expression in EXPRESSION.findall(text):
            if (path.name, expression) not in ALLOWED_SPLICE:
                found.append(f"{path.relative_to(ROOT)} {where}: {expression}")
    return found


def test_no_template_expression_is_pasted_into_script_text():
    """`${{ parameters.configFile }}` (a runtime parameter) pasted into bash could run commands next to
    DATABRICKS_TOKEN: parameters reach scripts only through env: and are used as "$VAR"."""
    files = sorted(PIPELINES.rglob("*.yml"))
    assert {p.name for p in files} >= {"azure-pipelines.yml", "ci-steps.yml", "cd-stage.yml", "cd-databricks-step.yml"}
    found = [line for path in files for line in expressions_in_scripts(path)]
    assert found == []


def test_the_script_expression_check_finds_a_pasted_parameter(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text(
        'steps:\n- bash: python x.py --config "${{ parameters.configFile }}"\n'
        "- task: AzureCLI@2\n  inputs:\n    inlineScript: echo ${{ parameters.target }}\n"
        "- template: cd-databricks-step.yml\n  parameters:\n    script: run -t ${{parameters.target}}\n",
        encoding="utf-8",
    )
    found = [where for where, text in script_bodies(yaml.safe_load(bad.read_text())) if EXPRESSION.search(text)]
    assert found == [".steps[0].bash", ".steps[1].inputs.inlineScript", ".steps[2].parameters.script"]
