"""validate_config.py as a pipeline step: whatever the config holds, its output (text summary, --output json,
warnings) holds no live logging command, decoded the way the Azure Pipelines agent reads it.

Malformed configurations (one `error:` line, exit 2) are in test_config_errors.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from agent_decoder import parse_line
from helpers import run_script, script_env

from cicdkit import ado, config

INJECT = "##vso[task.setvariable variable=injected]pwned"
FORMAT = "##[error]fake error"
# Upper case too: the agent finds ##vso[ in any case.
HOSTILE = {
    "bundle": {"name": f"n{INJECT}"},
    "variables": {"note": {"default": f"##VSO[task.complete result=Failed]{FORMAT}"}},
    "targets": {
        f"t{INJECT}": {
            "default": True,
            "workspace": {"host": f"https://adb-1.2.azuredatabricks.net/{INJECT}", "root_path": f"/Workspace/{FORMAT}"},
            # An unknown field: a warning (task.logissue) that quotes the hostile key.
            "deploy": {"clusters": [f"c{INJECT}"]},
        },
    },
    f"x{INJECT}": 1,
}
USER = f"u{INJECT}@example.com"
LIVE = re.compile(r"##(vso)?\[", re.IGNORECASE)


def write(folder: Path) -> Path:
    path = folder / "config.json"
    path.write_text(json.dumps(HOSTILE), encoding="utf-8")
    return path


def assert_nothing_live(text: str) -> list:
    """Every line either holds no command start, or is one of the step's own warnings with inert data."""
    issues = []
    for line in text.splitlines():
        command = parse_line(line)
        if command is None:
            assert not LIVE.search(line), line
            continue
        assert (command.area, command.event) == ("task", "logissue") and line.startswith("##vso[task.logissue "), line
        assert not LIVE.search(command.data), command.data
        issues.append(command)
    return issues


def neutralised(value):
    if isinstance(value, dict):
        return {ado.neutralise(key): neutralised(item) for key, item in value.items()}
    if isinstance(value, list):
        return [neutralised(item) for item in value]
    return ado.neutralise(value) if isinstance(value, str) else value


def test_text_summary_inside_a_pipeline_holds_no_live_command(tmp_path):
    path = write(tmp_path)
    result = run_script("validate_config.py", "--config", path, "--current-user", USER, env=script_env(TF_BUILD="True"))
    assert result.returncode == 0, result.stderr
    issues = assert_nothing_live(result.stdout + result.stderr)
    assert issues and all(issue.properties["type"] == "warning" for issue in issues)
    # The unknown field's issue names the file, line and column it was written at.
    column = str(json.dumps(HOSTILE).index(json.dumps(f"x{INJECT}")) + 1)
    assert any(
        issue.properties == {"type": "warning", "sourcepath": str(path), "linenumber": "1", "columnnumber": column}
        for issue in issues
    ), [issue.properties for issue in issues]
    assert any("unknown field" in issue.data and "task.setvariable" in issue.data for issue in issues)
    # Each value is still shown, made inert by a zero-width space between the two '#'.
    for shown in ("Name: n", "Host: https://adb-1.2.azuredatabricks.net/", "User: u", "Path: /Workspace/"):
        line = next(line for line in result.stdout.splitlines() if line.strip().startswith(shown))
        assert "task.setvariable" in line or "fake error" in line, line
        assert line.replace("\u200b", "").strip().startswith(shown), line


def test_json_output_inside_a_pipeline_is_valid_inert_and_round_trips_neutralised(tmp_path):
    path = write(tmp_path)
    result = run_script(
        "validate_config.py",
        "--config",
        path,
        "--current-user",
        USER,
        "--output",
        "json",
        env=script_env(TF_BUILD="True"),
    )
    assert result.returncode == 0, result.stderr
    assert_nothing_live(result.stdout + result.stderr)
    printed = json.loads(result.stdout)  # stdout is the document and nothing else
    resolved = json.loads(config.to_json(config.load(path, current_user=USER, environ={}).tree))
    assert printed == neutralised(resolved)
    # Not vacuous: the resolved values do hold live command starts, and they are all there, inert.
    assert LIVE.search(json.dumps(resolved, ensure_ascii=False)) and printed != resolved
    assert printed["bundle"]["name"] == ado.neutralise(f"n{INJECT}")
    assert printed["workspace"]["host"] == ado.neutralise(HOSTILE["targets"][f"t{INJECT}"]["workspace"]["host"])
    assert printed["bundle"]["target"] == ado.neutralise(f"t{INJECT}")


@pytest.mark.parametrize("pipeline", ["True", None])
def test_output_is_inert_in_and_out_of_a_pipeline(tmp_path, pipeline):
    # The same rule outside a pipeline: a log captured by hand and replayed by an agent injects nothing either.
    path = write(tmp_path)
    result = run_script(
        "validate_config.py", "--config", path, "--current-user", USER, env=script_env(TF_BUILD=pipeline)
    )
    assert result.returncode == 0, result.stderr
    assert_nothing_live(result.stdout + result.stderr)
