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
import sys
import tempfile
import time
from pathlib import Path

from cicdkit import ado, cli, packages, wheels
from cicdkit.errors import InputError, OperationFailed, UsageError

_LOG_TAIL = 40


def _size(size: int) -> str:
    return f"{size / 1024:.1f} KB" if size < 1024 * 1024 else f"{size / 1024 / 1024:.1f} MB"


def print_table(rows: list[tuple[packages.Build, wheels.WheelInfo]]) -> None:
    header = ("package", "wheel", "version", "size", "sha256", "time")
    lines = [header] + [
        (b.name, info.path.name, info.version, _size(info.size), info.sha256[:12], f"{b.seconds:.1f}s")
        for b, info in rows
    ]
    widths = [max(len(line[column]) for line in lines) for column in range(len(header))]
    for line in lines:
        ado.relay("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip())


def report_failures(failed: list[packages.Build]) -> None:
    """Each failed build with the end of its log (and, in a pipeline, an error issue naming its folder)."""
    for build in failed:
        tail = "\n".join(build.log.rstrip().splitlines()[-_LOG_TAIL:])
        ado.relay(f"--- {build.name} failed: {build.error}; last lines of its build log:")
        ado.relay("\n".join(f"  | {line}" for line in tail.splitlines()) or "  | (no output)")
        if ado.in_pipeline():
            ado.log_issue("error", f"building {build.name} failed: {build.error}", source_path=str(build.package_dir))


@cli.entry
def main(argv: list[str] | None = None) -> int:
    parser = cli.parser("build_packages.py", __doc__)
    parser.add_argument(
        "packages", metavar="PACKAGE_DIR", nargs="*", help="package folder (or its pyproject.toml/setup.py)"
    )
    parser.add_argument("--out-dir", required=True, help="folder the wheels go to (created if missing)")
    parser.add_argument("--root", help="build every package found under this folder instead of PACKAGE_DIRs")
    parser.add_argument(
        "--version-suffix", default="", metavar="SUFFIX", help="append to every version, e.g. .dev123 or +abc1234"
    )
    parser.add_argument(
        "--isolation",
        choices=packages.ISOLATION_CHOICES,
        default="auto",
        help="isolated build environments (default: auto)",
    )
    parser.add_argument(
        "--no-isolation", dest="isolation", action="store_const", const="never", help="same as --isolation never"
    )
    parser.add_argument("--in-place", action="store_true", help="build in the package folder instead of a clean copy")
    parser.add_argument(
        "--jobs", type=int, default=min(4, os.cpu_count() or 1), help="parallel builds (default: min(4, CPUs))"
    )
    parser.add_argument(
        "--timeout", type=float, default=900, help="seconds one package's build may take (default: 900)"
    )
    parser.add_argument(
        "--variable", metavar="NAME", help="also set this pipeline variable to the comma-joined wheel paths"
    )
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

    # Symlinks are checked here, before --out-dir is created or any build starts.
    builds = packages.plan_builds(packages.package_dirs(args.packages, args.root), args.isolation)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="build-packages-") as work:
        work = Path(work)
        with ado.group(f"build {len(builds)} wheel(s)"):
            for build in builds:
                ado.relay(f"building {build.package_dir} ({'isolated' if build.isolated else 'no isolation'})")
            packages.build_all(builds, work, in_place=args.in_place, timeout=args.timeout, jobs=args.jobs)
        failed = [build for build in builds if build.error]
        report_failures(failed)
        if failed:
            names = ", ".join(f"{b.name} ({b.error})" for b in failed)
            raise OperationFailed(
                f"{len(failed)} of {len(builds)} package(s) failed to build: {names}; nothing was written to {out_dir}"
            )
        final = packages.publish(packages.finish_wheels(builds, work, args.version_suffix), out_dir)

    print_table(final)
    for _build, info in final:
        strays = packages.stray_top_level(info)
        if strays:
            ado.log_issue(
                "warning",
                f"{info.path.name} contains top-level {', '.join(strays)}; limit the package's packages= to its own code",
            )
    if args.variable:
        ado.set_variable(args.variable, ",".join(str(info.path) for _, info in final))
    ado.relay(f"built {len(final)} wheel(s) into {out_dir} in {time.perf_counter() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
