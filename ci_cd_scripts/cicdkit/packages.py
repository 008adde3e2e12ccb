"""Building the repository's packages into wheels with PyPA build: which folders, how, and publishing the result.

Owns: turning arguments into package folders (`package_dirs`), the build plan (`plan_builds`: unique names,
symlinks checked, isolation chosen from the installed build requirements), one build from a clean copy of the
package folder in a session of its own (`run_build`), the parallel builds (`build_all`, on `pool.run_all`),
stamping and inspecting the wheels (`finish_wheels`), the checks of a built wheel (`stray_top_level`) and moving
the wheels into the output folder together (`publish`). It prints nothing: ``build_packages.py`` reports.
Builds are reproducible: `source_date_epoch` dates every file in a wheel by the package's last commit, so the same
source gives a byte-identical wheel (https://reproducible-builds.org/specs/source-date-epoch/).
What a wheel says about itself and the version stamping are `wheels.py`'s; README "Version stamping and build
isolation (build_packages.py)" explains the choices. PyPA build: https://build.pypa.io/en/stable/
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from . import atomic, discovery, pool, wheels
from .errors import InputError, UsageError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: build itself depends on tomli there
    import tomli as tomllib

from packaging.requirements import InvalidRequirement, Requirement

ISOLATION_CHOICES = ("auto", "always", "never")
# What PyPA build assumes for a package without a [build-system] table (PEP 518).
DEFAULT_BUILD_REQUIRES = ["setuptools>=40.8.0"]
# Top-level names a wheel should not install: they belong to the repository, not to the package's code.
STRAY_TOP_LEVEL = frozenset({"tests", "test", "notebooks", "docs", "examples"})
# Never copied into the build folder (anywhere): caches and metadata of earlier builds.
_SKIP_ANYWHERE = {".git", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".tox", ".nox", "node_modules"}
# Never copied at the package root: output of earlier builds and local virtualenvs.
_SKIP_AT_ROOT = {"build", "dist", ".venv", "venv", ".eggs"}
# Zip files cannot hold times before 1980-01-01.
_ZIP_EPOCH = 315532800
# How often a running build looks whether the step was interrupted.
_STOP_POLL_SECONDS = 0.5


@dataclass
class Build:
    """One package's build: inputs, and the wheel or the error it produced."""

    package_dir: Path
    isolated: bool = False
    wheel: Path | None = None
    error: str | None = None
    log: str = ""
    seconds: float = 0.0

    @property
    def name(self) -> str:
        return self.package_dir.name


def build_requires(package_dir: Path) -> list[str]:
    """The package's [build-system] requires (PEP 518 default when it has none)."""
    pyproject = package_dir / "pyproject.toml"
    if not pyproject.is_file():
        return list(DEFAULT_BUILD_REQUIRES)
    try:
        table = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"{pyproject} is not valid TOML: {error}") from None
    build_system = table.get("build-system") or {}
    return list(build_system.get("requires", DEFAULT_BUILD_REQUIRES))


def requirements_installed(requires: list[str]) -> bool:
    """True when every requirement (whose marker applies here) is installed in this interpreter."""
    for text in requires:
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            return False
        if requirement.marker and not requirement.marker.evaluate():
            continue
        try:
            installed = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            return False
        if requirement.specifier and not requirement.specifier.contains(installed, prereleases=True):
            return False
    return True


def package_dirs(items: list[str], root: str | None) -> list[Path]:
    """Package folders from the arguments (folders, marker files, comma-separated lists) or from --root."""
    if root:
        if not Path(root).is_dir():
            raise InputError(f"--root {root} is not a folder")
        found = discovery.find_packages(root)
        if not found:
            raise InputError(f"no package (pyproject.toml or setup.py) under {root}")
        return found
    folders: list[Path] = []
    for item in items:
        for part in filter(None, (piece.strip() for piece in item.split(","))):
            path = Path(part)
            folder = path.parent if path.is_file() and path.name in discovery.PACKAGE_MARKERS else path
            if not folder.is_dir():
                raise InputError(f"package folder {part} does not exist")
            if not discovery.is_package_dir(folder):
                raise InputError(
                    f"{part} holds no pyproject.toml with [project]/[build-system] and no setup.py",
                    hint="pass the folder of a Python package",
                )
            folders.append(folder.resolve())
    folders = list(dict.fromkeys(folders))
    if not folders:
        raise UsageError("give PACKAGE_DIRs or --root DIR")
    return folders


