"""create_init_script.py: the generated init script, run with bash against a stub pip that records its argv."""

from __future__ import annotations

import json
import stat
import subprocess
from pathlib import Path

import pytest
from helpers import assert_one_line_error, run_script

from cicdkit import init_script
from cicdkit.errors import InputError

ODD_VOLUME = '/Volumes/main/default/libs dir/it\'s $(touch PWNED) `id` "q" ; & *'


def make_wheels(folder: Path, *names: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"PK\x05\x06" + b"\0" * 18)
    return [folder / name for name in names]


# --- pure functions --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("/Volumes/main/default/libs", "/Volumes/main/default/libs"),
        ("/Volumes/main/default/libs/", "/Volumes/main/default/libs"),
        ("/Volumes//main/default/libs/sub", "/Volumes/main/default/libs/sub"),
        ("/Workspace/Shared/ci-cd/libs", "/Workspace/Shared/ci-cd/libs"),
        ("dbfs:/FileStore/libs", "/dbfs/FileStore/libs"),
        ("DBFS:/FileStore/libs", "/dbfs/FileStore/libs"),
        ("dbfs:/Volumes/main/default/libs", "/Volumes/main/default/libs"),
        ("/dbfs/FileStore/libs", "/dbfs/FileStore/libs"),
    ],
)
def test_cluster_path(given, expected):
    assert init_script.cluster_path(given) == expected


@pytest.mark.parametrize(
    "given",
    [
        "libs",
        "./libs",
        "",
        "/tmp/libs",
        "/Volumes/main/default",
        "/Workspace",
        "/Workspace/../etc",
        "/Volumes/main/default/libs/./x",
        "dbfs:relative",
        "/Volumes/main/default/li\nbs",
        "s3://bucket/libs",
    ],
)
def test_cluster_path_refuses_odd_paths(given):
    with pytest.raises(InputError):
        init_script.cluster_path(given)


def test_render_lines():
    script = init_script.render("dbfs:/libs/", ["b-2.0-py3-none-any.whl", "a-1.0-py3-none-any.whl"], "requirements.txt")
    assert script.splitlines() == [
        "#!/bin/bash",
        "# Cluster init script written by create_init_script.py (databricks-ci-cd).",
        "# Installs the project's libraries with the cluster's Python; a failure fails the cluster start.",
        "set -euo pipefail",
        "",
        'PIP="${DATABRICKS_PIP:-/databricks/python/bin/pip}"',
        "",
        "echo 'init script: installing 2 wheel(s) and requirements.txt from /dbfs/libs' >&2",
        '"$PIP" install --disable-pip-version-check --no-input \\',
        "  -r /dbfs/libs/requirements.txt \\",
        "  /dbfs/libs/a-1.0-py3-none-any.whl \\",
        "  /dbfs/libs/b-2.0-py3-none-any.whl",
        "echo 'init script: done' >&2",
    ]


@pytest.mark.parametrize(
    ("wheels", "requirements_name", "message"),
    [
        ([], None, "nothing to install"),
        (["notawheel.zip"], None, "is not a wheel"),
        (["a-1.0-py3-none-any.whl", "A-2.0-py3-none-any.whl"], None, "two wheels for a"),
        (["a-1.0-py3-none-any.whl"], "../requirements.txt", "not a plain file name"),
    ],
)
def test_render_refuses(wheels, requirements_name, message):
    with pytest.raises(InputError, match=message):
        init_script.render("/Volumes/a/b/c", wheels, requirements_name)


# --- the script, and the generated script run by bash -----------------------------------------------------------


def test_generated_script_runs_exact_pip_command_with_odd_paths(tmp_path, stub_pip):
    wheels = make_wheels(
        tmp_path / "wheel dir", "package1-0.1.0.dev7-py3-none-any.whl", "package2-0.1.0.dev7-py3-none-any.whl"
    )
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("# merged\nrequests>=2\n")
    out = tmp_path / "init" / "init.sh"
    result = run_script(
        "create_init_script.py",
        "--out",
        out,
        "--libraries-path",
        ODD_VOLUME,
        "--requirements",
        reqs,
        "--wheel-dir",
        tmp_path / "wheel dir",
    )
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    assert out.read_text().startswith("#!/bin/bash\n")
    assert "set -euo pipefail" in out.read_text().splitlines()

    ran, calls = stub_pip(out)
    assert ran.returncode == 0, ran.stderr
    volume = ODD_VOLUME.rstrip("/")
    assert calls == [
        [
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "-r",
            f"{volume}/requirements.txt",
            f"{volume}/{wheels[0].name}",
            f"{volume}/{wheels[1].name}",
        ]
    ]
    assert not (tmp_path / "PWNED").exists()
    assert f"from {volume}" in ran.stderr


