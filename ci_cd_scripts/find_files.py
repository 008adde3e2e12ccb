"""Find files in a repository by gitignore-style patterns, skipping virtualenvs, node_modules and ignored paths.

Patterns are matched against paths relative to ROOT with .gitignore syntax:
  '*/requirements/*.txt'   requirement files one folder below ROOT (package1/requirements/dev.txt)
  '**/requirements/*.txt'  the same at any depth
  '**/setup.py'            setup.py at any depth ('setup.py' without a slash means the same)
  '!pattern'               exclude again
Quote the patterns so the shell does not expand them.

Never entered: .git, virtualenvs (any folder holding pyvenv.cfg, and .venv/venv/env), node_modules, build/,
dist/, *.egg-info, __pycache__, .tox and other caches, and whatever the repo's .gitignore files ignore
(nested ones too; --no-gitignore turns that off). Results are absolute paths, sorted.

Output (--format):
  lines  one path per line (default)
  json   {"root": ..., "patterns": [...], "count": N, "files": [...]}
  vso    one pipeline variable holding the comma-joined paths, like the original scripts:
         requirements_files for requirement files, setup_files for setup.py/pyproject.toml,
         <ext>_files for '*.<ext>'; --variable NAME overrides. Paths containing a comma are refused.

Example (Azure Pipelines):
  python ci_cd_scripts/find_files.py "$(Build.SourcesDirectory)" '*/requirements/*.txt' --format vso
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from cicdkit import ado, cli, discovery
from cicdkit.errors import InputError


@cli.entry
def main(argv: list[str] | None = None) -> int:
    parser = cli.parser("find_files.py", __doc__)
    parser.add_argument(
        "root", metavar="ROOT", help="folder to search (absolute, or relative to the current directory)"
    )
    parser.add_argument("patterns", metavar="PATTERN", nargs="+", help="gitignore-style pattern; several are OR-ed")
    parser.add_argument(
        "--format", choices=["lines", "json", "vso"], default="lines", help="output format (default: lines)"
    )
    parser.add_argument(
        "--variable", metavar="NAME", help="pipeline variable for --format vso (default: derived from the pattern)"
    )
    parser.add_argument("--relative", action="store_true", help="print paths relative to ROOT instead of absolute")
    parser.add_argument("--no-gitignore", action="store_true", help="do not skip paths ignored by .gitignore files")
    args = parser.parse_args(argv)

    root = Path(args.root)
    if not root.is_dir():
        raise InputError(
            f"ROOT {args.root!r} is not a folder", hint="pass the repository folder, e.g. $(Build.SourcesDirectory)"
        )
    started = time.perf_counter()
    files = discovery.find_files(root, args.patterns, respect_gitignore=not args.no_gitignore)
    elapsed = time.perf_counter() - started
    shown = [file.relative_to(root.resolve()).as_posix() if args.relative else str(file) for file in files]

    if args.format == "vso":
        variable = ado.check_variable_name(args.variable or discovery.default_variable_name(args.patterns))
        with_comma = [path for path in shown if "," in path]
        if with_comma:
            raise InputError(
                f"{with_comma[0]!r} contains a comma and cannot go into a comma-joined variable",
                hint="rename it or use --format json",
            )
        ado.set_variable(variable, ",".join(shown))
    elif args.format == "json":
        document = {"root": str(root.resolve()), "patterns": args.patterns, "count": len(shown), "files": shown}
        # Strings must read back exactly, so '##' becomes '#\u0023' rather than gaining a zero-width space.
        ado.relay(ado.neutralise_json(json.dumps(document, indent=2)))
    else:
        for path in shown:
            print(ado.neutralise(path))
    if shown:
        # stderr, so stdout stays exactly the list a caller parses.
        ado.relay(f"found {len(shown)} file(s) for {' '.join(args.patterns)} in {elapsed:.3f}s", sys.stderr)
    else:
        ado.log_issue("warning", f"no file under {root} matches {' '.join(args.patterns)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