def _copy_ignore(package_root: Path) -> Callable[[str, list[str]], set[str]]:
    def ignore(folder: str, names: list[str]) -> set[str]:
        at_root = Path(folder) == package_root
        skipped = set()
        for name in names:
            path = os.path.join(folder, name)
            if name in _SKIP_ANYWHERE or name.endswith(".egg-info"):
                skipped.add(name)
            elif at_root and name in _SKIP_AT_ROOT and os.path.isdir(path):
                skipped.add(name)
            elif os.path.isdir(path) and os.path.isfile(os.path.join(path, discovery.VENV_MARKER)):
                skipped.add(name)
        return skipped

    return ignore


def check_symlinks(package_dir: Path) -> None:
    """Refuse, before anything is built, every symlink the build would read that `discovery.resolve_in_root`
    refuses for the package folder (outside it, dangling, a loop).

    Walks what the clean copy copies (the same `_copy_ignore`), and like the copy (and a backend building in
    place) follows linked folders inside the package, so a pair of folders linking to each other is a loop
    (`entered`: the real folders above the one being read).
    """
    ignore = _copy_ignore(package_dir)
    pending: list[tuple[Path, tuple[Path, ...]]] = [(package_dir, (package_dir.resolve(),))]
    while pending:
        folder, entered = pending.pop()
        try:
            names = sorted(os.listdir(folder))
        except OSError as error:
            raise InputError(f"cannot read {folder}: {error.strerror or error}") from None
        skipped = ignore(str(folder), names)
        for name in names:
            path = folder / name
            if name in skipped:
                continue
            if path.is_symlink():
                real = discovery.resolve_in_root(path, package_dir, entered=entered)
                if real.is_dir():
                    pending.append((path, entered + (real,)))
            elif path.is_dir():
                pending.append((path, entered + (entered[-1] / name,)))


def plan_builds(folders: list[Path], isolation: str) -> list[Build]:
    """One `Build` per folder, with its isolation decided (`ISOLATION_CHOICES`); refuses two packages of the same
    folder name and any symlink `check_symlinks` refuses, before anything is built or written."""
    builds = [Build(folder) for folder in folders]
    clashing = {b.name for b in builds if sum(other.name == b.name for other in builds) > 1}
    if clashing:
        raise InputError(
            f"several packages are named {', '.join(sorted(clashing))}", hint="package folder names must be unique"
        )
    for build in builds:
        check_symlinks(build.package_dir)
        needs = build_requires(build.package_dir)
        build.isolated = isolation == "always" or (isolation == "auto" and not requirements_installed(needs))
    return builds


def source_date_epoch(package_dir: Path) -> str | None:
    """SOURCE_DATE_EPOCH for building `package_dir`: the caller's if set; else the time of the last git commit
    that touched the folder; else the newest modification time of the files a build copies; None if it has none.
    The wheel backends (setuptools/wheel, hatchling, flit, poetry-core) date the archive's entries by it."""
    if os.environ.get("SOURCE_DATE_EPOCH", "").strip():
        return os.environ["SOURCE_DATE_EPOCH"].strip()
    try:
        result = subprocess.run(
            ["git", "log", "-1", "--format=%ct", "--", "."],
            cwd=package_dir,
            capture_output=True,
            text=True,
            timeout=30,
        )
        if result.returncode == 0 and result.stdout.strip().isdigit():
            return str(max(_ZIP_EPOCH, int(result.stdout.strip())))
    except (OSError, subprocess.TimeoutExpired):
        pass  # no git, or not a checkout: the files' own times
    ignore = _copy_ignore(package_dir)
    newest = 0.0
    for folder, dirnames, filenames in os.walk(package_dir):
        skipped = ignore(folder, dirnames + filenames)
        dirnames[:] = [d for d in dirnames if d not in skipped]
        for filename in filenames:
            if filename not in skipped:
                try:
                    newest = max(newest, os.stat(os.path.join(folder, filename)).st_mtime)
                except OSError:
                    continue  # the copy reports it
    return str(max(_ZIP_EPOCH, int(newest))) if newest else None


