"""The 14 reference cases of tests/data/conformance/config-cases.json and the project's own type cases of
config-type-cases.json, each run through validate_config.py as a
subprocess the way a pipeline runs it, and matched with the documented rules (subset objects, equal-length
arrays, typed scalars, zero values matching missing keys)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from helpers import DATA, run_script, script_env

# The shared reference cases, then the project's own cases for types (config-type-cases.json, same format).
CASES = [
    case
    for name in ("config-cases.json", "config-type-cases.json")
    for case in json.loads((DATA / "conformance" / name).read_text(encoding="utf-8"))["cases"]
]
MISSING = object()


def is_zero(value: Any) -> bool:
    return value is False or value == "" or value == [] or value == {} or (type(value) in (int, float) and value == 0)


def mismatch(expected: Any, actual: Any, where: str = "") -> str | None:
    """None when `actual` matches `expected` under the case-file rules, else where and why not."""
    if actual is MISSING:
        return None if is_zero(expected) else f"{where}: missing, expected {expected!r}"
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return f"{where}: expected a map, got {actual!r}"
        for key, value in expected.items():
            problem = mismatch(value, actual.get(key, MISSING), f"{where}.{key}" if where else key)
            if problem:
                return problem
        return None
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return f"{where}: expected {len(expected)} elements, got {actual!r}"
        for index, (want, have) in enumerate(zip(expected, actual)):
            problem = mismatch(want, have, f"{where}[{index}]")
            if problem:
                return problem
        return None
    if type(expected) is not type(actual) or expected != actual:
        return f"{where}: expected {expected!r} ({type(expected).__name__}), got {actual!r} ({type(actual).__name__})"
    return None


def get_dotted(tree: Any, path: str) -> Any:
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        if part.startswith("["):
            index = int(part[1:-1])
            if not isinstance(tree, list) or index >= len(tree):
                return MISSING
            tree = tree[index]
        elif isinstance(tree, dict) and part in tree:
            tree = tree[part]
        else:
            return MISSING
    return tree


def write_project(case: dict, folder: Path) -> Path:
    for name, text in case["files"].items():
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return folder / case["args"].get("bundle_root", ".")


def run_case(case: dict, folder: Path):
    root = write_project(case, folder)
    args = case["args"]
    argv = ["--config", root, "--output", "json", "--current-user", args["current_user"]["userName"]]
    if args.get("target"):
        argv += ["-t", args["target"]]
    for name, value in args.get("vars", {}).items():
        argv += ["--var", f"{name}={value}"]
    return run_script("validate_config.py", *argv, env=script_env(**args.get("env", {})), cwd=folder)


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_reference_case(case: dict, tmp_path: Path) -> None:
    result = run_case(case, tmp_path)
    expect = case["expect"]
    if "error_contains" in expect:
        assert result.returncode == 2, result.stdout + result.stderr
        errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1, result.stderr
        assert expect["error_contains"] in errors[0]
        return
    assert result.returncode == 0, result.stderr
    tree = json.loads(result.stdout)
    assert "targets" not in tree and "environments" not in tree
    problem = mismatch(expect.get("resolved", {}), tree)
    assert problem is None, problem
    for path in expect.get("absent", []):
        value = get_dotted(tree, path)
        assert value is MISSING or value is None or value in ("", [], {}), f"{path} present: {value!r}"
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    for text in expect.get("warnings_contain", []):
        assert any(text in line for line in warnings), f"{text!r} not in {warnings}"
    if "synced_files" in expect:
        from cicdkit import config

        loaded = config.load(
            write_project(case, tmp_path),
            target=case["args"].get("target"),
            current_user=case["args"]["current_user"]["userName"],
        )
        assert loaded.sync_files()[0] == expect["synced_files"]


def test_matching_rules_are_strict_where_the_case_file_says_so() -> None:
    assert mismatch({"a": 2}, {"a": "2"}) is not None
    assert mismatch({"a": True}, {"a": 1}) is not None
    assert mismatch({"a": [1]}, {"a": [1, 2]}) is not None
    assert mismatch({"a": {"b": False, "c": 0, "d": "", "e": [], "f": {}}}, {"a": {}}) is None
    assert mismatch({"a": {"b": 1}}, {"a": {"b": 1, "extra": 2}}) is None
    assert mismatch({"a": 1}, {}) is not None
