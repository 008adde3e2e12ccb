"""build_packages.py: one wheel per package holding only its own code, stamped versions, all-or-nothing output."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from helpers import (
    SCRIPTS,
    assert_one_line_error,
    process_alive,
    run_script,
    script_env,
    stop_with_sigterm,
    write_hanging_setup,
)
from repo_fixtures import ODD
from wheel.wheelfile import WheelFile

from cicdkit import packages, wheels


def wheel_members(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as archive:
        return archive.namelist()


def assert_valid_wheel(path: Path) -> None:
    """Every member's hash and size match RECORD (WheelFile checks them on read)."""
    with WheelFile(path) as wheel:
        for name in wheel.namelist():
            wheel.read(name)


def test_sample_packages_build_into_separate_stamped_wheels(sample_repo, tmp_path):
    out = tmp_path / "wheels out"
    result = run_script(
        "build_packages.py",
        "--out-dir",
        out,
        "--version-suffix",
        ".dev42",
        sample_repo / "package1",
        sample_repo / "package2",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    built = sorted(path.name for path in out.iterdir())
    assert built == ["package1-1.0.0.dev42-py3-none-any.whl", "package2-1.0.0.dev42-py3-none-any.whl"]
    for name, package in (("package1", "package1"), ("package2", "package2")):
        wheel = out / f"{name}-1.0.0.dev42-py3-none-any.whl"
        assert_valid_wheel(wheel)
        info = wheels.inspect(wheel)
        assert (info.distribution, info.version, info.top_level) == (name, "1.0.0.dev42", (package,))
        metadata = zipfile.ZipFile(wheel).read(f"{name}-1.0.0.dev42.dist-info/METADATA").decode()
        assert "\nVersion: 1.0.0.dev42\n" in metadata
        assert f"{info.sha256[:12]}" in result.stdout  # the table shows the digest prefix
    assert "no isolation" in result.stdout  # setuptools is installed here: the fast path is chosen
    # The checkout stays clean: no build/, dist/ or egg-info written into the package folders.
    assert not list(sample_repo.glob("*/build")) and not list(sample_repo.glob("*/*.egg-info"))


def test_stamped_wheel_installs_with_the_new_version(sample_repo, tmp_path):
    out = tmp_path / "out"
    result = run_script("build_packages.py", "--out-dir", out, "--version-suffix", "+abc1234", sample_repo / "package1")
    assert result.returncode == 0, result.stdout + result.stderr
    wheel = out / "package1-1.0.0+abc1234-py3-none-any.whl"
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-index",
            "--disable-pip-version-check",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
        env=script_env(),
    )
    probe = "import importlib.metadata as m, package1; print(m.version('package1'), package1.check([], []).passed)"
    shown = subprocess.run(
        [sys.executable, "-c", probe],
        env=script_env(PYTHONPATH=str(target)),
        capture_output=True,
        text=True,
        check=True,
    )
    assert shown.stdout.split() == ["1.0.0+abc1234", "True"]