def test_failing_pip_fails_the_script(tmp_path, stub_pip):
    (wheel,) = make_wheels(tmp_path, "pkg-1.0-py3-none-any.whl")
    out = tmp_path / "init.sh"
    result = run_script(
        "create_init_script.py", "--out", out, "--libraries-path", "/Workspace/Shared/libs", "--wheel", wheel
    )
    assert result.returncode == 0, result.stderr
    ran, calls = stub_pip(out, exit_code=3)
    assert ran.returncode == 3
    assert calls == [
        ["install", "--disable-pip-version-check", "--no-input", "/Workspace/Shared/libs/pkg-1.0-py3-none-any.whl"]
    ]
    assert "init script: done" not in ran.stderr


def test_bash_syntax_check_of_generated_script(tmp_path):
    (wheel,) = make_wheels(tmp_path, "pkg-1.0-py3-none-any.whl")
    out = tmp_path / "init.sh"
    assert (
        run_script("create_init_script.py", "--out", out, "--libraries-path", ODD_VOLUME, "--wheel", wheel).returncode
        == 0
    )
    assert subprocess.run(["bash", "-n", str(out)], capture_output=True).returncode == 0


def test_requirements_without_requirements_are_not_installed(tmp_path, stub_pip):
    (wheel,) = make_wheels(tmp_path, "pkg-1.0-py3-none-any.whl")
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("# merged by merge_requirements.py from:\n#   p/requirements/common.txt\n")
    out = tmp_path / "init.sh"
    result = run_script(
        "create_init_script.py",
        "--out",
        out,
        "--libraries-path",
        "dbfs:/FileStore/libs",
        "--requirements",
        reqs,
        "--wheel",
        wheel,
    )
    assert result.returncode == 0, result.stderr
    assert "holds no requirements" in result.stdout
    _, calls = stub_pip(out)
    assert calls == [
        ["install", "--disable-pip-version-check", "--no-input", "/dbfs/FileStore/libs/pkg-1.0-py3-none-any.whl"]
    ]


def test_libraries_path_defaults_from_config(tmp_path, stub_pip):
    (wheel,) = make_wheels(tmp_path, "pkg-1.0-py3-none-any.whl")
    (tmp_path / "config.json").write_text(
        json.dumps(
            {
                "bundle": {"name": "demo"},
                "targets": {
                    "dev": {"default": True, "deploy": {"libraries_path": "/Volumes/dev/default/libs"}},
                    "prod": {"deploy": {"libraries_path": "/Volumes/prod/default/libs"}},
                },
            }
        )
    )
    out = tmp_path / "init.sh"
    result = run_script("create_init_script.py", "--out", out, "--wheel", wheel, "-t", "prod", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    _, calls = stub_pip(out)
    assert calls[0][-1] == "/Volumes/prod/default/libs/pkg-1.0-py3-none-any.whl"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--libraries-path", "libs", "--wheel", "{wheel}"), "is relative"),
        (("--libraries-path", "/tmp/x", "--wheel", "{wheel}"), "is not under /Volumes"),
        (("--libraries-path", "/Volumes/a/b/c", "--wheel", "missing-1.0-py3-none-any.whl"), "does not exist"),
        (("--libraries-path", "/Volumes/a/b/c", "--requirements", "missing.txt"), "does not exist"),
        (
            (
                "--libraries-path",
                "/Volumes/a/b/c",
            ),
            "nothing to install",
        ),
        (("--libraries-path", "/Volumes/a/b/c", "--wheel-dir", "nowhere"), "is not a folder"),
    ],
)
def test_usage_errors_leave_no_file(tmp_path, args, message):
    (wheel,) = make_wheels(tmp_path, "pkg-1.0-py3-none-any.whl")
    out = tmp_path / "init.sh"
    result = run_script(
        "create_init_script.py", "--out", out, *[a.replace("{wheel}", str(wheel)) for a in args], cwd=tmp_path
    )
    assert_one_line_error(result, 2, message)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
