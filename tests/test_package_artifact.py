"""package_artifact.py and the artifact module: layout, MANIFEST, reproducible bytes, verification."""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

import pytest
from helpers import SCRIPTS, assert_one_line_error, run_script

from cicdkit import artifact
from cicdkit.errors import InputError


def make_staging(root: Path) -> tuple[Path, Path]:
    """A filled staging folder and a config folder with one include; returns (staging, config.json)."""
    staging = root / "staging dir"
    (staging / "wheels").mkdir(parents=True)
    (staging / "wheels" / "package1-0.1.0-py3-none-any.whl").write_bytes(b"wheel one")
    (staging / "wheels" / "package2-0.2.0-py3-none-any.whl").write_bytes(b"wheel two")
    (staging / "init").mkdir()
    (staging / "init" / "init.sh").write_text("#!/bin/bash\nset -euo pipefail\n")
    (staging / "requirements.txt").write_text("requests>=2\n")
    (staging / "notebooks" / "package1" / "sub dir").mkdir(parents=True)
    (staging / "notebooks" / "package1" / "explore.py").write_text("# Databricks notebook source\nprint(1)\n")
    (staging / "notebooks" / "package1" / "sub dir" / "q.sql").write_text("-- Databricks notebook source\nSELECT 1\n")
    repo = root / "repo"
    (repo / "conf").mkdir(parents=True)
    config = repo / "config.json"
    config.write_text(
        json.dumps({"bundle": {"name": "demo"}, "include": ["conf/*.json"], "targets": {"dev": {"default": True}}})
    )
    (repo / "conf" / "targets.json").write_text(json.dumps({"targets": {"prod": {}}}))
    return staging, config


def names(zip_path: Path) -> list[str]:
    with zipfile.ZipFile(zip_path) as archive:
        return archive.namelist()


def test_layout_manifest_and_permissions(tmp_path):
    staging, config = make_staging(tmp_path)
    out = tmp_path / "out" / "artifact.zip"
    result = run_script("package_artifact.py", staging, out, "--config", config)
    assert result.returncode == 0, result.stderr
    listed = names(out)
    assert listed == sorted(listed)
    expected_fixed = [
        "MANIFEST.json",
        "conf/targets.json",
        "config.json",
        "init/init.sh",
        "notebooks/package1/explore.py",
        "notebooks/package1/sub dir/q.sql",
        "requirements.txt",
        "wheels/package1-0.1.0-py3-none-any.whl",
        "wheels/package2-0.2.0-py3-none-any.whl",
    ]
    assert [n for n in listed if not n.startswith("ci_cd_scripts/")] == expected_fixed
    scripts = {n for n in listed if n.startswith("ci_cd_scripts/")}
    assert {
        "ci_cd_scripts/package_artifact.py",
        "ci_cd_scripts/cicdkit/artifact.py",
        "ci_cd_scripts/cicdkit/cli.py",
        "ci_cd_scripts/cicdkit/__init__.py",
        "ci_cd_scripts/requirements.txt",
    } <= scripts
    # The CD stages run the steps and the library, never the local stand-ins of the cloud.
    assert not any(
        n.startswith("ci_cd_scripts/local_cloud/") or n.endswith(("/local_workspace.py", "/run_pipeline_locally.py"))
        for n in scripts
    )
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in scripts)

    with zipfile.ZipFile(out) as archive:
        manifest = json.loads(archive.read("MANIFEST.json"))
        assert archive.read("ci_cd_scripts/requirements.txt") == (SCRIPTS.parent / "requirements.txt").read_bytes()
        assert archive.read("conf/targets.json") == (config.parent / "conf" / "targets.json").read_bytes()
        modes = {info.filename: info.external_attr >> 16 for info in archive.infolist()}
        times = {info.date_time for info in archive.infolist()}
    assert [f["path"] for f in manifest["files"]] == [n for n in listed if n != "MANIFEST.json"]
    assert manifest["format"] == 1
    assert modes["init/init.sh"] == 0o100755 and modes["config.json"] == 0o100644
    assert times == {(1980, 1, 1, 0, 0, 0)}
    assert artifact.verify_zip(out) == []
    assert "sha256" in result.stdout


