"""copy_notebooks.py: every package's notebooks/** into DEST/<package>/, safely and completely."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers import assert_one_line_error, run_script
from repo_fixtures import ODD, SAMPLE


def tree(folder: Path) -> list[str]:
    return sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file())


def test_odd_repo_notebooks_keep_their_folders_and_languages(odd_repo, tmp_path):
    dest = tmp_path / "artifact dir" / "notebooks"
    result = run_script("copy_notebooks.py", odd_repo, dest)
    assert result.returncode == 0, result.stdout + result.stderr
    assert tree(dest) == sorted(ODD.notebooks)  # no README.md, nothing gitignored (draft.local.py), no decoys
    assert (dest / "beta/reports/weekly/deep/nested/rollup.scala").read_bytes() == (
        odd_repo / "beta/notebooks/reports/weekly/deep/nested/rollup.scala"
    ).read_bytes()
    lines = result.stdout.splitlines()
    assert "notebook SCALA   beta/reports/weekly/deep/nested/rollup.scala" in lines
    assert "notebook R       beta/stats.r" in lines
    assert "notebook PYTHON  beta/reports/daily/summary.ipynb" in lines
    assert "file     PYTHON  beta/helpers.py" in lines  # no header: a workspace file, not a notebook
    assert any(
        line.startswith("skipped ") and line.endswith("README.md (not a notebook type; --all-files copies it)")
        for line in lines
    )
    assert lines[-1].startswith("copied 6 notebook(s) and 1 file(s) of 3 package(s)")


def test_sample_repo(sample_repo, tmp_path):
    result = run_script("copy_notebooks.py", sample_repo, tmp_path / "dest")
    assert result.returncode == 0, result.stderr
    assert tree(tmp_path / "dest") == SAMPLE.notebooks


def test_rerun_replaces_package_folders_and_keeps_other_content(sample_repo, tmp_path):
    dest = tmp_path / "dest"
    assert run_script("copy_notebooks.py", sample_repo, dest).returncode == 0
    (dest / "unrelated.txt").write_text("kept\n")
    (sample_repo / "package2" / "notebooks" / "jobs" / "status_demo.py").unlink()
    assert run_script("copy_notebooks.py", sample_repo, dest).returncode == 0
    assert "package2/jobs/status_demo.py" not in tree(dest)  # no stale notebook survives
    assert (dest / "unrelated.txt").read_text() == "kept\n"
    assert not [p for p in dest.iterdir() if p.name.startswith(".notebooks-")]


def test_all_files_copies_other_files_too(odd_repo, tmp_path):
    result = run_script("copy_notebooks.py", odd_repo, tmp_path / "dest", "--all-files")
    assert result.returncode == 0
    assert "beta/reports/README.md" in tree(tmp_path / "dest")


def test_symlink_escaping_the_package_is_refused_and_dest_untouched(sample_repo, tmp_path):
    secret = tmp_path / "outside.py"
    secret.write_text("# Databricks notebook source\nprint('not part of the repo')\n")
    (sample_repo / "package1" / "notebooks" / "sneaky.py").symlink_to(secret)
    dest = tmp_path / "dest"
    result = run_script("copy_notebooks.py", sample_repo, dest)
    package = (sample_repo / "package1").resolve()
    assert_one_line_error(
        result,
        2,
        f"error: {package}/notebooks/sneaky.py is a symlink to {secret.resolve()}, outside {package} "
        f"(replace the link with the file, or move its target inside {package})",
    )
    assert not dest.exists() or tree(dest) == []


def test_symlink_inside_the_package_is_copied_as_a_file(sample_repo, tmp_path):
    link = sample_repo / "package1" / "notebooks" / "alias.py"
    link.symlink_to(sample_repo / "package1" / "notebooks" / "quality_report.py")
    assert run_script("copy_notebooks.py", sample_repo, tmp_path / "dest").returncode == 0
    copied = tmp_path / "dest" / "package1" / "alias.py"
    assert not copied.is_symlink() and copied.read_text().startswith("# Databricks notebook source")


def copy_into_filled_dest(sample_repo, tmp_path):
    """DEST after a first, good copy, and the files it holds then."""
    dest = tmp_path / "dest"
    assert run_script("copy_notebooks.py", sample_repo, dest).returncode == 0
    return dest, tree(dest)


@pytest.mark.parametrize(
    "link, target",
    [
        ("package1/notebooks/shared", "outside folder"),  # a linked folder leaving the package
        ("package1/notebooks/other.py", "package2/notebooks/jobs/status_demo.py"),  # inside ROOT, outside package1
        ("package2/notebooks", "outside folder"),  # the notebooks/ folder itself
    ],
)
def test_links_leaving_their_package_are_refused_and_dest_keeps_the_last_copy(sample_repo, tmp_path, link, target):
    dest, before = copy_into_filled_dest(sample_repo, tmp_path)
    outside = tmp_path / "outside folder"
    outside.mkdir()
    (outside / "secret.py").write_text("# Databricks notebook source\ntoken = 'x'\n")
    resolved = outside if target == "outside folder" else sample_repo.resolve() / target
    path = sample_repo / link
    if path.is_dir():
        shutil.rmtree(path)
    path.symlink_to(resolved, target_is_directory=resolved.is_dir())
    package = (sample_repo / link.split("/")[0]).resolve()
    result = run_script("copy_notebooks.py", sample_repo, dest)
    assert_one_line_error(
        result,
        2,
        f"error: {sample_repo.resolve()}/{link} is a symlink to {resolved}, outside {package} "
        f"(replace the link with the file, or move its target inside {package})",
    )
    assert tree(dest) == before


@pytest.mark.parametrize(
    "links, message",
    [
        ({"a.py": "b.py", "b.py": "a.py"}, "NB/a.py is a symlink loop (NB/a.py -> b.py -> a.py)"),
        ({"up": ".."}, "NB/up is a symlink to PACKAGE, a folder that contains the link (a loop)"),
        ({"gone.py": "missing.py"}, "NB/gone.py is a symlink to NB/missing.py, which does not exist"),
    ],
    ids=["loop", "folder-loop", "dangling"],
)
def test_link_loops_and_dangling_links_are_one_line_errors(sample_repo, tmp_path, links, message):
    dest, before = copy_into_filled_dest(sample_repo, tmp_path)
    notebooks = sample_repo / "package1" / "notebooks"
    for link, target in links.items():
        (notebooks / link).symlink_to(target)
    expected = message.replace("NB", str(notebooks.resolve())).replace("PACKAGE", str(notebooks.parent.resolve()))
    assert_one_line_error(run_script("copy_notebooks.py", sample_repo, dest), 2, f"error: {expected} (")
    assert tree(dest) == before


def test_gitignored_links_are_never_read_so_never_refused(sample_repo, tmp_path):
    (sample_repo / "package1" / "notebooks" / "local.py").symlink_to(tmp_path / "elsewhere.py")
    with open(sample_repo / ".gitignore", "a") as gitignore:
        gitignore.write("\nlocal.py\n")
    result = run_script("copy_notebooks.py", sample_repo, tmp_path / "dest")
    assert result.returncode == 0, result.stderr
    assert tree(tmp_path / "dest") == SAMPLE.notebooks


def test_existing_symlink_in_dest_is_replaced_not_followed(sample_repo, tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "important.txt").write_text("do not touch\n")
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "package1").symlink_to(victim, target_is_directory=True)
    assert run_script("copy_notebooks.py", sample_repo, dest).returncode == 0
    assert not (dest / "package1").is_symlink()
    assert tree(victim) == ["important.txt"]


def test_colliding_workspace_names_are_refused(sample_repo, tmp_path):
    (sample_repo / "package1" / "notebooks" / "quality_report.sql").write_text(
        "-- Databricks notebook source\nSELECT 1\n"
    )
    assert_one_line_error(
        run_script("copy_notebooks.py", sample_repo, tmp_path / "dest"), 2, "would both become the workspace notebook"
    )


def test_two_packages_with_the_same_folder_name_are_refused(sample_repo, tmp_path):
    twin = sample_repo / "other" / "package1"
    (twin / "notebooks").mkdir(parents=True)
    (twin / "setup.py").write_text("from setuptools import setup\nsetup()\n")
    assert_one_line_error(
        run_script("copy_notebooks.py", sample_repo, tmp_path / "dest"), 2, "several packages are named package1"
    )


def test_bad_arguments(tmp_path):
    assert_one_line_error(run_script("copy_notebooks.py", tmp_path / "missing", tmp_path / "d"), 2, "is not a folder")
    (tmp_path / "file").write_text("")
    assert_one_line_error(run_script("copy_notebooks.py", tmp_path, tmp_path / "file"), 2, "is not a folder")


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_dest_inside_a_package_is_refused_instead_of_nesting_copies_run_after_run(sample_repo):
    before = snapshot(sample_repo)
    for dest in ("package1/notebooks/x", "package1/build/notebooks", "package2"):
        for _run in range(2):
            result = run_script("copy_notebooks.py", ".", dest, cwd=sample_repo)
            assert_one_line_error(result, 2, "DEST")
    assert snapshot(sample_repo) == before  # nothing written into the repo


def test_dest_whose_package_folder_would_replace_a_package_is_refused(sample_repo):
    before = snapshot(sample_repo)
    assert_one_line_error(run_script("copy_notebooks.py", sample_repo, sample_repo), 2, "would replace package folder")
    assert snapshot(sample_repo) == before


def test_dest_inside_root_but_outside_the_packages_is_fine(sample_repo):
    result = run_script("copy_notebooks.py", ".", "build/notebooks", cwd=sample_repo)
    assert result.returncode == 0, result.stderr
    again = run_script("copy_notebooks.py", ".", "build/notebooks", cwd=sample_repo)
    assert again.returncode == 0, again.stderr
    assert tree(sample_repo / "build" / "notebooks") == SAMPLE.notebooks
