"""Package the staging folder, the config and the scripts into the reproducible deployment zip.

SRC_DIR is the staging folder the earlier CI steps filled:
  SRC_DIR/wheels/*.whl        build_packages.py --out-dir SRC_DIR/wheels
  SRC_DIR/init/init.sh        create_init_script.py --out SRC_DIR/init/init.sh
  SRC_DIR/requirements.txt    merge_requirements.py --out SRC_DIR/requirements.txt
  SRC_DIR/notebooks/...       copy_notebooks.py ROOT SRC_DIR/notebooks   (optional)
The config (--config, default config.json, with its include files; it must resolve for -t/--var) and
the scripts (--scripts-dir, default the folder holding this script, with the repository's requirements.txt
as ci_cd_scripts/requirements.txt) are added from the repository. MANIFEST.json lists every file with size and sha256. Same inputs give a
byte-identical zip (sorted entries, fixed timestamps and permissions); it is written atomically.

  python ci_cd_scripts/package_artifact.py staging out/artifact.zip
  python ci_cd_scripts/package_artifact.py --verify out/artifact.zip     (check a zip against its MANIFEST)
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from cicdkit import ado, artifact, cli
from cicdkit.errors import InputError, UsageError

HERE = Path(__file__).resolve().parent


def verify(zip_path: Path) -> int:
    if not zip_path.is_file():
        raise InputError(f"{zip_path} does not exist")
    problems = artifact.verify_zip(zip_path)
    for problem in problems:
        ado.relay(f"  mismatch: {problem}")
    if problems:
        raise InputError(
            f"{zip_path} does not match its {artifact.MANIFEST}: {len(problems)} problem(s), first: {problems[0]}"
        )
    ado.relay(f"{zip_path}: every file matches {artifact.MANIFEST}")
    return 0


@cli.entry
def main(argv: list[str] | None = None) -> int:
    parser = cli.parser("package_artifact.py", __doc__)
    parser.add_argument("paths", nargs="*", metavar="SRC_DIR OUT.zip", help="staging folder and the zip to write")
    parser.add_argument(
        "--scripts-dir", default=str(HERE), help="ci_cd_scripts folder to ship (default: this script's folder)"
    )
    parser.add_argument(
        "--scripts-requirements",
        help="requirements of the scripts (default: <scripts-dir>/requirements.txt, "
        "else the requirements.txt next to the scripts folder)",
    )
    parser.add_argument("--verify", metavar="ZIP", help="only check ZIP against its MANIFEST.json")
    cli.add_config_args(parser)
    args = parser.parse_args(argv)

    if args.verify:
        if args.paths:
            raise UsageError("--verify takes no SRC_DIR/OUT.zip")
        return verify(Path(args.verify))
    if len(args.paths) != 2:
        raise UsageError("expected SRC_DIR and OUT.zip")
    staging, out = Path(args.paths[0]), Path(args.paths[1])
    if out.suffix.lower() != ".zip":
        raise UsageError(f"OUT {out} must end in .zip")

    files, warnings = artifact.staging_files(staging)
    loaded = cli.load_config(args)  # also proves the config resolves for the target
    files += artifact.config_files(loaded.files, loaded.root)
    files += artifact.script_files(
        Path(args.scripts_dir), Path(args.scripts_requirements) if args.scripts_requirements else None
    )
    for warning in warnings:
        ado.log_issue("warning", warning)
    entries = artifact.write_artifact(files, out)

    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    groups: dict[str, int] = {}
    for entry in entries:
        top = entry.path.split("/")[0] if "/" in entry.path else entry.path
        groups[top] = groups.get(top, 0) + 1
    ado.relay(f"wrote {out}: {len(entries)} file(s) + {artifact.MANIFEST}, {out.stat().st_size} bytes, sha256 {digest}")
    for top in sorted(groups):
        ado.relay(f"  {top}: {groups[top]} file(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