def test_odd_repo_packages_each_contain_only_their_own_code(odd_repo, tmp_path):
    out = tmp_path / "out"
    result = run_script(
        "build_packages.py",
        "--out-dir",
        out,
        "--root",
        odd_repo,
        "--variable",
        "wheel_files",
        env=script_env(TF_BUILD="True"),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    infos = {info.distribution: info for info in map(wheels.inspect, sorted(out.glob("*.whl")))}
    assert {name: list(info.top_level) for name, info in infos.items()} == ODD.import_packages
    beta = next(out.glob("beta-*.whl"))
    assert "beta/removed_module.py" not in wheel_members(beta)  # a stale build/lib was not reused
    assert b"STALE" not in zipfile.ZipFile(beta).read("beta/__init__.py")
    assert "beta/core/__init__.py" in wheel_members(beta)
    variable = next(line for line in result.stdout.splitlines() if "task.setvariable variable=wheel_files" in line)
    assert variable.count(".whl") == 3


def test_setup_files_variable_is_accepted(sample_repo, tmp_path):
    setup_files = ",".join(
        str(p) for p in [sample_repo / "package2" / "pyproject.toml", sample_repo / "package2" / "setup.py"]
    )
    result = run_script("build_packages.py", "--out-dir", tmp_path / "out", setup_files)
    assert result.returncode == 0, result.stdout + result.stderr
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["package2-1.0.0-py3-none-any.whl"]


def test_a_failing_package_is_named_and_nothing_is_written(sample_repo, tmp_path):
    broken = sample_repo / "broken"
    broken.mkdir()
    (broken / "setup.py").write_text("from setuptools import setup\nraise RuntimeError('boom: broken setup.py')\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("earlier content\n")
    result = run_script("build_packages.py", "--out-dir", out, sample_repo / "package1", broken)
    line = assert_one_line_error(result, 1, "1 of 2 package(s) failed to build: broken")
    assert "nothing was written" in line
    assert "boom: broken setup.py" in result.stdout  # the build log tail is shown
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]  # package1's good wheel was not published


def test_bad_suffix_and_bad_folders_fail_before_building(sample_repo, tmp_path):
    out = tmp_path / "out"
    assert_one_line_error(
        run_script("build_packages.py", "--out-dir", out, "--version-suffix=-nightly!", sample_repo / "package1"),
        2,
        "PEP 440",
    )
    assert_one_line_error(run_script("build_packages.py", "--out-dir", out, tmp_path / "missing"), 2, "does not exist")
    assert_one_line_error(
        run_script("build_packages.py", "--out-dir", out, sample_repo / "package1" / "notebooks"),
        2,
        "no pyproject.toml",
    )
    assert_one_line_error(run_script("build_packages.py", "--out-dir", out), 2, "PACKAGE_DIRs or --root")
    assert not out.exists() or not list(out.glob("*.whl"))


def test_restamp_is_reproducible_and_refuses_a_second_local_part(sample_repo, tmp_path):
    out = tmp_path / "out"
    assert (
        run_script(
            "build_packages.py", "--out-dir", out, "--version-suffix", "+local", sample_repo / "package1"
        ).returncode
        == 0
    )
    wheel = next(out.glob("*.whl"))
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir(), second.mkdir()
    one = wheels.restamp(wheel, ".1", first)
    two = wheels.restamp(wheel, ".1", second)
    assert one.name == "package1-1.0.0+local.1-py3-none-any.whl"
    assert one.read_bytes() == two.read_bytes()
    assert_valid_wheel(one)
    with pytest.raises(Exception, match="not a valid PEP 440"):
        wheels.restamp(wheel, "+again", first)


def entry_dates(wheel: Path) -> set[tuple[int, ...]]:
    with zipfile.ZipFile(wheel) as archive:
        return {info.date_time for info in archive.infolist()}


def build_twice(package: Path, tmp_path: Path, env: dict[str, str]) -> tuple[Path, Path]:
    built = []
    for name in ("first", "second"):
        out = tmp_path / name
        result = run_script("build_packages.py", "--out-dir", out, "--version-suffix", ".dev7", package, env=env)
        assert result.returncode == 0, result.stdout + result.stderr
        built.append(next(out.glob("*.whl")))
    return built[0], built[1]


def test_a_wheel_is_reproducible_every_file_dated_by_the_last_commit(sample_repo, tmp_path):
    """Same source, same wheel, byte for byte: its entries are dated by the package's last commit (without it
    the backend dates the metadata it writes by the clock, so every build differs)."""
    commit_env = {
        **script_env(),
        "GIT_AUTHOR_DATE": "2001-02-03T04:05:06Z",
        "GIT_COMMITTER_DATE": "2001-02-03T04:05:06Z",
    }
    commit_env.update(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com", GIT_COMMITTER_NAME="t")
    commit_env["GIT_COMMITTER_EMAIL"] = "t@example.com"
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "sample"]):
        subprocess.run(["git", "-C", str(sample_repo), *command], check=True, env=commit_env)
    first, second = build_twice(sample_repo / "package2", tmp_path, script_env(SOURCE_DATE_EPOCH=None))
    assert first.read_bytes() == second.read_bytes()
    assert entry_dates(first) == {(2001, 2, 3, 4, 5, 6)}


def test_outside_git_the_newest_file_dates_the_wheel_and_a_given_epoch_wins(sample_repo, tmp_path):
    package = sample_repo / "package1"
    for path in package.rglob("*"):
        os.utime(path, (1_000_000_000, 1_000_000_000))
    os.utime(package / "pyproject.toml", (1_000_000_100, 1_000_000_100))  # the newest file
    first, second = build_twice(package, tmp_path, script_env(SOURCE_DATE_EPOCH=None))
    assert first.read_bytes() == second.read_bytes()
    assert entry_dates(first) == {time.gmtime(1_000_000_100)[:6]}
    given, _ = build_twice(package, tmp_path / "given", script_env(SOURCE_DATE_EPOCH="1234567890"))
    assert entry_dates(given) == {time.gmtime(1234567890)[:6]}


@pytest.mark.parametrize(
    "requires, expected",
    [
        (["setuptools>=40.8.0"], True),
        (["setuptools>=40.8.0", "wheel"], True),
        (["setuptools>=9999"], False),
        (["surely-not-an-installed-distribution"], False),
        (["surely-not-an-installed-distribution; python_version < '3'"], True),
    ],
)
def test_isolation_is_needed_only_when_build_requirements_are_missing(requires, expected):
    assert packages.requirements_installed(requires) is expected


