"""deploy_notebooks.py end to end against the local workspace, driven as a subprocess like a pipeline step."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from deploy_fixtures import (
    KNOWN_TOKEN,
    NO_CONFIG,
    PY_HEADER,
    api_requests,
    count,
    make_notebooks,
    manifest_of,
    reset_log,
    sdk,
    set_faults,
    write_notebook,
    write_requests,
)
from helpers import SCRIPTS, assert_one_line_error, run_script, script_env

TARGET = "/Workspace/Shared/app/notebooks"


def deploy(env, *args):
    result = run_script("deploy_notebooks.py", *map(str, args), env=env, cwd=NO_CONFIG, timeout=120)
    return result


def ok(result) -> None:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"


def exported(workspace, path: str) -> bytes:
    return sdk(workspace).workspace.download(path).read()


@pytest.fixture
def source(tmp_path: Path) -> Path:
    root = tmp_path / "notebooks"
    write_notebook(root, "etl/load.py", "df = 1\n")
    write_notebook(root, "etl/sub/transform.py", "x = 2\n")
    write_notebook(root, "etl/query.sql", "select 1\n", header="-- Databricks notebook source\n")
    write_notebook(root, "reports/report.scala", "println(1)\n", header="// Databricks notebook source\n")
    write_notebook(root, "reports/plot.r", "x <- 1\n")
    (root / "etl" / "helpers.py").write_text("def helper():\n    return 1\n")
    (root / "README.md").write_text("# notebooks\n")
    (root / "explore.ipynb").write_text(
        json.dumps(
            {
                "cells": [{"cell_type": "code", "source": "print(42)", "metadata": {}, "outputs": []}],
                "metadata": {},
                "nbformat": 4,
                "nbformat_minor": 5,
            }
        )
    )
    return root


EXPECTED = {
    "etl/load": ("NOTEBOOK", "etl/load.py"),
    "etl/sub/transform": ("NOTEBOOK", "etl/sub/transform.py"),
    "etl/query": ("NOTEBOOK", "etl/query.sql"),
    "reports/report": ("NOTEBOOK", "reports/report.scala"),
    "reports/plot": ("NOTEBOOK", "reports/plot.r"),
    "etl/helpers.py": ("FILE", "etl/helpers.py"),
    "README.md": ("FILE", "README.md"),
    "explore": ("NOTEBOOK", None),
}


def test_first_deploy_uploads_everything_second_makes_zero_writes(deploy_workspace, deploy_env, source) -> None:
    first = deploy(deploy_env, source, TARGET)
    ok(first)
    calls = api_requests(deploy_workspace)  # the deploy's, before this test's own reads
    w = sdk(deploy_workspace)
    for relative, (object_type, local) in EXPECTED.items():
        status = w.workspace.get_status(f"{TARGET}/{relative}")
        assert status.object_type.value == object_type, relative
        if local is not None:
            assert exported(deploy_workspace, f"{TARGET}/{relative}") == (source / local).read_bytes(), relative
    assert "print(42)" in exported(deploy_workspace, f"{TARGET}/explore").decode()
    assert count(deploy_workspace, "POST", "/workspace/import") == len(EXPECTED) + 1  # + the manifest
    # One mkdirs per deepest folder (it creates TARGET and etl), and no folder is read again after the writes.
    mkdirs = [r for r in calls if r.path.endswith("/workspace/mkdirs")]
    assert len(mkdirs) == 2 and all(r.status == 200 for r in mkdirs)  # etl/sub and reports
    first_write = next(i for i, r in enumerate(calls) if r.method == "POST")
    assert not [r for r in calls[first_write:] if r.method == "GET"]
    manifest = manifest_of(deploy_workspace, TARGET)
    assert sorted(manifest["objects"]) == sorted(EXPECTED)
    assert all(entry.get("unlisted") is True for entry in manifest["objects"].values())
    assert "upload etl/load (no manifest)" in first.stdout
    assert "fresh deploy" in first.stdout

    reset_log(deploy_workspace)
    second = deploy(deploy_env, source, TARGET)
    ok(second)
    assert write_requests(deploy_workspace) == []
    assert "nothing to change" in second.stdout
    lists = count(deploy_workspace, "GET", "/workspace/list")
    assert lists == 4  # one per folder of the deployment: ., etl, etl/sub, reports


def test_dry_run_plans_but_writes_nothing(deploy_workspace, deploy_env, source) -> None:
    result = deploy(deploy_env, source, TARGET, "--dry-run")
    ok(result)
    assert "would change" in result.stdout and "etl/load" in result.stdout
    assert write_requests(deploy_workspace) == []


def test_ui_edit_and_ui_delete_are_detected_and_repaired(deploy_workspace, deploy_env, source) -> None:
    ok(deploy(deploy_env, source, TARGET))
    w = sdk(deploy_workspace)
    from databricks.sdk.service.workspace import ImportFormat, Language

    w.workspace.upload(
        f"{TARGET}/etl/load",
        PY_HEADER.encode() + b"edited in the UI\n",
        format=ImportFormat.SOURCE,
        language=Language.PYTHON,
        overwrite=True,
    )
    w.workspace.delete(f"{TARGET}/reports/report")
    reset_log(deploy_workspace)

    result = deploy(deploy_env, source, TARGET)
    ok(result)
    assert "upload etl/load (changed in workspace)" in result.stdout
    assert "upload reports/report (missing in workspace)" in result.stdout
    assert exported(deploy_workspace, f"{TARGET}/etl/load") == (source / "etl/load.py").read_bytes()
    assert exported(deploy_workspace, f"{TARGET}/reports/report") == (source / "reports/report.scala").read_bytes()
    assert count(deploy_workspace, "POST", "/workspace/import") == 3  # two repairs + the manifest

    reset_log(deploy_workspace)
    ok(deploy(deploy_env, source, TARGET))
    assert write_requests(deploy_workspace) == []


def test_local_change_uploads_only_that_object(deploy_workspace, deploy_env, source) -> None:
    ok(deploy(deploy_env, source, TARGET))
    write_notebook(source, "etl/sub/transform.py", "x = 3\n")
    reset_log(deploy_workspace)
    result = deploy(deploy_env, source, TARGET)
    ok(result)
    assert "upload etl/sub/transform (changed locally)" in result.stdout
    assert count(deploy_workspace, "POST", "/workspace/import") == 2
    assert exported(deploy_workspace, f"{TARGET}/etl/sub/transform").endswith(b"x = 3\n")


def test_full_reuploads_everything(deploy_workspace, deploy_env, source) -> None:
    ok(deploy(deploy_env, source, TARGET))
    reset_log(deploy_workspace)
    ok(deploy(deploy_env, source, TARGET, "--full"))
    assert count(deploy_workspace, "POST", "/workspace/import") >= len(EXPECTED)


def test_prune_removes_only_what_the_deployment_created(deploy_workspace, deploy_env, source) -> None:
    ok(deploy(deploy_env, source, TARGET))
    w = sdk(deploy_workspace)
    from databricks.sdk.service.workspace import ImportFormat, Language

    w.workspace.upload(
        f"{TARGET}/etl/colleague", PY_HEADER.encode() + b"mine\n", format=ImportFormat.SOURCE, language=Language.PYTHON
    )
    w.workspace.mkdirs(f"{TARGET}/scratch")
    (source / "etl" / "load.py").unlink()
    for name in ("report.scala", "plot.r"):
        (source / "reports" / name).unlink()
    (source / "reports").rmdir()

    kept = deploy(deploy_env, source, TARGET)
    ok(kept)
    assert "use --prune" in kept.stdout
    assert w.workspace.get_status(f"{TARGET}/etl/load").object_type.value == "NOTEBOOK"

    reset_log(deploy_workspace)
    pruned = deploy(deploy_env, source, TARGET, "--prune")
    ok(pruned)
    names = {o.path.rsplit("/", 1)[1] for o in w.workspace.list(f"{TARGET}/etl")}
    assert names == {"colleague", "helpers.py", "query", "sub"}
    top = {o.path.rsplit("/", 1)[1] for o in w.workspace.list(TARGET)}
    assert top == {".deploy-manifest.json", "etl", "README.md", "explore", "scratch"}  # reports/ was ours: gone
    deletes = count(deploy_workspace, "POST", "/workspace/delete")
    assert deletes == 4  # etl/load, reports/report, reports/plot, reports/

    reset_log(deploy_workspace)
    ok(deploy(deploy_env, source, TARGET, "--prune"))
    assert write_requests(deploy_workspace) == []


def test_conflicting_foreign_object_stops_before_any_write(deploy_workspace, deploy_env, source) -> None:
    w = sdk(deploy_workspace)
    w.workspace.mkdirs(f"{TARGET}/etl/load")  # a folder where the notebook should go
    reset_log(deploy_workspace)
    result = deploy(deploy_env, source, TARGET)
    assert_one_line_error(result, code=1, contains="in the way")
    assert write_requests(deploy_workspace) == []


def test_interrupted_deploy_is_completed_by_the_next_run(deploy_workspace, deploy_env, tmp_path) -> None:
    """Kill the step mid-way (as a cancelled pipeline would) while imports fail, then deploy again."""
    source = tmp_path / "src"
    made = make_notebooks(source, 60, 6)
    ok(deploy(deploy_env, source, TARGET))
    for path in made.values():
        path.write_text(path.read_text() + "# v2\n")
    set_faults(deploy_workspace, "path=*/workspace/import,fault=500,skip=20")
    reset_log(deploy_workspace)
    process = subprocess.Popen(
        [sys.executable, str(SCRIPTS / "deploy_notebooks.py"), str(source), TARGET, "--concurrency", "4"],
        env=deploy_env,
        cwd=NO_CONFIG,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            faults = [
                r for r in api_requests(deploy_workspace) if getattr(r, "fault", None) or getattr(r, "status", 0) == 500
            ]
            if len(faults) >= 4:
                break
            time.sleep(0.05)
        assert process.poll() is None, "the step ended before it could be interrupted"
    finally:
        process.kill()
        process.communicate(timeout=30)
    set_faults(deploy_workspace, "")
    half_done = sum(exported(deploy_workspace, f"{TARGET}/{relative}").endswith(b"# v2\n") for relative in made)
    assert 0 < half_done < len(made)

    result = deploy(deploy_env, source, TARGET)
    ok(result)
    for relative, path in made.items():
        assert exported(deploy_workspace, f"{TARGET}/{relative}") == path.read_bytes(), relative
    reset_log(deploy_workspace)
    ok(deploy(deploy_env, source, TARGET))
    assert write_requests(deploy_workspace) == []


def test_failed_deploy_raises_and_keeps_old_manifest(deploy_workspace, deploy_env, tmp_path) -> None:
    """500s beyond the retry budget: the step fails (exit 1), the manifest stays old, the next run repairs."""
    from cicdkit import dbclient, errors, workspace_sync

    source = tmp_path / "src"
    made = make_notebooks(source, 30, 3)
    ok(deploy(deploy_env, source, TARGET))
    before = manifest_of(deploy_workspace, TARGET)
    for path in made.values():
        path.write_text(path.read_text() + "# v2\n")
    set_faults(deploy_workspace, "path=*/workspace/import,fault=500,skip=10")
    client = dbclient.connect(
        host=deploy_workspace.url,
        auth="pat",
        environ={"DATABRICKS_TOKEN": KNOWN_TOKEN},
        retry_budget_seconds=0.5,
        concurrency=4,
        backoff=(0.05, 0.1),
    )
    with client, pytest.raises(errors.OperationFailed) as raised:
        workspace_sync.deploy(client, workspace_sync.scan(source), TARGET, concurrency=4)
    assert "500" in str(raised.value) and KNOWN_TOKEN not in str(raised.value)
    assert manifest_of(deploy_workspace, TARGET) == before
    set_faults(deploy_workspace, "")
    ok(deploy(deploy_env, source, TARGET))
    for relative, path in made.items():
        assert exported(deploy_workspace, f"{TARGET}/{relative}") == path.read_bytes(), relative


@pytest.mark.slow
def test_300_notebooks_under_throttling_and_faults_end_exactly_right(deploy_workspace, deploy_env, tmp_path) -> None:
    source = tmp_path / "src"
    made = make_notebooks(source, 300, 12)
    (source / "folder_000" / "data.csv").write_text("a,b\n1,2\n")
    set_faults(
        deploy_workspace,
        "path=/api/*,fault=429,rate=0.1,retry_after=1; path=/api/*,fault=503,rate=0.05,retry_after=none; "
        "path=/api/*,fault=reset,rate=0.02",
    )
    # No fixed caps (deploy.rate_limits 0 = none): the adaptive window alone meets the injected 429s.
    project = tmp_path / "project"
    project.mkdir()
    (project / "config.json").write_text(
        json.dumps({"bundle": {"name": "t"}, "deploy": {"rate_limits": {"workspace": 0, "workspace/import": 0}}})
    )
    result = run_script(
        "deploy_notebooks.py", source, TARGET, "--concurrency", "16", env=deploy_env, cwd=project, timeout=180
    )
    ok(result)
    faults = [r for r in api_requests(deploy_workspace) if getattr(r, "fault", None)]
    assert len(faults) > 20, "the faults were not injected"
    assert "retries" in result.stdout and "(0 retries)" not in result.stdout
    set_faults(deploy_workspace, "")
    w = sdk(deploy_workspace)
    for relative, path in made.items():
        assert w.workspace.download(f"{TARGET}/{relative}").read() == path.read_bytes(), relative
    assert w.workspace.download(f"{TARGET}/folder_000/data.csv").read() == b"a,b\n1,2\n"
    listed = {o.path for folder in range(12) for o in w.workspace.list(f"{TARGET}/folder_{folder:03d}")}
    assert len(listed) == 301
    reset_log(deploy_workspace)
    ok(deploy(deploy_env, source, TARGET))
    assert write_requests(deploy_workspace) == []


# --- bad input and secrets -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target, message",
    [
        ("/Repos/me/app", "Repos"),
        ("/Workspace/Shared/../Users/x", "'..'"),
        ("/Volumes/main/default/v", "outside"),
        ("/Shared", "root folder"),
        ("Shared/app", "absolute"),
    ],
)
def test_bad_workspace_dir_is_refused_without_calls(deploy_workspace, deploy_env, source, target, message) -> None:
    result = deploy(deploy_env, source, target)
    assert_one_line_error(result, code=2, contains=message)
    assert api_requests(deploy_workspace) == []


def test_missing_source_and_conflicting_names(deploy_workspace, deploy_env, tmp_path) -> None:
    assert_one_line_error(deploy(deploy_env, tmp_path / "nope", TARGET), code=2, contains="does not exist")
    write_notebook(tmp_path / "src", "a.py")
    write_notebook(tmp_path / "src", "a.sql", header="-- Databricks notebook source\n")
    assert_one_line_error(deploy(deploy_env, tmp_path / "src", TARGET), code=2, contains="would both be deployed")
    assert api_requests(deploy_workspace) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a mode-000 file (test_workspace_sync covers the mapping)")
def test_unreadable_source_file_is_refused_without_calls(deploy_workspace, deploy_env, source) -> None:
    broken = source / "etl" / "broken.py"
    broken.write_text("x = 1\n")
    broken.chmod(0)
    assert_one_line_error(deploy(deploy_env, source, TARGET), code=2, contains="cannot read")
    assert api_requests(deploy_workspace) == []


def workspace_paths(workspace, folder: str = TARGET) -> set[str]:
    """Every object below `folder`, relative to it (recursive listing through the SDK, which drops /Workspace)."""
    prefix = folder.removeprefix("/Workspace") + "/"
    return {
        item.path.removeprefix("/Workspace").removeprefix(prefix)
        for item in sdk(workspace).workspace.list(folder, recursive=True)
    }


def test_symlink_to_a_file_outside_src_is_refused_before_any_call(
    deploy_workspace, deploy_env, source, tmp_path
) -> None:
    ok(deploy(deploy_env, source, TARGET))
    before = workspace_paths(deploy_workspace)
    secret = tmp_path / "passwd"
    secret.write_text("root:x:0:0:root:/root:/bin/bash\n")
    (source / "notes").mkdir()
    (source / "notes" / "passwd.txt").symlink_to(secret)
    reset_log(deploy_workspace)
    result = deploy(deploy_env, source, TARGET)
    assert_one_line_error(
        result,
        code=2,
        contains=(
            f"error: {source}/notes/passwd.txt is a symlink to {secret}, outside {source} "
            f"(replace the link with the file, or move its target inside {source})"
        ),
    )
    assert "upload" not in result.stdout
    assert api_requests(deploy_workspace) == []  # not even a read: refused while scanning SRC_DIR
    assert workspace_paths(deploy_workspace) == before


def test_symlinked_folder_outside_src_is_refused_and_relative_src_is_named_as_given(
    deploy_workspace, deploy_env, source, tmp_path
) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "shadow.py").write_text("secret = 1\n")
    (source / "etl" / "ext").symlink_to(tmp_path / "etc", target_is_directory=True)
    result = run_script("deploy_notebooks.py", "notebooks", TARGET, env=deploy_env, cwd=tmp_path, timeout=120)
    assert_one_line_error(
        result, code=2, contains=f"error: notebooks/etl/ext is a symlink to {tmp_path}/etc, outside notebooks ("
    )
    assert api_requests(deploy_workspace) == []


def test_symlink_inside_src_deploys_its_targets_content_and_linked_folders_are_not_entered(
    deploy_workspace, deploy_env, source
) -> None:
    (source / "reports" / "load_again.py").symlink_to("../etl/load.py")
    (source / "reports" / "etl").symlink_to("../etl", target_is_directory=True)
    ok(deploy(deploy_env, source, TARGET))
    assert exported(deploy_workspace, f"{TARGET}/reports/load_again") == exported(
        deploy_workspace, f"{TARGET}/etl/load"
    )
    assert sdk(deploy_workspace).workspace.get_status(f"{TARGET}/reports/load_again").object_type.value == "NOTEBOOK"
    paths = workspace_paths(deploy_workspace)
    assert "etl/load" in paths and "reports/load_again" in paths
    assert not any(path.startswith("reports/etl") for path in paths)


@pytest.mark.parametrize(
    "links, message",
    [
        ({"etl/a.py": "b.py", "etl/b.py": "a.py"}, "etl/a.py is a symlink loop (NOTEBOOKS/etl/a.py -> b.py -> a.py)"),
        ({"etl/up": ".."}, "etl/up is a symlink to NOTEBOOKS, a folder that contains the link (a loop)"),
        ({"etl/gone.py": "missing.py"}, "etl/gone.py is a symlink to NOTEBOOKS/etl/missing.py, which does not exist"),
    ],
    ids=["loop", "folder-loop", "dangling"],
)
def test_symlink_loops_and_dangling_links_are_one_line_errors_without_calls(
    deploy_workspace, deploy_env, source, links, message
) -> None:
    for link, target in links.items():
        (source / link).symlink_to(target)
    result = deploy(deploy_env, source, TARGET)
    assert_one_line_error(result, code=2, contains=f"error: {source}/{message.replace('NOTEBOOKS', str(source))}")
    assert api_requests(deploy_workspace) == []


def test_missing_workspace_dir_and_usage(deploy_env, source) -> None:
    assert_one_line_error(deploy(deploy_env, source), code=2, contains="WORKSPACE_DIR")
    assert_one_line_error(deploy(deploy_env, source, TARGET, "--concurrency", "0"), code=2, contains="concurrency")


def test_missing_token_is_a_one_line_error(deploy_workspace, source) -> None:
    env = script_env(DATABRICKS_HOST=deploy_workspace.url, DATABRICKS_AUTH_TYPE="pat")
    result = deploy(env, source, TARGET)
    assert_one_line_error(result, code=2, contains="DATABRICKS_TOKEN")
    assert write_requests(deploy_workspace) == []


def test_wrong_host_fails_fast_with_exit_1(source) -> None:
    env = script_env(DATABRICKS_HOST="http://127.0.0.1:9", DATABRICKS_TOKEN=KNOWN_TOKEN)
    result = deploy(env, source, TARGET)
    line = assert_one_line_error(result, code=1, contains="127.0.0.1:9")
    assert KNOWN_TOKEN not in result.stdout + result.stderr + line


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_local_workspace_not_running_or_wrong_token_says_how_to_start_it_and_which_token(source, tmp_path) -> None:
    """Against a loopback host the hints are about the local workspace, and following them literally works."""
    port = _free_port()
    host = f"http://127.0.0.1:{port}"
    wrong = "dapi-wrong-token-5c4b3a29"
    env = script_env(DATABRICKS_HOST=host, DATABRICKS_TOKEN=wrong, LOCAL_WORKSPACE_TOKEN=None)
    # Not running: before, the hint was only "check --host / DATABRICKS_HOST and the network".
    line = assert_one_line_error(deploy(env, source, TARGET), code=1, contains="is the local workspace running?")
    start = re.search(r"start it with: python (ci_cd_scripts/local_workspace\.py [^(]*?) \(", line)
    assert start and start.group(1) == f"ci_cd_scripts/local_workspace.py --port {port}", line
    command = start.group(1).split()
    workspace = subprocess.Popen(
        [sys.executable, *command],
        cwd=SCRIPTS.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=script_env(LOCAL_WORKSPACE_TOKEN=None),
    )
    try:
        assert workspace.stdout.readline().strip() == host, "the hinted command starts it at the same URL"
        # Wrong token (403) and no token: both name the token the local workspace takes by default.
        denied = assert_one_line_error(
            deploy(env, source, TARGET), code=1, contains="the local workspace takes DATABRICKS_TOKEN="
        )
        missing = assert_one_line_error(
            deploy(script_env(DATABRICKS_HOST=host, DATABRICKS_AUTH_TYPE="pat"), source, TARGET),
            code=2,
            contains="the local workspace takes DATABRICKS_TOKEN=",
        )
        assert wrong not in denied
        token = re.search(r"DATABRICKS_TOKEN=(\S+)", denied).group(1)
        assert token == re.search(r"DATABRICKS_TOKEN=(\S+)", missing).group(1)
        ok(deploy(dict(env, DATABRICKS_TOKEN=token), source, TARGET))
    finally:
        workspace.terminate()
        workspace.wait(timeout=30)


def test_token_never_leaks_in_output_or_written_files(deploy_workspace, deploy_env, source, tmp_path) -> None:
    env = dict(deploy_env, TF_BUILD="True")
    outputs = []
    outputs.append(deploy(env, source, TARGET))  # success, with the ADO summary files
    outputs.append(deploy(env, source, TARGET, "--dry-run"))
    bad_token = dict(env, DATABRICKS_TOKEN=KNOWN_TOKEN + "x")  # rejected (403) token that contains the known one
    outputs.append(deploy(bad_token, source, TARGET))
    outputs.append(deploy(dict(env, DATABRICKS_HOST="http://127.0.0.1:9"), source, TARGET))
    outputs.append(deploy(env, source, "/Repos/x/y"))
    assert outputs[0].returncode == 0 and outputs[2].returncode == 1
    for result in outputs:
        assert KNOWN_TOKEN not in result.stdout and KNOWN_TOKEN not in result.stderr
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert KNOWN_TOKEN.encode() not in path.read_bytes(), path
    assert KNOWN_TOKEN not in json.dumps(manifest_of(deploy_workspace, TARGET))
    assert os.path.isdir(tmp_path / "summary")


def test_config_supplies_target_folder_and_concurrency(deploy_workspace, deploy_env, source, tmp_path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "config.json").write_text(
        json.dumps(
            {
                "bundle": {"name": "app"},
                "deploy": {"concurrency": 2},
                "targets": {
                    "dev": {
                        "default": True,
                        "deploy": {"notebooks_path": "/Workspace/Shared/from-config/${bundle.target}"},
                    },
                    "prod": {"deploy": {"notebooks_path": "/Workspace/Shared/from-config/prod"}},
                },
            }
        )
    )
    w = sdk(deploy_workspace)
    ok(run_script("deploy_notebooks.py", source, env=deploy_env, cwd=project, timeout=120))  # ./config.json
    assert w.workspace.get_status("/Workspace/Shared/from-config/dev/etl/load").object_type.value == "NOTEBOOK"
    ok(deploy(deploy_env, source, "--config", project / "config.json", "-t", "prod"))
    assert w.workspace.get_status("/Workspace/Shared/from-config/prod/etl/load").object_type.value == "NOTEBOOK"
    ok(deploy(deploy_env, source, "/Workspace/Shared/explicit", "--config", project / "config.json"))  # flag wins
    assert w.workspace.get_status("/Workspace/Shared/explicit/etl/load").object_type.value == "NOTEBOOK"
    result = deploy(deploy_env, source, "--config", project / "config.json", "-t", "nope")
    assert_one_line_error(result, code=2, contains="nope")


def test_pipeline_output_has_progress_and_a_summary_section(deploy_workspace, deploy_env, source, tmp_path) -> None:
    env = dict(deploy_env, TF_BUILD="True")
    result = deploy(env, source, TARGET)
    ok(result)
    assert "##vso[task.setprogress value=100]" in result.stdout
    assert "##vso[task.uploadsummary]" in result.stdout
    section = (tmp_path / "summary" / "deploy_notebooks.md").read_text()
    assert "succeeded" in section and "etl/load" in section

    (tmp_path / "summary" / "deploy_notebooks.md").unlink()
    w = sdk(deploy_workspace)
    w.workspace.delete(f"{TARGET}/etl/load")
    w.workspace.mkdirs(f"{TARGET}/etl/load")
    failed = deploy(env, source, TARGET)
    assert_one_line_error(failed, code=1, contains="in the way")
    assert "failed" in (tmp_path / "summary" / "deploy_notebooks.md").read_text()


def test_corrupt_or_deleted_manifest_means_a_full_deploy_that_says_so(deploy_workspace, deploy_env, source) -> None:
    ok(deploy(deploy_env, source, TARGET))
    w = sdk(deploy_workspace)
    from databricks.sdk.service.workspace import ImportFormat

    w.workspace.upload(f"{TARGET}/.deploy-manifest.json", b"{not json", format=ImportFormat.RAW, overwrite=True)
    reset_log(deploy_workspace)
    corrupt = deploy(deploy_env, source, TARGET)
    ok(corrupt)
    assert "unreadable" in corrupt.stdout and "fresh deploy" in corrupt.stdout
    assert count(deploy_workspace, "POST", "/workspace/import") == len(EXPECTED) + 1
    assert sorted(manifest_of(deploy_workspace, TARGET)["objects"]) == sorted(EXPECTED)

    w.workspace.delete(f"{TARGET}/.deploy-manifest.json")
    missing = deploy(deploy_env, source, TARGET)
    ok(missing)
    assert "none found" in missing.stdout
    reset_log(deploy_workspace)
    ok(deploy(deploy_env, source, TARGET))
    assert write_requests(deploy_workspace) == []


# --- the step's deadline, and what a failed deploy reports ---------------------------------------------------


def timed_deploy(env, *args):
    started = time.monotonic()
    result = deploy(env, *args)
    return result, time.monotonic() - started


def test_a_workspace_failing_every_call_ends_the_deploy_at_its_timeout(deploy_workspace, deploy_env, source) -> None:
    # Before, each call retried 500s for up to 300 s and the step ran past 100 s. Now no call outlives --timeout
    # (3 s here; the margin covers interpreter start-up on a busy machine).
    set_faults(deploy_workspace, "path=/api/*,fault=500")
    result, elapsed = timed_deploy(deploy_env, source, TARGET, "--timeout", "3")
    line = assert_one_line_error(result, code=1, contains="step deadline reached (--timeout 3s)")
    assert "500" in line and KNOWN_TOKEN not in result.stdout + result.stderr
    assert elapsed < 3 + 6, elapsed
    reads = api_requests(deploy_workspace)
    assert reads and all(r.status == 500 for r in reads)
    assert len(reads) > len({(r.method, r.path, r.query) for r in reads})  # the calls were retried meanwhile
    assert "Deploy notebooks to /Workspace/Shared/app/notebooks: 0 changed, 0 unchanged, 1 failed" in result.stdout


def test_a_deploy_failing_half_way_counts_exactly_the_writes_that_landed(
    deploy_workspace, deploy_env, tmp_path
) -> None:
    # The first 5 imports land, then every import fails until --timeout: before, the summary said
    # "0 changed ... 1 failed" although those imports (and the folders) were in the workspace.
    source = tmp_path / "src"
    make_notebooks(source, 12, 3)
    set_faults(deploy_workspace, "path=*/workspace/import,fault=500,skip=5")
    result, elapsed = timed_deploy(deploy_env, source, TARGET, "--timeout", "3", "--concurrency", "4")
    assert_one_line_error(result, code=1, contains="POST /api/2.0/workspace/import")
    assert elapsed < 3 + 6, elapsed
    imported = [
        r.query for r in api_requests(deploy_workspace) if r.path.endswith("/workspace/import") and r.status == 200
    ]
    folders = [r for r in api_requests(deploy_workspace) if r.path.endswith("/workspace/mkdirs") and r.status == 200]
    assert len(imported) == 5 and len(folders) == 3  # its 3 folders; their mkdirs created WORKSPACE_DIR too
    uploads = [line for line in result.stdout.splitlines() if line.startswith("  change: upload ")]
    created = [line for line in result.stdout.splitlines() if line.startswith("  change: create folder ")]
    assert (len(uploads), len(created)) == (5, 4)
    assert f": {5 + 4} changed, 0 unchanged, 1 failed in " in result.stdout
    assert "the manifest was not updated" in result.stdout
    landed = sum(
        exported(deploy_workspace, f"{TARGET}/{relative}") == path.read_bytes()
        for relative, path in ((line.split()[2], source / (line.split()[2] + ".py")) for line in uploads)
    )
    assert landed == 5  # the summary names the notebooks that are really there
