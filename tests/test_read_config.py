"""read_config.py as a pipeline step: TF_BUILD=True output decoded the way the Azure Pipelines agent does."""

from __future__ import annotations

import json
from pathlib import Path

from agent_decoder import parse_output
from helpers import ROOT, assert_one_line_error, run_script, script_env

HOSTILE = "a;b]c%AZP25d\n##vso[task.setvariable variable=injected]pwned\r\n%0A ]; done"


def write(folder: Path, content: dict) -> Path:
    (folder / "config.json").write_text(json.dumps(content), encoding="utf-8")
    return folder / "config.json"


def exported(result) -> dict[str, str]:
    commands = parse_output(result.stdout)
    assert all((c.area, c.event) == ("task", "setvariable") for c in commands), commands
    return {command.properties["variable"]: command.data for command in commands}


def test_exports_every_setting_for_the_repo_config():
    result = run_script(
        "read_config.py", "-t", "prod", "--current-user", "ci@example.com", env=script_env(TF_BUILD="True"), cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    variables = exported(result)
    assert variables["bundle_name"] == "databricks-ci-cd" and variables["bundle_target"] == "prod"
    assert variables["workspace_host"] == "https://adb-3333333333333333.13.azuredatabricks.net"
    assert variables["workspace_root_path"] == "/Workspace/Shared/.bundle/databricks-ci-cd/prod"
    assert variables["catalog"] == "main"
    assert variables["deploy_clusters"] == "0611-093310-prod0001,0611-093310-prod0002"
    assert variables["deploy_keyvault_name"] == "kv-dbx-cicd-prod"
    assert variables["deploy_keyvault_secrets"] == "databricks-token"
    assert variables["deploy_concurrency"] == "4"
    # Nothing but logging commands on stdout.
    assert all(line.startswith("##vso[task.setvariable ") for line in result.stdout.splitlines())


def test_hostile_value_round_trips_and_injects_nothing(tmp_path):
    write(
        tmp_path,
        {
            "bundle": {"name": "b"},
            "variables": {"note": {"default": "x"}, "plain": {"default": "y"}},
            "deploy": {"keyvault": {"name": "kv", "secrets": ["s1", "s2"]}, "concurrency": 3},
        },
    )
    result = run_script(
        "read_config.py",
        "--config",
        tmp_path,
        "--current-user",
        "a@b.c",
        env=script_env(TF_BUILD="True", BUNDLE_VAR_note=HOSTILE),
    )
    assert result.returncode == 0, result.stderr
    commands = parse_output(result.stdout)
    names = [command.properties["variable"] for command in commands]
    assert "injected" not in names and len(names) == len(set(names))
    variables = exported(result)
    assert variables["note"] == HOSTILE
    assert variables["plain"] == "y" and variables["deploy_keyvault_secrets"] == "s1,s2"
    assert variables["deploy_concurrency"] == "3"
    assert HOSTILE.splitlines()[0] not in result.stderr


def test_complex_variables_and_nested_deploy_keys(tmp_path):
    write(
        tmp_path,
        {
            "bundle": {"name": "b"},
            "variables": {"cluster": {"type": "complex", "default": {"b": 1, "a": [1, 2]}}},
            "deploy": {"rate_limits": {"jobs": 5, "workspace": None}, "test_notebooks": []},
        },
    )
    result = run_script(
        "read_config.py",
        "--config",
        tmp_path,
        "--current-user",
        "a@b.c",
        "--output-variables",
        env=script_env(TF_BUILD="True"),
    )
    assert result.returncode == 0, result.stderr
    commands = parse_output(result.stdout)
    assert all(command.properties.get("isoutput") == "true" for command in commands)
    variables = {c.properties["variable"]: c.data for c in commands}
    assert json.loads(variables["cluster"]) == {"b": 1, "a": [1, 2]}
    assert variables["deploy_rate_limits_jobs"] == "5" and variables["deploy_rate_limits_workspace"] == ""
    assert variables["deploy_test_notebooks"] == ""


def test_plain_output_outside_pipelines(tmp_path):
    write(tmp_path, {"bundle": {"name": "b"}, "workspace": {"host": "https://adb-1.1.azuredatabricks.net"}})
    result = run_script("read_config.py", "--config", tmp_path, "--current-user", "a@b.c")
    assert result.returncode == 0, result.stderr
    assert "[set variable] bundle_name=b" in result.stdout
    assert "[set variable] workspace_host=https://adb-1.1.azuredatabricks.net" in result.stdout
    assert "[set variable] workspace_root_path=/Workspace/Users/a@b.c/.bundle/b/default" in result.stdout
    # No deploy section: the documented keys are still set (empty) so $(deploy_clusters) never stays literal.
    assert (
        "[set variable] deploy_clusters=\n" in result.stdout
        and "[set variable] deploy_keyvault_url=\n" in result.stdout
    )
    assert "##vso" not in result.stdout


def test_variable_name_azure_pipelines_cannot_take(tmp_path):
    write(tmp_path, {"variables": {"größe": {"default": "1"}}})
    result = run_script(
        "read_config.py", "--config", tmp_path, "--current-user", "a@b.c", env=script_env(TF_BUILD="True")
    )
    assert_one_line_error(
        result, code=2, contains="the config variable 'größe' cannot be exported as a pipeline variable"
    )
    assert "##vso[" not in result.stdout, "nothing is exported when one name is bad"


def test_variable_name_clashing_with_a_setting(tmp_path):
    write(tmp_path, {"variables": {"Bundle_Name": {"default": "x"}}})
    result = run_script(
        "read_config.py", "--config", tmp_path, "--current-user", "a@b.c", env=script_env(TF_BUILD="True")
    )
    assert_one_line_error(result, code=2, contains="'Bundle_Name' clashes with 'bundle_name'")


def test_reserved_prefix_is_refused(tmp_path):
    write(tmp_path, {"variables": {"secret_level": {"default": "x"}}})
    result = run_script("read_config.py", "--config", tmp_path, "--current-user", "a@b.c")
    assert_one_line_error(result, code=2, contains="reserved prefix")


def test_current_user_comes_from_scim_me_when_credentials_are_set(tmp_path):
    from local_cloud.workspace.server import LocalWorkspace

    token = "dapi-config-KNOWN-0b1c2d3e4f"
    write(tmp_path, {"bundle": {"name": "b"}, "variables": {"me": {"default": "${workspace.current_user.short_name}"}}})
    with LocalWorkspace(token=token, time_scale=0, clusters=[]) as workspace:
        env = script_env(TF_BUILD="True", DATABRICKS_HOST=workspace.url, DATABRICKS_TOKEN=token)
        result = run_script("read_config.py", "--config", tmp_path, env=env)
        validate = run_script(
            "validate_config.py",
            "--config",
            tmp_path,
            "--output",
            "json",
            env=script_env(DATABRICKS_HOST=workspace.url, DATABRICKS_TOKEN=token),
        )
        denied = run_script(
            "validate_config.py",
            "--config",
            tmp_path,
            env=script_env(DATABRICKS_HOST=workspace.url, DATABRICKS_TOKEN=token + "-wrong"),
        )
    assert result.returncode == 0, result.stderr
    variables = exported(result)
    assert variables["workspace_root_path"] == "/Workspace/Users/local-user@example.com/.bundle/b/default"
    assert variables["me"] == "local_user"
    assert validate.returncode == 0, validate.stderr
    assert json.loads(validate.stdout)["workspace"]["current_user"]["userName"] == "local-user@example.com"
    assert_one_line_error(denied, code=1)
    for output in (result, validate, denied):
        assert token not in output.stdout + output.stderr


def test_current_user_with_the_host_only_in_the_config(tmp_path):
    """DATABRICKS_TOKEN set, DATABRICKS_HOST not: the config's workspace.host is used for the SCIM Me call."""
    from local_cloud.workspace.server import LocalWorkspace

    token = "dapi-config-KNOWN-5e6f7a8b9c"
    with LocalWorkspace(token=token, time_scale=0, clusters=[]) as workspace:
        write(tmp_path, {"bundle": {"name": "b"}, "workspace": {"host": workspace.url}})
        result = run_script(
            "read_config.py", "--config", tmp_path, env=script_env(TF_BUILD="True", DATABRICKS_TOKEN=token)
        )
        me_calls = [entry for entry in workspace.requests if entry.path.endswith("/scim/v2/Me")]
    assert result.returncode == 0, result.stderr
    assert exported(result)["workspace_root_path"] == "/Workspace/Users/local-user@example.com/.bundle/b/default"
    assert len(me_calls) == 1
    assert token not in result.stdout + result.stderr


def test_unresolved_current_user_fails_in_a_pipeline(tmp_path):
    write(
        tmp_path,
        {
            "bundle": {"name": "b"},
            "variables": {"me": {"default": "${workspace.current_user.userName}"}},
            "workspace": {"root_path": "/Workspace/Shared/b"},
        },
    )
    result = run_script("read_config.py", "--config", tmp_path, env=script_env(TF_BUILD="True"))
    assert_one_line_error(result, code=2, contains="me")
    assert "current user" in result.stderr and "--current-user" in result.stderr
    assert "##vso[task.setvariable" not in result.stdout, "nothing is exported when one value is unusable"
    write(tmp_path, {"bundle": {"name": "b"}, "workspace": {"root_path": "~/projects/b"}})
    result = run_script("read_config.py", "--config", tmp_path, env=script_env(TF_BUILD="True"))
    assert_one_line_error(result, code=2, contains="workspace_root_path is '~/projects/b'")
    outside = run_script("read_config.py", "--config", tmp_path, env=script_env())
    assert outside.returncode == 0, "outside a pipeline it stays a warning"
    # CI reads the config without credentials: the default root path (consumed by no step) only warns.
    write(tmp_path, {"bundle": {"name": "b"}})
    result = run_script("read_config.py", "--config", tmp_path, env=script_env(TF_BUILD="True"))
    assert result.returncode == 0, result.stderr
    assert "workspace_root_path is exported as '~/.bundle/b/default'" in result.stdout


def test_target_name_in_the_closing_line_injects_nothing(tmp_path):
    # The target's name is a config key; read_config.py repeats it on stderr, which the agent reads too.
    target = "t##vso[task.setvariable variable=injected]pwned"
    write(tmp_path, {"bundle": {"name": "b"}, "targets": {target: {"default": True}}})
    result = run_script(
        "read_config.py", "--config", tmp_path, "--current-user", "a@b.c", env=script_env(TF_BUILD="True")
    )
    assert result.returncode == 0, result.stderr
    assert exported(result)["bundle_target"] == target, "the exported value itself round-trips exactly"
    assert parse_output(result.stderr) == [] and "##vso[" not in result.stderr
    assert "variables set for target t" in result.stderr and "task.setvariable" in result.stderr