def test_a_build_past_its_deadline_fails_cleanly(sample_repo, tmp_path):
    # No interpreter starts, let alone builds a wheel, within 10 ms: the deadline always expires.
    result = run_script(
        "build_packages.py", "--out-dir", tmp_path / "out", "--timeout", "0.01", sample_repo / "package1"
    )
    assert_one_line_error(result, 1, "package1 (build did not finish within 0.01s)")
    assert not list((tmp_path / "out").glob("*.whl"))


def test_sigterm_kills_the_running_builds_and_the_step_exits(tmp_path):
    """Each build runs in a session of its own (so its deadline ends the backend's subprocesses too): a runner
    stopping the step must end them as well, not wait up to the build's --timeout."""
    pid_file = tmp_path / "build.pid"
    package = write_hanging_setup(tmp_path / "hangs", pid_file)
    command = [sys.executable, str(SCRIPTS / "build_packages.py"), "--out-dir", str(tmp_path / "out"), str(package)]
    code, _, stderr = stop_with_sigterm(
        command, lambda: bool(pid_file.exists() and pid_file.read_text()), env=script_env()
    )
    assert code == 128 + signal.SIGTERM, stderr
    assert stderr.strip().splitlines()[-1] == "error: stopped (SIGTERM)"
    assert not process_alive(int(pid_file.read_text()))
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


# --- symlinks in package folders (discovery.resolve_in_root, root: the package folder) --------------------------


@pytest.mark.parametrize(
    "link, kind",
    [
        ("package1/package1/secret.py", "file"),  # inside the importable code: it would be in the wheel
        ("package1/package1/data", "folder"),  # the clean copy would copy the folder's files
        ("package1/README.md", "file"),  # read by the backend for the long description
    ],
)
@pytest.mark.parametrize("select", ["PACKAGE_DIR", "--root"])
def test_a_link_leaving_the_package_is_refused_before_any_build(sample_repo, tmp_path, link, kind, select):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "id_rsa.py").write_text("KEY = 'secret'\n")
    target = outside if kind == "folder" else outside / "id_rsa.py"
    path = sample_repo / link
    if path.exists():
        path.unlink()
    path.symlink_to(target, target_is_directory=kind == "folder")
    out = tmp_path / "out"
    chosen = (
        [sample_repo / "package2", sample_repo / "package1"] if select == "PACKAGE_DIR" else ["--root", sample_repo]
    )
    result = run_script("build_packages.py", "--out-dir", out, *chosen)
    package = (sample_repo / "package1").resolve()
    assert_one_line_error(
        result,
        2,
        f"error: {package}/{link.split('/', 1)[1]} is a symlink to {target}, outside {package} "
        f"(replace the link with the file, or move its target inside {package})",
    )
    assert "building" not in result.stdout  # refused before any build started (package2's neither)
    assert not out.exists()


@pytest.mark.parametrize(
    "links, message",
    [
        ({"package1/a.py": "b.py", "package1/b.py": "a.py"}, "package1/a.py is a symlink loop ("),
        ({"package1/again": "."}, "package1/again is a symlink to "),
        ({"package1/x/to_y": "../y", "package1/y/to_x": "../x"}, "a folder that contains the link (a loop)"),
    ],
    ids=["file-loop", "self", "folder-pair"],
)
def test_link_loops_in_a_package_are_one_line_errors(sample_repo, tmp_path, links, message):
    code = sample_repo / "package1" / "package1"
    for link, target in links.items():
        (code / link).parent.mkdir(parents=True, exist_ok=True)
        (code / link).symlink_to(target)
    result = run_script("build_packages.py", "--out-dir", tmp_path / "out", sample_repo / "package1")
    line = assert_one_line_error(result, 2, message)
    assert "loop" in line and "building" not in result.stdout
    assert not (tmp_path / "out").exists()


def test_links_inside_the_package_are_built_with_their_content_and_skipped_folders_are_not_checked(
    sample_repo, tmp_path
):
    code = sample_repo / "package1" / "package1"
    (code / "rules_again.py").symlink_to("rules.py")
    (sample_repo / "package1" / ".venv").symlink_to(sys.prefix, target_is_directory=True)  # never copied, never read
    out = tmp_path / "out"
    result = run_script("build_packages.py", "--out-dir", out, sample_repo / "package1")
    assert result.returncode == 0, result.stdout + result.stderr
    [wheel] = out.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        assert archive.read("package1/rules_again.py") == (code / "rules.py").read_bytes()
