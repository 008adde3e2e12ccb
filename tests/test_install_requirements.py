"""install_requirements.py against a local wheelhouse (--no-index --find-links): no network, real pip.

Packages are installed with --target into a temporary folder, so the test interpreter is never changed.
"""

from __future__ import annotations

import base64
import hashlib
import signal
import sys
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


def make_wheel(folder: Path, name: str, version: str) -> Path:
    """A minimal valid pure-Python wheel providing module `<name with _>`."""
    module = name.replace("-", "_")
    dist_info = f"{module}-{version}.dist-info"
    files = {
        f"{module}.py": f"VERSION = {version!r}\n",
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist_info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    record.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = "\n".join(record) + "\n"
    wheel = folder / f"{module}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return wheel


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("wheelhouse")
    for name, version in [("demo-lib", "0.1"), ("demo-lib", "0.2"), ("demo-extra", "1.0")]:
        make_wheel(folder, name, version)
    return folder


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def pip_args(wheelhouse: Path, target: Path) -> list[str]:
    return ["--pip-arg=--no-index", f"--pip-arg=--find-links={wheelhouse}", f"--pip-arg=--target={target}"]


@pytest.fixture
def repo(tmp_path) -> Path:
    root = tmp_path / "my repo"
    write(root / "pkg a" / "requirements" / "common.txt", "# runtime\ndemo-lib==0.1\n")
    write(root / "pkg a" / "requirements" / "dev.txt", "-r common.txt\n")
    write(root / "pkgb" / "requirements" / "common.txt", "\n")
    write(root / "pkgb" / "requirements" / "dev.txt", "-r common.txt\ndemo-extra==1.0  # tests\n")
    write(root / ".venv" / "pyvenv.cfg", "")
    write(root / ".venv" / "x" / "requirements" / "dev.txt", "decoy-never-installed==1\n")
    return root


def test_installs_all_dev_files_in_one_pip_run(repo, wheelhouse, tmp_path):
    target = tmp_path / "site"
    result = run_script("install_requirements.py", "--kind", "dev", "--root", repo, *pip_args(wheelhouse, target))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("running: ") == 1
    command = next(line for line in result.stdout.splitlines() if line.startswith("running: "))
    assert command.count(" -r ") == 2 and "decoy" not in command
    assert "Successfully installed demo-extra-1.0 demo-lib-0.1" in result.stdout
    assert (target / "demo_lib.py").read_text() == "VERSION = '0.1'\n"
    assert (target / "demo_extra.py").exists()
    assert "skipped" in result.stdout and "common.txt (not dev.txt)" in result.stdout


def test_files_may_come_as_the_comma_joined_pipeline_variable(repo, wheelhouse, tmp_path):
    files = ",".join(str(path) for path in sorted(repo.glob("*/requirements/*.txt")))
    target = tmp_path / "site"
    result = run_script("install_requirements.py", "--kind", "common", files, *pip_args(wheelhouse, target))
    assert result.returncode == 0, result.stdout + result.stderr
    assert (target / "demo_lib.py").exists() and not (target / "demo_extra.py").exists()


def test_missing_distribution_names_file_and_line(repo, wheelhouse, tmp_path):
    write(repo / "pkgb" / "requirements" / "common.txt", "# comment\n\nmissing-dist==9.9\n")
    result = run_script(
        "install_requirements.py", "--kind", "dev", "--root", repo, *pip_args(wheelhouse, tmp_path / "t")
    )
    line = assert_one_line_error(result, 1, "missing-dist")
    assert f"{repo.resolve() / 'pkgb' / 'requirements' / 'common.txt'} line 3: missing-dist==9.9" in line
    assert "No matching distribution found for missing-dist==9.9" in result.stdout  # pip's own output relayed


def test_conflicting_pins_across_packages_name_both_files(repo, wheelhouse, tmp_path):
    write(repo / "pkgb" / "requirements" / "common.txt", "demo-lib==0.2\n")
    result = run_script(
        "install_requirements.py", "--kind", "common", "--root", repo, *pip_args(wheelhouse, tmp_path / "t")
    )
    line = assert_one_line_error(result, 1)
    assert "pkg a/requirements/common.txt line 2: demo-lib==0.1" in line
    assert "pkgb/requirements/common.txt line 1: demo-lib==0.2" in line


def test_invalid_requirement_line(repo, wheelhouse, tmp_path):
    write(repo / "pkgb" / "requirements" / "common.txt", "this is not a requirement\n")
    result = run_script(
        "install_requirements.py", "--kind", "dev", "--root", repo, *pip_args(wheelhouse, tmp_path / "t")
    )
    assert_one_line_error(result, 1, "common.txt line 1: this is not a requirement")


def test_missing_file_is_bad_input(tmp_path):
    result = run_script("install_requirements.py", "--kind", "dev", tmp_path / "nope" / "dev.txt")
    assert_one_line_error(result, 2, "requirement file not found")


def test_nothing_to_install_is_fine(tmp_path):
    result = run_script("install_requirements.py", "--kind", "dev", "--root", tmp_path)
    assert result.returncode == 0
    assert "nothing to install" in result.stderr


def test_dry_run_masks_credentials_in_pip_options(repo):
    result = run_script(
        "install_requirements.py",
        "--kind",
        "dev",
        "--root",
        repo,
        "--dry-run",
        "--pip-arg=--index-url=https://build:s3cret-feed-token@pkgs.example.com/simple",
    )
    assert result.returncode == 0
    assert "s3cret-feed-token" not in result.stdout + result.stderr
    assert "https://***@pkgs.example.com/simple" in result.stdout


def test_pip_output_cannot_inject_pipeline_commands(tmp_path, wheelhouse):
    evil = tmp_path / "##vso[task.setvariable variable=injected]yes" / "requirements"
    write(evil / "dev.txt", "demo-lib==0.1\n")
    result = run_script(
        "install_requirements.py",
        "--kind",
        "dev",
        evil / "dev.txt",
        *pip_args(wheelhouse, tmp_path / "t"),
        env=script_env(TF_BUILD="True"),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "##vso[task.setvariable variable=injected" not in result.stdout
    assert "##[group]pip install" in result.stdout


def test_locate_failure_maps_a_bare_requirement_to_its_file(tmp_path):
    import install_requirements

    common = write(tmp_path / "common.txt", "Demo_Lib >= 1  # pinned\n")
    dev = write(tmp_path / "dev.txt", "--requirement common.txt\n")
    headline, places = install_requirements.locate_failure(
        ["ERROR: No matching distribution found for demo-lib>=1"], [dev]
    )
    assert headline == "ERROR: No matching distribution found for demo-lib>=1"
    assert places == [f"{common.resolve()} line 1: Demo_Lib >= 1"]


def test_pip_running_past_timeout_is_killed_with_what_it_started(tmp_path, wheelhouse):
    """A build that never ends (a setup.py blocking forever) must not hold the agent until the job timeout."""
    pid_file = tmp_path / "build.pid"
    project = write_hanging_setup(tmp_path / "hangs", pid_file)
    requirements = write(tmp_path / "requirements" / "dev.txt", f"{project}\n")
    result = run_script(
        "install_requirements.py",
        "--kind",
        "dev",
        requirements,
        "--timeout",
        "3",
        *pip_args(wheelhouse, tmp_path / "target"),
        "--pip-arg=--no-build-isolation",
        timeout=120,
    )
    line = assert_one_line_error(result, 1, "did not finish within --timeout 3s")
    assert "raise --timeout" in line
    assert pid_file.exists(), result.stdout  # the build really started, and ...
    assert not process_alive(int(pid_file.read_text()))  # ... the deadline stopped it too, not only pip


def test_sigterm_stops_pip_and_what_it_started_at_once(tmp_path, wheelhouse):
    """pip runs in a session of its own (so a deadline can end its whole group); a runner stopping the step must
    end it too, not wait for it."""
    pid_file = tmp_path / "build.pid"
    project = write_hanging_setup(tmp_path / "hangs", pid_file)
    requirements = write(tmp_path / "requirements" / "dev.txt", f"{project}\n")
    command = [sys.executable, str(SCRIPTS / "install_requirements.py"), "--kind", "dev", str(requirements)]
    command += [*pip_args(wheelhouse, tmp_path / "target"), "--pip-arg=--no-build-isolation"]
    started = lambda: bool(pid_file.exists() and pid_file.read_text())  # noqa: E731
    code, _, stderr = stop_with_sigterm(command, started, env=script_env())  # before the fix: pip waited for forever
    assert code == 128 + signal.SIGTERM, stderr
    assert stderr.strip().splitlines()[-1] == "error: stopped (SIGTERM)"
    assert not process_alive(int(pid_file.read_text()))


@pytest.mark.parametrize("value", ["0", "-5", "abc", "inf"])
def test_timeout_must_be_a_positive_number(tmp_path, value):
    requirements = write(tmp_path / "requirements" / "dev.txt", "demo-lib\n")
    assert_one_line_error(
        run_script("install_requirements.py", "--kind", "dev", requirements, f"--timeout={value}"), 2, "--timeout"
    )