def test_same_inputs_give_identical_bytes_even_after_touching_and_moving(tmp_path):
    staging, config = make_staging(tmp_path / "a")
    first, second = tmp_path / "one.zip", tmp_path / "two.zip"
    assert run_script("package_artifact.py", staging, first, "--config", config).returncode == 0
    moved = tmp_path / "elsewhere" / "stage"
    shutil.copytree(staging, moved)
    for path in moved.rglob("*"):
        os.utime(path, (1_700_000_000, 1_700_000_000))
    (moved / "init" / "init.sh").chmod(0o600)
    assert run_script("package_artifact.py", moved, second, "--config", config).returncode == 0
    assert first.read_bytes() == second.read_bytes()
    (moved / "requirements.txt").write_text("requests>=2.1\n")
    assert run_script("package_artifact.py", moved, second, "--config", config).returncode == 0
    assert first.read_bytes() != second.read_bytes()


def rewrite(zip_path: Path, change) -> None:
    with zipfile.ZipFile(zip_path) as archive:
        entries = {info.filename: archive.read(info) for info in archive.infolist()}
    change(entries)
    with zipfile.ZipFile(zip_path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda e: e.__setitem__("requirements.txt", b"evil==1\n"), "requirements.txt: size"),
        (lambda e: e.__setitem__("requirements.txt", b"requests>=3\n"), "requirements.txt: sha256 differs"),
        (lambda e: e.pop("init/init.sh"), "init/init.sh: listed in MANIFEST.json but missing"),
        (lambda e: e.__setitem__("wheels/extra-1-py3-none-any.whl", b"x"), "present but not listed"),
        (lambda e: e.__setitem__("../escape.txt", b"x"), "not a plain relative path"),
        (lambda e: e.pop("MANIFEST.json"), "artifact has no MANIFEST.json"),
        (lambda e: e.__setitem__("MANIFEST.json", b"{not json"), "MANIFEST.json is malformed"),
    ],
)
def test_verification_catches_tampering(tmp_path, change, problem):
    staging, config = make_staging(tmp_path)
    out = tmp_path / "artifact.zip"
    assert run_script("package_artifact.py", staging, out, "--config", config).returncode == 0
    rewrite(out, change)
    problems = artifact.verify_zip(out)
    assert any(problem in p for p in problems), problems
    result = run_script("package_artifact.py", "--verify", out)
    assert_one_line_error(result, 2, "does not match its MANIFEST.json")


def test_verify_ok(tmp_path):
    staging, config = make_staging(tmp_path)
    out = tmp_path / "artifact.zip"
    assert run_script("package_artifact.py", staging, out, "--config", config).returncode == 0
    result = run_script("package_artifact.py", "--verify", out)
    assert result.returncode == 0 and "matches" in result.stdout


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (lambda s: shutil.rmtree(s / "wheels"), "no wheels in"),
        (lambda s: (s / "wheels" / "notes.txt").write_text("x"), "holds more than wheels: notes.txt"),
        (lambda s: (s / "init" / "init.sh").unlink(), "init.sh does not exist"),
        (lambda s: (s / "requirements.txt").unlink(), "requirements.txt does not exist"),
    ],
)
def test_incomplete_staging_is_a_clear_error_and_writes_nothing(tmp_path, breakage, message):
    staging, config = make_staging(tmp_path)
    breakage(staging)
    out = tmp_path / "artifact.zip"
    result = run_script("package_artifact.py", staging, out, "--config", config)
    assert_one_line_error(result, 2, message)
    assert not out.exists() and not list(tmp_path.glob(".artifact.zip*"))


def _link(path: Path, target: Path) -> None:
    if path.is_file():
        path.unlink()
    path.symlink_to(target, target_is_directory=target.is_dir())


