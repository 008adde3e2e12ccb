"""The CI chain end to end, run the way the CI stage runs it: find → install → build → copy notebooks →
merge requirements → init script → package, as subprocesses, on a copy of package1/package2 and on an
odd-shaped repo (src layout, spaces, deep notebooks, decoys). Checks the artifact as CD will see it.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import zipfile
from pathlib import Path

import pytest
from helpers import SCRIPTS, run_script
from repo_fixtures import ODD, SAMPLE, make_repo

from cicdkit import artifact, config, init_script

pytestmark = pytest.mark.slow
ODD_LIBRARIES = "/Volumes/main/ci cd/libs it's"


def run_ok(name: str, *args, cwd: Path) -> subprocess.CompletedProcess[str]:
    result = run_script(name, *args, cwd=cwd, timeout=300)
    assert result.returncode == 0, f"{name} failed ({result.returncode})\n{result.stdout}\n{result.stderr}"
    return result


def script_files() -> set[str]:
    """What ci_cd_scripts/ contributes to the artifact: the steps and the library (every file but caches and the
    local stand-ins of the cloud, which the CD stages never run), plus requirements.txt."""
    local_only = ("local_cloud/", "local_workspace.py", "run_pipeline_locally.py")
    found = {
        f"ci_cd_scripts/{p.relative_to(SCRIPTS).as_posix()}"
        for p in SCRIPTS.rglob("*")
        if p.is_file()
        and "__pycache__" not in p.parts
        and p.suffix not in (".pyc", ".pyo")
        and not p.relative_to(SCRIPTS).as_posix().startswith(local_only)
    }
    return found | {"ci_cd_scripts/requirements.txt"}


def run_chain(root: Path, work: Path, init_args: list[str], config_file: Path) -> Path:
    staging, out = work / "staging area", work / "out" / "artifact.zip"
    found = json.loads(run_ok("find_files.py", root, "**/requirements/*.txt", "--format", "json", cwd=work).stdout)
    run_ok("install_requirements.py", "--kind", "dev", "--root", root, "--pip-arg=--no-index", cwd=work)
    run_ok("build_packages.py", "--root", root, "--out-dir", staging / "wheels", "--version-suffix", ".dev42", cwd=work)
    run_ok("copy_notebooks.py", root, staging / "notebooks", cwd=work)
    run_ok("merge_requirements.py", "--kind", "common", "--root", root, "--out", staging / "requirements.txt", cwd=work)
    run_ok(
        "create_init_script.py",
        "--out",
        staging / "init" / "init.sh",
        "--requirements",
        staging / "requirements.txt",
        "--wheel-dir",
        staging / "wheels",
        *init_args,
        cwd=work,
    )
    run_ok("package_artifact.py", staging, out, "--config", config_file, cwd=work)
    # Reproducible: packaging the same staging folder again gives the same bytes.
    again = work / "again.zip"
    run_ok("package_artifact.py", staging, again, "--config", config_file, cwd=work)
    assert again.read_bytes() == out.read_bytes()
    return out, [str(Path(f).relative_to(root).as_posix()) for f in found["files"]]


def check_artifact(out: Path, shape, config_paths: set[str], libraries_path: str, tmp_path: Path, stub_pip) -> None:
    with zipfile.ZipFile(out) as archive:
        names = archive.namelist()
        contents = {name: archive.read(name) for name in names}
    distributions = {dist: dist.replace("-", "_") for dist in shape.packages.values()}

    # The file list: exactly the layout, nothing else.
    wheels = sorted(n for n in names if n.startswith("wheels/"))
    assert [w.split("/")[1].split("-")[0] for w in wheels] == sorted(distributions.values())
    assert all(w.endswith(".dev42-py3-none-any.whl") for w in wheels), wheels
    expected = (
        {"MANIFEST.json", "init/init.sh", "requirements.txt"}
        | set(wheels)
        | config_paths
        | script_files()
        | {f"notebooks/{notebook}" for notebook in shape.notebooks}
    )
    assert set(names) == expected
    assert names == sorted(names)

    # MANIFEST matches the content, checked independently of artifact.verify_zip.
    manifest = json.loads(contents["MANIFEST.json"])
    assert {entry["path"] for entry in manifest["files"]} == set(names) - {"MANIFEST.json"}
    for entry in manifest["files"]:
        data = contents[entry["path"]]
        assert (len(data), hashlib.sha256(data).hexdigest()) == (entry["size"], entry["sha256"]), entry["path"]
    assert artifact.verify_zip(out) == []

    # Each wheel holds only its own package.
    for wheel in wheels:
        with zipfile.ZipFile(io.BytesIO(contents[wheel])) as built:
            tops = {name.split("/")[0] for name in built.namelist() if ".dist-info/" not in name}
        distribution = next(d for d, n in distributions.items() if wheel.split("/")[1].startswith(n + "-"))
        assert tops == set(shape.import_packages[distribution]), (wheel, tops)

    # Merged requirements.
    merged = contents["requirements.txt"].decode().splitlines()
    assert [line for line in merged if line and not line.startswith(("#", "-"))] == shape.common_requirements

    # The init script installs exactly these files from the deployed location (run against a stub pip).
    script = tmp_path / "init.sh"
    script.write_bytes(contents["init/init.sh"])
    ran, calls = stub_pip(script)
    assert ran.returncode == 0, ran.stderr
    location = init_script.cluster_path(libraries_path)
    requirement_args = ["-r", f"{location}/requirements.txt"] if shape.common_requirements else []
    assert calls == [
        [
            "install",
            "--disable-pip-version-check",
            "--no-input",
            *requirement_args,
            *(f"{location}/{wheel.split('/')[1]}" for wheel in wheels),
        ]
    ]


def test_chain_on_the_sample_packages(tmp_path, stub_pip):
    root = make_repo(tmp_path, "sample")
    work = tmp_path / "agent work"
    work.mkdir()
    config_file = root / "config.json"
    out, requirement_files = run_chain(root, work, ["--config", config_file, "-t", "dev"], config_file)
    assert requirement_files == SAMPLE.requirement_files
    loaded = config.load(config_file, target="dev")
    check_artifact(
        out,
        SAMPLE,
        {p.relative_to(root).as_posix() for p in loaded.files},
        loaded.deploy["libraries_path"],
        tmp_path,
        stub_pip,
    )


def test_chain_on_an_odd_repo(tmp_path, stub_pip):
    root = make_repo(tmp_path, "odd")
    (root / "config.json").write_text(
        json.dumps(
            {
                "bundle": {"name": "odd"},
                "include": ["targets/*.yml"],
                "workspace": {"host": "https://adb-1.1.azuredatabricks.net"},
                "targets": {"dev": {"default": True, "mode": "development"}},
            }
        )
    )
    (root / "targets").mkdir()
    (root / "targets" / "prod.yml").write_text("targets:\n  prod:\n    mode: production\n")
    work = tmp_path / "agent work"
    work.mkdir()
    out, requirement_files = run_chain(root, work, ["--libraries-path", ODD_LIBRARIES], root / "config.json")
    assert requirement_files == ODD.requirement_files
    assert not set(requirement_files) & set(ODD.decoys)
    check_artifact(out, ODD, {"config.json", "targets/prod.yml"}, ODD_LIBRARIES, tmp_path, stub_pip)
    merged = (work / "staging area" / "requirements.txt").read_text().splitlines()
    assert "--prefer-binary" in merged
