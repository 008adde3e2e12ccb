"""Merge the packages' requirement files into one requirements file for the clusters.

Reads the given files (or finds every package's requirements/<kind>.txt under --root), resolves -r
includes relative to the including file, drops comments and agent-only options, removes duplicates,
combines compatible lines of the same distribution and fails naming both files and lines when two pins
cannot both hold. Kept options: --index-url (one), --extra-index-url, --trusted-host, --pre,
--prefer-binary, --only-binary, --no-binary. Dropped with a warning: --find-links, --no-index, --hash.
Refused: -e/--editable, -c/--constraint, local paths, other options.

Example:
  python ci_cd_scripts/merge_requirements.py --kind common --root . --out staging/requirements.txt
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from cicdkit import ado, atomic, cli, requirements
from cicdkit.errors import InputError, UsageError


def find_requirement_files(root: Path, kind: str) -> list[Path]:
    """Every package's ``requirements/<kind>.txt`` under `root` (virtualenvs, build dirs, ignored paths skipped)."""
    from cicdkit import discovery  # the shared file finder (same rules as find_files.py)

    if not root.is_dir():
        raise InputError(f"--root {root} is not a folder")
    return [Path(path) for path in discovery.find_files(root, [f"**/requirements/{kind}.txt"])]


@cli.entry
def main(argv: list[str] | None = None) -> int:
    parser = cli.parser("merge_requirements.py", __doc__)
    parser.add_argument("files", nargs="*", metavar="FILE", help="requirement files to merge, in this order")
    parser.add_argument("--root", help="find every package's requirements/<kind>.txt under this folder instead")
    parser.add_argument(
        "--kind",
        choices=["common", "dev"],
        default="common",
        help="which requirement files --root finds (default: common, what clusters need)",
    )
    parser.add_argument("--out", required=True, help="merged requirements file to write (atomically)")
    args = parser.parse_args(argv)

    if bool(args.files) == bool(args.root):
        raise UsageError("give requirement FILEs or --root DIR (one of the two)")
    files = [Path(f) for f in args.files] if args.files else find_requirement_files(Path(args.root), args.kind)
    if not files:
        raise InputError(
            f"no */requirements/{args.kind}.txt found under {args.root}",
            hint="each package keeps its runtime requirements in <package>/requirements/common.txt",
        )

    merged = requirements.merge_files(files)
    for warning in merged.warnings:
        ado.log_issue("warning", warning)
    base = Path(args.root) if args.root else Path.cwd()
    sources = [os.path.relpath(path, base).replace(os.sep, "/") for path in merged.files]
    header = ["merged by merge_requirements.py from:", *(f"  {source}" for source in sources)]
    atomic.write_text(args.out, merged.text(header))

    ado.relay(
        f"merged {len(merged.requirements)} requirement(s) and {len(merged.options)} option(s) "
        f"from {len(merged.files)} file(s) into {args.out}"
    )
    for line in merged.options + merged.requirements:
        ado.relay(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