def run_build(
    build: Build, work_dir: Path, in_place: bool, timeout: float, stop: threading.Event | None = None
) -> Build:
    """Build one wheel into work_dir/<n>/wheel; fill in build.wheel or build.error. The build's whole process group
    is killed at `timeout`, or as soon as `stop` is set (the step was interrupted)."""
    started = time.perf_counter()
    env = dict(os.environ)
    epoch = source_date_epoch(build.package_dir)
    if epoch is not None:
        env["SOURCE_DATE_EPOCH"] = epoch
    source = build.package_dir
    if not in_place:
        source = work_dir / "src" / build.name
        try:
            shutil.copytree(build.package_dir, source, ignore=_copy_ignore(build.package_dir), symlinks=False)
        except (OSError, shutil.Error) as error:
            build.error = f"could not copy the package folder: {error}"
            return build
    out = work_dir / "wheel"
    command = [sys.executable, "-m", "build", "--wheel", "--outdir", str(out)]
    if not build.isolated:
        command.append("--no-isolation")
    command.append(".")
    # A session of its own, so a timeout stops the build backend's own subprocesses too.
    process = subprocess.Popen(
        command,
        cwd=source,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
        errors="replace",
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    while True:
        try:  # in slices, to see `stop`; a retried communicate loses no output
            build.log, _ = process.communicate(timeout=max(0.0, min(_STOP_POLL_SECONDS, deadline - time.monotonic())))
            break
        except subprocess.TimeoutExpired:
            stopped = stop is not None and stop.is_set()
            if not stopped and time.monotonic() < deadline:
                continue
            os.killpg(process.pid, signal.SIGKILL)
            build.log, _ = process.communicate()
            build.error = (
                "build stopped: the step was interrupted" if stopped else f"build did not finish within {timeout:g}s"
            )
            break
    if build.error is None:
        built = sorted(out.glob("*.whl")) if out.is_dir() else []
        if process.returncode != 0:
            build.error = f"build exited with {process.returncode}"
        elif len(built) != 1:
            build.error = f"expected one wheel, the build produced {len(built)}"
        else:
            build.wheel = built[0]
    build.seconds = time.perf_counter() - started
    return build


def build_all(builds: list[Build], work: Path, *, in_place: bool, timeout: float, jobs: int) -> None:
    """Run every build, at most `jobs` at a time, each in ``work/<index>``. A failing build does not stop the
    others: `run_build` records its error in the `Build` (every package's outcome is reported). Interrupted (Ctrl-C,
    SIGTERM), the running builds are killed and nothing more starts."""
    stop = threading.Event()
    pool.run_all(
        [
            functools.partial(run_build, build, work / str(index), in_place, timeout, stop)
            for index, build in enumerate(builds)
        ],
        workers=jobs,
        stop=stop,
    )


def finish_wheels(builds: list[Build], work: Path, version_suffix: str) -> list[tuple[Build, wheels.WheelInfo]]:
    """The built wheels, stamped with `version_suffix` (into ``work/<index>/stamped``) when there is one, and
    inspected; `InputError` when two packages build the same distribution."""
    rows = []
    for index, build in enumerate(builds):
        wheel = build.wheel
        if version_suffix:
            stamped_dir = work / str(index) / "stamped"
            stamped_dir.mkdir()
            wheel = wheels.restamp(wheel, version_suffix, stamped_dir)
        rows.append((build, wheels.inspect(wheel)))
    distributions = [info.distribution for _, info in rows]
    duplicates = sorted({name for name in distributions if distributions.count(name) > 1})
    if duplicates:
        raise InputError(
            f"several packages build the distribution {', '.join(duplicates)}", hint="give each package its own name"
        )
    return rows


def stray_top_level(info: wheels.WheelInfo) -> list[str]:
    """The wheel's top-level names that are repository folders (tests, docs...) rather than the package's code."""
    return [name for name in info.top_level if name in STRAY_TOP_LEVEL]


def publish(rows: list[tuple[Build, wheels.WheelInfo]], out_dir: Path) -> list[tuple[Build, wheels.WheelInfo]]:
    """Move the wheels into out_dir all together: every copy is written next to its target first, then renamed
    into it (`atomic.copy_files`)."""
    targets = atomic.copy_files((info.path, out_dir / info.path.name) for _, info in rows)
    return [
        (
            build,
            wheels.WheelInfo(target.resolve(), info.distribution, info.version, info.size, info.sha256, info.top_level),
        )
        for (build, info), target in zip(rows, targets)
    ]
