"""Malformed configurations: each gives exactly one line ``error: ...`` on stderr and exit code 2, run through
validate_config.py (and read_config.py) as subprocesses the way a pipeline runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import assert_one_line_error, run_script, script_env

USER = "tester@databricks.com"

CASES = [
    # name, files, extra argv, env, expected substring of the error line
    ("json-syntax", {"config.json": '{\n  "bundle": {"name": "x",}\n}\n'}, [], {}, "config.json:2:26: invalid JSON"),
    ("yaml-syntax", {"databricks.yml": "bundle:\n  name: x\n   bad: [\n"}, [], {}, "databricks.yml:3:"),
    (
        "yaml-syntax-in-include",
        {"config.json": {"include": ["extra.yml"]}, "extra.yml": "a: b: c\n"},
        [],
        {},
        "extra.yml:1:5: invalid YAML",
    ),
    ("top-level-not-a-map", {"config.json": "[1, 2]"}, [], {}, "the top level must be a mapping, found sequence"),
    ("bundle-wrong-type", {"config.json": {"bundle": "name"}}, [], {}, "bundle must be a map, found string"),
    ("include-wrong-type", {"config.json": {"include": "a.yml"}}, [], {}, "include must be a sequence, found string"),
    (
        "variable-wrong-type",
        {"config.json": {"variables": {"v": 5}}},
        [],
        {},
        'variables.v must be a mapping such as {"default": ...}, found int',
    ),
    ("target-wrong-type", {"config.json": {"targets": {"dev": ["x"]}}}, [], {}, "targets.dev must be a map"),
    (
        "unknown-target",
        {"config.json": {"targets": {"dev": {}, "prod": {}}}},
        ["-t", "qa"],
        {},
        "qa: no such target. Available targets: dev, prod",
    ),
    (
        "unknown-target-from-env",
        {"config.json": {"targets": {"dev": {}}}},
        [],
        {"DATABRICKS_BUNDLE_TARGET": "stage"},
        "stage: no such target. Available targets: dev",
    ),
    (
        "multiple-defaults",
        {"config.json": {"targets": {"a": {"default": True}, "b": {"default": True}}}},
        [],
        {},
        "multiple targets are marked as default (a, b)",
    ),
    ("no-default-target", {"config.json": {"targets": {"a": {}, "b": {}}}}, [], {}, "please specify target"),
    (
        "required-variable",
        {"config.json": {"variables": {"who": {"description": "x"}}}},
        [],
        {},
        "no value assigned to required variable who",
    ),
    (
        "cycle",
        {"config.json": {"variables": {"a": {"default": "${var.b}"}, "b": {"default": "${var.a}"}}}},
        [],
        {},
        "cycle detected in field resolution: variables.a.default -> var.b -> var.a -> var.b",
    ),
    (
        "unknown-reference",
        {"config.json": {"variables": {"host": {"default": "h"}, "x": {"default": "${var.hots}"}}}},
        [],
        {},
        "reference does not exist: ${var.hots} (did you mean: ${var.host})",
    ),
    (
        "missing-include",
        {"config.json": {"include": ["missing.yml"]}},
        [],
        {},
        "missing.yml defined in 'include' section does not match any files",
    ),
    (
        "absolute-include",
        {"config.json": {"include": ["/etc/passwd"]}},
        [],
        {},
        "/etc/passwd: includes must be relative paths",
    ),
    (
        "var-without-equals",
        {"config.json": {"variables": {"a": {"default": "x"}}}},
        ["--var", "a"],
        {},
        "unexpected flag value for variable assignment: a",
    ),
    (
        "var-undefined",
        {"config.json": {"variables": {"a": {"default": "x"}}}},
        ["--var", "b=1"],
        {},
        "variable b has not been defined",
    ),
    (
        "complex-via-var",
        {"config.json": {"variables": {"c": {"type": "complex", "default": {"a": 1}}}}},
        ["--var", "c=1"],
        {},
        "setting variables of complex type via --var flag is not supported: c",
    ),
    (
        "complex-via-env",
        {"config.json": {"variables": {"c": {"type": "complex", "default": {"a": 1}}}}},
        [],
        {"BUNDLE_VAR_c": "1"},
        "setting via environment variables (BUNDLE_VAR_c) is not supported for complex variable c",
    ),
    (
        "undefined-var-in-target",
        {"config.json": {"variables": {"a": {"default": 1}}, "targets": {"t": {"variables": {"zz": 2}}}}},
        [],
        {},
        "failed to perform target override for target=t: variable zz is not defined but is assigned a value",
    ),
    (
        "merge-kinds",
        {
            "config.json": {
                # A value of the wrong kind is dropped as the file is read (a warning); a whole-value reference is
                # kept until it is resolved, so merging a map onto it still fails.
                "variables": {"g": {"type": "complex", "default": {"git_url": "u", "git_provider": "gitHub"}}},
                "resources": {"jobs": {"j": {"git_source": "${var.g}"}}},
                "targets": {"t": {"resources": {"jobs": {"j": {"git_source": {"git_branch": "main"}}}}}},
            }
        },
        [],
        {},
        "cannot merge string with map",
    ),
    (
        "bad-mode",
        {"config.json": {"targets": {"t": {"mode": "staging"}}}},
        [],
        {},
        "unsupported value 'staging' specified for 'mode'",
    ),
    (
        "production-root-path",
        {"config.json": {"resources": {"jobs": {"j": {"name": "j"}}}, "targets": {"prod": {"mode": "production"}}}},
        [],
        {},
        "target with 'mode: production' must set 'workspace.root_path'",
    ),
    (
        "deploy-wrong-type",
        {"config.json": {"deploy": {"clusters": "0101-abc"}}},
        [],
        {},
        "deploy.clusters must be a list, found string",
    ),
    ("missing-config-file", {}, [], {}, "config file"),
    (
        "interpolate-map",
        {"config.json": {"variables": {"m": {"default": {"a": 1}}, "s": {"default": "x-${var.m}"}}}},
        [],
        {},
        "cannot interpolate non-primitive value of type map into string",
    ),
    (
        "task-null",
        {"config.json": {"resources": {"jobs": {"j": {"tasks": [None]}}}}},
        [],
        {},
        "resources.jobs.j.tasks[0] must be a map, found nil",
    ),
    (
        "task-int",
        {"config.json": {"resources": {"jobs": {"j": {"tasks": [{"task_key": "a"}, 2]}}}}},
        [],
        {},
        "resources.jobs.j.tasks[1] must be a map, found int",
    ),
    (
        "job-cluster-string",
        {"config.json": {"resources": {"jobs": {"j": {"job_clusters": ["c"]}}}}},
        [],
        {},
        "resources.jobs.j.job_clusters[0] must be a map, found string",
    ),
    (
        "parameter-list",
        {"config.json": {"resources": {"jobs": {"j": {"parameters": [[1]]}}}}},
        [],
        {},
        "resources.jobs.j.parameters[0] must be a map, found sequence",
    ),
    (
        "pipeline-cluster-null",
        {"config.json": {"resources": {"pipelines": {"p": {"clusters": [None]}}}}},
        [],
        {},
        "resources.pipelines.p.clusters[0] must be a map, found nil",
    ),
    (
        "grant-string",
        {"config.json": {"resources": {"schemas": {"s": {"grants": ["all"]}}}}},
        [],
        {},
        "resources.schemas.s.grants[0] must be a map, found string",
    ),
    (
        "json-nan",
        {"config.json": '{"bundle": {"name": "x", "n": NaN}}'},
        [],
        {},
        "config.json: invalid JSON: NaN is not a number JSON allows",
    ),
    (
        "json-infinity",
        {"config.json": '{"presets": {"jobs_max_concurrent_runs": -Infinity}}'},
        [],
        {},
        "invalid JSON: -Infinity is not a number JSON allows",
    ),
    ("json-overflow", {"config.json": '{"bundle": {"n": 1e400}}'}, [], {}, "invalid JSON: 1e400 is too large"),
    (
        "yaml-nan-in-include",
        {"config.json": {"include": ["extra.yml"]}, "extra.yml": "bundle:\n  n: [1, .nan]\n"},
        [],
        {},
        "extra.yml: bundle.n[1] is nan, which is not a finite number",
    ),
    (
        "yaml-inf",
        {"databricks.yml": "presets:\n  jobs_max_concurrent_runs: .inf\n"},
        [],
        {},
        "presets.jobs_max_concurrent_runs is inf, which is not a finite number",
    ),
    (
        "overrides-file-nan",
        {"config.json": {"variables": {"v": {}}}, ".databricks/bundle/default/variable-overrides.json": '{"v": NaN}'},
        [],
        {},
        "failed to parse variables file",
    ),
    (
        "json-3000-levels",
        {"config.json": '{"bundle": {"x": ' + "[" * 3000 + "]" * 3000 + "}}"},
        [],
        {},
        "config.json: invalid JSON: nested too deeply",
    ),
    (
        "json-200-levels",
        {"config.json": '{"bundle": {"x": ' + "[" * 200 + "]" * 200 + "}}"},
        [],
        {},
        "is nested more than 100 levels deep",
    ),
    (
        "yaml-3000-levels",
        {"databricks.yml": "bundle:\n  x: " + "[" * 3000 + "]" * 3000 + "\n"},
        [],
        {},
        "databricks.yml: invalid YAML: nested too deeply",
    ),
    (
        "yaml-alias-bomb",
        {
            "databricks.yml": "bundle:\n  a0: &a0 [x, x, x, x, x, x, x, x, x]\n"
            + "".join(f"  a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 10))
        },
        [],
        {},
        "expands to more than 500000 values",
    ),
    ("yaml-self-alias", {"databricks.yml": "bundle:\n  x: &a [1, *a]\n"}, [], {}, "is nested more than 100 levels"),
    (
        "tasks-string",
        {"config.json": {"resources": {"jobs": {"j": {"tasks": "x"}}}}},
        [],
        {},
        "resources.jobs.j.tasks must be a sequence, found string",
    ),
    (
        "tasks-element-in-target",
        {"config.json": {"targets": {"t": {"resources": {"jobs": {"j": {"tasks": [5]}}}}}}},
        [],
        {},
        "targets.t.resources.jobs.j.tasks[0] must be a map, found int",
    ),
    ("permissions-int", {"config.json": {"permissions": [5]}}, [], {}, "permissions[0] must be a map, found int"),
    ("presets-tags-string", {"config.json": {"presets": {"tags": "x"}}}, [], {}, "presets.tags must be a map"),
    (
        "presets-name-prefix-int",
        {"config.json": {"presets": {"name_prefix": 5}}},
        [],
        {},
        "presets.name_prefix must be a string, found int",
    ),
    (
        "artifact-files-string",
        {"config.json": {"artifacts": {"a": {"files": "x"}}}},
        [],
        {},
        "artifacts.a.files must be a sequence, found string",
    ),
    (
        "job-permissions-string",
        {"config.json": {"resources": {"jobs": {"j": {"permissions": ["x"]}}}}},
        [],
        {},
        "resources.jobs.j.permissions[0] must be a map, found string",
    ),
    (
        "task-libraries-map",
        {"config.json": {"resources": {"jobs": {"j": {"tasks": [{"task_key": "a", "libraries": {"whl": "x"}}]}}}}},
        [],
        {},
        "resources.jobs.j.tasks[0].libraries must be a sequence, found map",
    ),
    # Empty root files used to validate OK (and read_config.py exported 14 empty-ish variables for 'default').
    ("empty-json", {"config.json": ""}, [], {}, 'config.json is empty: it holds no settings (write at least {"bundle"'),
    ("whitespace-json", {"config.json": " \n\t\r\n"}, [], {}, "config.json is empty"),
    ("null-json", {"config.json": "null\n"}, [], {}, "config.json is empty"),
    (
        "comments-only-yaml",
        {"databricks.yml": "# nothing yet\n\n"},
        [],
        {},
        "databricks.yml is empty: it holds no settings (write at least bundle: {name: <name>}",
    ),
]


def write(folder: Path, files: dict) -> None:
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")


@pytest.mark.parametrize("name, files, argv, env, expected", CASES, ids=[case[0] for case in CASES])
def test_malformed_config_is_one_line_error(tmp_path, name, files, argv, env, expected):
    write(tmp_path, files)
    config_arg = tmp_path / "config.json" if name == "missing-config-file" else tmp_path
    result = run_script(
        "validate_config.py", "--config", config_arg, "--current-user", USER, *argv, env=script_env(**env), cwd=tmp_path
    )
    line = assert_one_line_error(result, code=2, contains=expected)
    assert result.stdout == "", "nothing is printed to stdout on a config error"
    assert len(line) < 600


def test_read_config_reports_the_same_errors(tmp_path):
    write(tmp_path, {"config.json": {"targets": {"dev": {}, "prod": {}}}})
    result = run_script("read_config.py", "--config", tmp_path, "-t", "qa", env=script_env(TF_BUILD="True"))
    assert_one_line_error(result, code=2, contains="qa: no such target. Available targets: dev, prod")
    assert "##vso[" not in result.stdout


def test_read_config_refuses_an_empty_config_before_exporting_anything(tmp_path):
    for content in ("", "\n  \n"):
        (tmp_path / "config.json").write_text(content, encoding="utf-8")
        result = run_script(
            "read_config.py",
            "--config",
            tmp_path / "config.json",
            "--current-user",
            USER,
            env=script_env(TF_BUILD="True"),
        )
        assert_one_line_error(result, code=2, contains=f"{tmp_path / 'config.json'} is empty")
        assert "##vso[" not in result.stdout and result.stdout == ""


def test_an_empty_include_is_still_only_an_empty_include(tmp_path):
    write(tmp_path, {"config.json": {"bundle": {"name": "b"}, "include": ["extra.yml"]}, "extra.yml": ""})
    result = run_script("validate_config.py", "--config", tmp_path, "--current-user", USER)
    assert result.returncode == 0, result.stderr
    assert "Name: b" in result.stdout


def test_usage_errors_are_one_line(tmp_path):
    result = run_script("validate_config.py", "--output", "xml")
    assert_one_line_error(result, code=2, contains="--output")


def test_json_output_never_holds_nan():
    from cicdkit import config

    with pytest.raises(ValueError):
        config.to_json({"n": float("nan")})