@pytest.mark.parametrize(
    "where",
    [
        "notebooks/package1/passwd.txt",
        "notebooks/package1/ext",  # a linked folder
        "notebooks",  # the whole notebooks/ folder
        "wheels/evil-1.0-py3-none-any.whl",
        "init/init.sh",
        "requirements.txt",
    ],
)
def test_symlink_leaving_the_staging_folder_is_refused_and_no_zip_is_left(tmp_path, where):
    staging, config = make_staging(tmp_path)
    outside = tmp_path / "etc"
    outside.mkdir()
    (outside / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    target = outside if where in ("notebooks", "notebooks/package1/ext") else outside / "passwd"
    if where == "notebooks":
        shutil.rmtree(staging / "notebooks")
    _link(staging / where, target)
    out = tmp_path / "out" / "artifact.zip"
    out.parent.mkdir()
    out.write_bytes(b"the previous artifact")
    result = run_script("package_artifact.py", staging, out, "--config", config)
    assert_one_line_error(
        result,
        2,
        f"error: {staging}/{where} is a symlink to {target}, outside {staging} "
        f"(replace the link with the file, or move its target inside {staging})",
    )
    assert out.read_bytes() == b"the previous artifact"
    assert sorted(p.name for p in out.parent.iterdir()) == ["artifact.zip"]  # no temp zip left behind


def test_symlink_loop_in_the_staging_folder_is_a_one_line_error(tmp_path):
    staging, config = make_staging(tmp_path)
    (staging / "notebooks" / "package1" / "a.py").symlink_to("b.py")
    (staging / "notebooks" / "package1" / "b.py").symlink_to("a.py")
    out = tmp_path / "artifact.zip"
    result = run_script("package_artifact.py", staging, out, "--config", config)
    assert_one_line_error(result, 2, f"error: {staging}/notebooks/package1/a.py is a symlink loop (")
    assert not out.exists() and not list(tmp_path.glob(".artifact.zip*"))


def test_symlinks_inside_the_staging_folder_are_packaged_as_their_targets_content(tmp_path):
    staging, config = make_staging(tmp_path)
    (staging / "notebooks" / "package1" / "alias.py").symlink_to("explore.py")
    (staging / "notebooks" / "package1" / "sub link").symlink_to("sub dir", target_is_directory=True)  # not entered
    out = tmp_path / "artifact.zip"
    result = run_script("package_artifact.py", staging, out, "--config", config)
    assert result.returncode == 0, result.stderr
    with zipfile.ZipFile(out) as archive:
        assert (
            archive.read("notebooks/package1/alias.py")
            == (staging / "notebooks" / "package1" / "explore.py").read_bytes()
        )
        assert not [name for name in archive.namelist() if "sub link" in name]


def test_config_include_and_scripts_linking_outside_their_roots_are_refused(tmp_path):
    staging, config = make_staging(tmp_path)
    outside = tmp_path / "elsewhere.json"
    outside.write_text(json.dumps({"targets": {"prod": {}}}))
    include = config.parent / "conf" / "targets.json"
    _link(include, outside)
    out = tmp_path / "artifact.zip"
    result = run_script("package_artifact.py", staging, out, "--config", config)
    assert_one_line_error(result, 2, f"error: {include} is a symlink to {outside}, outside {config.parent} (")
    assert not out.exists()

    include.unlink()  # a plain include again
    include.write_text(json.dumps({"targets": {"prod": {}}}))
    scripts = tmp_path / "scripts"
    shutil.copytree(SCRIPTS, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    (scripts / "requirements.txt").write_text("requests\n")
    (scripts / "token.txt").symlink_to(tmp_path / "elsewhere.json")
    result = run_script("package_artifact.py", staging, out, "--config", config, "--scripts-dir", scripts)
    assert_one_line_error(result, 2, f"error: {scripts}/token.txt is a symlink to {outside}, outside {scripts} (")
    assert not out.exists()


def test_unknown_staging_entries_are_left_out_with_a_warning(tmp_path):
    staging, config = make_staging(tmp_path)
    (staging / "test-results.xml").write_text("<testsuites/>")
    out = tmp_path / "artifact.zip"
    result = run_script("package_artifact.py", staging, out, "--config", config)
    assert result.returncode == 0, result.stderr
    assert "not part of the artifact layout" in result.stderr
    assert "test-results.xml" not in names(out)


def test_include_that_matches_nothing_and_missing_config(tmp_path):
    staging, config = make_staging(tmp_path)
    config.write_text(json.dumps({"bundle": {"name": "demo"}, "include": ["conf/missing.json"]}))
    result = run_script("package_artifact.py", staging, tmp_path / "a.zip", "--config", config)
    assert_one_line_error(result, 2, "does not match any files")
    result = run_script("package_artifact.py", staging, tmp_path / "a.zip", "--config", tmp_path / "nope.json")
    assert_one_line_error(result, 2, "nope.json not found")
    assert not (tmp_path / "a.zip").exists()


@pytest.mark.parametrize("args", [(), ("one",), ("a", "b", "c"), ("src", "out.tar"), ("--verify", "x.zip", "src")])
def test_usage_errors(tmp_path, args):
    assert_one_line_error(run_script("package_artifact.py", *args, cwd=tmp_path), 2)


def test_check_unique_refuses_duplicates_and_manifest_paths(tmp_path):
    source = tmp_path / "f"
    source.write_text("x")
    with pytest.raises(InputError, match="two files for artifact path a/b"):
        artifact.check_unique([artifact.ArtifactFile("a/b", source), artifact.ArtifactFile("a/b", source)])
    with pytest.raises(InputError, match="would overwrite"):
        artifact.check_unique([artifact.ArtifactFile("MANIFEST.json", source)])
    for bad in ("/abs", "a/../b", "a//b", "a\\b", ""):
        with pytest.raises(InputError):
            artifact.check_entry_path(bad)
