"""Build one wheel per package with PyPA build, in parallel, and put them in --out-dir only if all succeed.

PACKAGE_DIR: a folder holding pyproject.toml or setup.py (a path to one of those files works too, and a
comma-separated list such as the setup_files variable of find_files.py). --root DIR builds every package
found under DIR instead (same pruning as find_files.py).

Each package is built from a clean temporary copy of its folder (without build/, dist/, *.egg-info, caches
or virtualenvs), with that copy as the working directory: a wheel contains only its own package, never
stale files from an old build/ folder, and parallel builds cannot disturb each other or the checkout.
Packages that read files outside their own folder (e.g. '../README.md') or take their version from git
(setuptools-scm) need --in-place, which builds in the package folder itself.
Either way, a symlink in a package folder that points outside it, dangles or loops is refused (exit 2) before
any build starts or --out-dir is created (discovery.resolve_in_root, the rule of every step reading a source
tree); links inside the package are followed, as the copy and the build backend follow them.

--version-suffix SUFFIX stamps version + SUFFIX into every wheel (file name, METADATA, RECORD), e.g.
'.dev$(Build.BuildId)', '.post$(Build.BuildId)' or '+$(Build.SourceVersion)' shortened; the result must be
a valid PEP 440 version. This works for any build backend, because it rewrites the built wheel rather than
the package's own version declaration; __version__ inside the code keeps the declared version.

Isolation: by default (--isolation auto) a package whose build requirements ([build-system] requires) are
already installed is built without an isolated environment (much faster, no network); otherwise PyPA
build creates one and installs them from the package index. --isolation always|never forces either.

Output: a table of the wheels (package, wheel, version, size, sha256 prefix); --variable NAME also sets a
pipeline variable with the comma-joined wheel paths. A failing package is named with the end of its build
log; then nothing is added to --out-dir and the exit code is 1.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from cicdkit import ado
from cicdkit import cli
from cicdkit import discovery
from cicdkit import wheels
from cicdkit.errors import InputError, OperationFailed, UsageError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: build itself depends on tomli there
    import tomli as tomllib

from packaging.requirements import InvalidRequirement, Requirement

# What PyPA build assumes for a package without a [build-system] table (PEP 518).
DEFAULT_BUILD_REQUIRES = ["setuptools>=40.8.0"]
_LOG_TAIL = 40
# Never copied into the build folder (anywhere): caches and metadata of earlier builds.
_SKIP_ANYWHERE = {".git", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".tox", ".nox", "node_modules"}
# Never copied at the package root: output of earlier builds and local virtualenvs.
_SKIP_AT_ROOT = {"build", "dist", ".venv", "venv", ".eggs"}


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


def _copy_ignore(package_root: Path):
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


def run_build(build: Build, work_dir: Path, in_place: bool, timeout: float) -> Build:
    """Build one wheel into work_dir/<n>/wheel; fill in build.wheel or build.error."""
    started = time.perf_counter()
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
        command, cwd=source, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, encoding="utf-8", errors="replace", start_new_session=True,
    )
    try:
        build.log, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        build.log, _ = process.communicate()
        build.error = f"build did not finish within {timeout:g}s"
    else:
        built = sorted(out.glob("*.whl")) if out.is_dir() else []
        if process.returncode != 0:
            build.error = f"build exited with {process.returncode}"
        elif len(built) != 1:
            build.error = f"expected one wheel, the build produced {len(built)}"
        else:
            build.wheel = built[0]
    build.seconds = time.perf_counter() - started
    return build


def publish(rows: list[tuple[Build, wheels.WheelInfo]], out_dir: Path) -> list[tuple[Build, wheels.WheelInfo]]:
    """Move the wheels into out_dir all together: copied next to it first, then renamed into it."""
    published = []
    with tempfile.TemporaryDirectory(prefix=".wheels-", dir=out_dir) as staging:
        staged = [(build, info, Path(shutil.copy2(info.path, Path(staging) / info.path.name))) for build, info in rows]
        for build, info, path in staged:
            target = out_dir / info.path.name
            os.replace(path, target)
            published.append((build, wheels.WheelInfo(target.resolve(), info.distribution, info.version, info.size, info.sha256, info.top_level)))
    return published


def _size(size: int) -> str:
    return f"{size / 1024:.1f} KB" if size < 1024 * 1024 else f"{size / 1024 / 1024:.1f} MB"


def print_table(rows: list[tuple[Build, wheels.WheelInfo]]) -> None:
    header = ("package", "wheel", "version", "size", "sha256", "time")
    lines = [header] + [
        (b.name, info.path.name, info.version, _size(info.size), info.sha256[:12], f"{b.seconds:.1f}s") for b, info in rows
    ]
    widths = [max(len(line[column]) for line in lines) for column in range(len(header))]
    for line in lines:
        ado.relay("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip())


@cli.entry
def main(argv: list[str] | None = None) -> int:
    parser = cli.parser("build_packages.py", __doc__)
    parser.add_argument("packages", metavar="PACKAGE_DIR", nargs="*", help="package folder (or its pyproject.toml/setup.py)")
    parser.add_argument("--out-dir", required=True, help="folder the wheels go to (created if missing)")
    parser.add_argument("--root", help="build every package found under this folder instead of PACKAGE_DIRs")
    parser.add_argument("--version-suffix", default="", metavar="SUFFIX", help="append to every version, e.g. .dev123 or +abc1234")
    parser.add_argument("--isolation", choices=["auto", "always", "never"], default="auto", help="isolated build environments (default: auto)")
    parser.add_argument("--no-isolation", dest="isolation", action="store_const", const="never", help="same as --isolation never")
    parser.add_argument("--in-place", action="store_true", help="build in the package folder instead of a clean copy")
    parser.add_argument("--jobs", type=int, default=min(4, os.cpu_count() or 1), help="parallel builds (default: min(4, CPUs))")
    parser.add_argument("--timeout", type=float, default=900, help="seconds one package's build may take (default: 900)")
    parser.add_argument("--variable", metavar="NAME", help="also set this pipeline variable to the comma-joined wheel paths")
    args = parser.parse_args(argv)
    if args.packages and args.root:
        raise UsageError("give PACKAGE_DIRs or --root, not both")
    if args.jobs < 1 or args.timeout <= 0:
        raise UsageError("--jobs and --timeout must be positive")
    if args.variable:
        ado.check_variable_name(args.variable)
    if args.version_suffix:
        try:
            wheels.stamped_version("1.0", args.version_suffix)  # reject an impossible suffix before building
        except InputError:
            raise UsageError(
                f"--version-suffix {args.version_suffix!r} cannot make a PEP 440 version (1.0 would become 1.0{args.version_suffix})",
                hint="use e.g. '.dev123', '.post123' or '+abc1234'",
            ) from None

    builds = [Build(folder) for folder in package_dirs(args.packages, args.root)]
    clashing = {b.name for b in builds if sum(other.name == b.name for other in builds) > 1}
    if clashing:
        raise InputError(f"several packages are named {', '.join(sorted(clashing))}", hint="package folder names must be unique")
    for build in builds:
        check_symlinks(build.package_dir)  # before --out-dir is created or any build starts
        needs = build_requires(build.package_dir)
        build.isolated = args.isolation == "always" or (args.isolation == "auto" and not requirements_installed(needs))
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="build-packages-") as work:
        work = Path(work)
        with ado.group(f"build {len(builds)} wheel(s)"):
            for build in builds:
                ado.relay(f"building {build.package_dir} ({'isolated' if build.isolated else 'no isolation'})")
            with ThreadPoolExecutor(max_workers=min(args.jobs, len(builds))) as pool:
                list(pool.map(
                    lambda item: run_build(item[1], work / str(item[0]), args.in_place, args.timeout),
                    enumerate(builds),
                ))
        failed = [build for build in builds if build.error]
        for build in failed:
            tail = "\n".join(build.log.rstrip().splitlines()[-_LOG_TAIL:])
            ado.relay(f"--- {build.name} failed: {build.error}; last lines of its build log:")
            ado.relay("\n".join(f"  | {line}" for line in tail.splitlines()) or "  | (no output)")
            if ado.in_pipeline():
                ado.log_issue("error", f"building {build.name} failed: {build.error}", source_path=str(build.package_dir))
        if failed:
            names = ", ".join(f"{b.name} ({b.error})" for b in failed)
            raise OperationFailed(f"{len(failed)} of {len(builds)} package(s) failed to build: {names}; nothing was written to {out_dir}")

        rows = []
        for index, build in enumerate(builds):
            wheel = build.wheel
            if args.version_suffix:
                stamped_dir = work / str(index) / "stamped"
                stamped_dir.mkdir()
                wheel = wheels.restamp(wheel, args.version_suffix, stamped_dir)
            rows.append((build, wheels.inspect(wheel)))
        distributions = [info.distribution for _, info in rows]
        duplicates = sorted({name for name in distributions if distributions.count(name) > 1})
        if duplicates:
            raise InputError(f"several packages build the distribution {', '.join(duplicates)}", hint="give each package its own name")
        final = publish(rows, out_dir)

    print_table(final)
    for build, info in final:
        strays = [name for name in info.top_level if name in {"tests", "test", "notebooks", "docs", "examples"}]
        if strays:
            ado.log_issue("warning", f"{info.path.name} contains top-level {', '.join(strays)}; limit the package's packages= to its own code")
    if args.variable:
        ado.set_variable(args.variable, ",".join(str(info.path) for _, info in final))
    ado.relay(f"built {len(final)} wheel(s) into {out_dir} in {time.perf_counter() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
