"""Unit tests of cicdkit/jobs_deploy.py's pure decisions: identity, normalised settings and their diff, reference
order and cycles, reference substitution, wheel resolution, permissions."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from cicdkit import jobs_deploy
from cicdkit.errors import ConfigError


def config(jobs: dict, **top) -> SimpleNamespace:
    return SimpleNamespace(tree={"bundle": {"name": "app"}, "resources": {"jobs": jobs}, **top}, target="dev")


def desired(jobs: dict, tmp_path: Path, **top) -> dict:
    return jobs_deploy.desired_jobs(config(jobs, **top), wheels_dir=tmp_path, libraries_path="/Volumes/c/s/v/libs")


def test_identity_tags_and_key_of():
    ident = jobs_deploy.Identity("app", "dev")
    tags = ident.tags("load")
    assert tags == {"cicd-bundle": "app", "cicd-target": "dev", "cicd-job-key": "load"}
    assert ident.key_of({"tags": {**tags, "other": "x"}}) == "load"
    assert ident.key_of({"tags": {**tags, "cicd-target": "prod"}}) is None
    assert ident.key_of({"name": "load"}) is None  # the name never makes a job ours


def test_service_defaults_and_key_order_do_not_count_as_changes():
    sent = {
        "name": "j",
        "tasks": [{"task_key": "b", "notebook_task": {"notebook_path": "/x"}}, {"task_key": "a", "depends_on": []}],
        "email_notifications": {},
    }
    stored = {
        "name": "j",
        "format": "MULTI_TASK",
        "max_concurrent_runs": 1,
        "timeout_seconds": 0,
        "email_notifications": {},
        "tasks": [
            {"task_key": "a", "run_if": "ALL_SUCCESS", "timeout_seconds": 0},
            {"task_key": "b", "notebook_task": {"notebook_path": "/x", "source": "WORKSPACE"}, "timeout_seconds": 0.0},
        ],
    }
    assert jobs_deploy.diff(jobs_deploy.normalise(stored), jobs_deploy.normalise(sent)) == []


def test_diff_names_the_changed_paths_by_key():
    old = jobs_deploy.normalise({"tasks": [{"task_key": "r", "notebook_task": {"notebook_path": "/a"}}], "tags": {}})
    new = jobs_deploy.normalise(
        {"tasks": [{"task_key": "r", "notebook_task": {"notebook_path": "/b"}}], "max_concurrent_runs": 2}
    )
    assert jobs_deploy.diff(old, new) == ["max_concurrent_runs", "tasks[r].notebook_task.notebook_path"]
    assert jobs_deploy.diff(jobs_deploy.normalise({"run_as": {"user_name": "u"}}, keep_run_as=False), {}) == []


def test_references_order_jobs_and_cycles_are_errors(tmp_path):
    ref = lambda key: {"tasks": [{"task_key": "t", "run_job_task": {"job_id": f"${{resources.jobs.{key}.id}}"}}]}  # noqa: E731
    jobs = desired({"c": ref("b"), "b": ref("a"), "a": {"name": "a"}}, tmp_path)
    assert jobs_deploy.deploy_order(jobs) == ["a", "b", "c"]
    with pytest.raises(ConfigError, match="cycle: x -> y -> x"):
        jobs_deploy.deploy_order(desired({"x": ref("y"), "y": ref("x")}, tmp_path))
    with pytest.raises(ConfigError, match=r"job x references \$\{resources.jobs.nope.id\}"):
        desired({"x": ref("nope")}, tmp_path)


def test_substitute_whole_and_embedded_references():
    value = {"job_id": "${resources.jobs.a.id}", "text": "see ${resources.jobs.a.id} and ${resources.jobs.b.id}"}
    assert jobs_deploy.substitute(value, {"a": 7, "b": None}) == {"job_id": 7, "text": "see 7 and <id of b>"}


def test_wheels_resolve_to_one_uploaded_file(tmp_path):
    (tmp_path / "package1-1.0-py3-none-any.whl").write_bytes(b"")
    (tmp_path / "package2-1.0-py3-none-any.whl").write_bytes(b"")
    libraries = [{"whl": "../dist/package1-*.whl"}, {"whl": "/Volumes/c/s/v/kept.whl"}, {"pypi": {"package": "x"}}]
    jobs = desired({"j": {"tasks": [{"task_key": "t", "libraries": libraries}]}}, tmp_path)
    assert jobs["j"].settings["tasks"][0]["libraries"] == [
        {"whl": "/Volumes/c/s/v/libs/package1-1.0-py3-none-any.whl"},
        {"whl": "/Volumes/c/s/v/kept.whl"},
        {"pypi": {"package": "x"}},
    ]
    with pytest.raises(ConfigError, match=r"job j task t: library whl '\*.whl' matches 2 wheels"):
        desired({"j": {"tasks": [{"task_key": "t", "libraries": [{"whl": "*.whl"}]}]}}, tmp_path)
    with pytest.raises(ConfigError, match="deploy.libraries_path is not set"):
        jobs_deploy.desired_jobs(
            config({"j": {"tasks": [{"task_key": "t", "libraries": [{"whl": "a.whl"}]}]}}),
            wheels_dir=tmp_path,
            libraries_path=None,
        )


def test_permissions_merge_top_level_and_job_levels_and_compare_without_the_owner(tmp_path):
    jobs = desired(
        {"j": {"permissions": [{"level": "IS_OWNER", "service_principal_name": "sp"}]}, "k": {}},
        tmp_path,
        permissions=[{"level": "CAN_RUN", "group_name": "g"}],
    )
    assert jobs["j"].acl == (("group_name", "g", "CAN_MANAGE_RUN"), ("service_principal_name", "sp", "IS_OWNER"))
    assert "permissions" not in jobs["j"].settings
    current = (("group_name", "g", "CAN_MANAGE_RUN"), ("user_name", "me", "IS_OWNER"))
    assert not jobs_deploy.acl_differs(current, jobs["k"].acl)  # the owner counts only when the config names one
    assert jobs_deploy.acl_differs(current, jobs["j"].acl)
    assert desired({"n": {}}, tmp_path)["n"].acl is None  # no permissions in the config: not managed
    with pytest.raises(ConfigError, match="job n: permission"):
        desired({"n": {"permissions": [{"level": "CAN_FLY", "user_name": "u"}]}}, tmp_path)
