"""Write the cluster init script that installs the merged requirements and the wheels.

The script (bash, set -euo pipefail) runs /databricks/python/bin/pip install once with
-r <libraries path>/<requirements file name> and <libraries path>/<wheel file name> for each wheel: the
CD steps upload those files into the libraries path under their own names. The libraries path is the
deployed location: /Volumes/<catalog>/<schema>/<volume>/..., /Workspace/... or legacy dbfs:/... (read on
the cluster as /dbfs/...). Without --libraries-path it comes from deploy.libraries_path of the config
target (--config/-t/--var). Every path in the script is shell-quoted; the file is written atomically
with mode 0755.

Example:
  python ci_cd_scripts/create_init_script.py --out staging/init/init.sh \\
      --libraries-path /Volumes/main/default/libs --requirements staging/requirements.txt \\
      --wheel-dir staging/wheels
"""

from __future__ import annotations

import sys
from pathlib import Path

from cicdkit import ado, atomic, cli, init_script, requirements
from cicdkit.errors import ConfigError, InputError


def libraries_path_from_config(args) -> str:
    """``deploy.libraries_path`` of the chosen config target."""
    loaded = cli.load_config(args)  # only when needed: --libraries-path alone works without a config file
    path = loaded.deploy.get("libraries_path")
    if not path:
        raise ConfigError(
            f"{args.config}: deploy.libraries_path is not set for target {loaded.target!r}",
            hint="set it in the config or pass --libraries-path",
        )
    return str(path)


def requirements_to_install(path: Path) -> str | None:
    """The file name to install with -r, or None when the file holds no requirement (pip refuses -r of it)."""
    if not path.is_file():
        raise InputError(f"--requirements {path} does not exist", hint="write it with merge_requirements.py")
    parsed = requirements.read_files([path])
    if len(parsed.files) > 1:
        raise InputError(
            f"--requirements {path} includes other files with -r; only this file is deployed",
            hint="pass the file written by merge_requirements.py",
        )
    return path.name if parsed.entries else None


def wheel_files(wheels: list[str], wheel_dirs: list[str]) -> list[Path]:
    found = [Path(wheel) for wheel in wheels]
    for folder in map(Path, wheel_dirs):
        if not folder.is_dir():
            raise InputError(f"--wheel-dir {folder} is not a folder")
        found += sorted(folder.glob("*.whl"))
    for wheel in found:
        if not wheel.is_file():
            raise InputError(f"--wheel {wheel} does not exist", hint="build it with build_packages.py first")
    return found


@cli.entry
def main(argv: list[str] | None = None) -> int:
    parser = cli.parser("create_init_script.py", __doc__)
    parser.add_argument("--out", required=True, help="init script to write, e.g. staging/init/init.sh")
    parser.add_argument(
        "--libraries-path", help="deployed location of wheels and requirements (default: deploy.libraries_path)"
    )
    parser.add_argument("--requirements", help="merged requirements file (from merge_requirements.py)")
    parser.add_argument("--wheel", action="append", default=[], metavar="FILE", help="a wheel to install; repeatable")
    parser.add_argument(
        "--wheel-dir", action="append", default=[], metavar="DIR", help="install every *.whl in DIR; repeatable"
    )
    cli.add_config_args(parser)
    args = parser.parse_args(argv)

    libraries_path = args.libraries_path or libraries_path_from_config(args)
    wheels = wheel_files(args.wheel, args.wheel_dir)
    requirements_name = requirements_to_install(Path(args.requirements)) if args.requirements else None
    script = init_script.render(libraries_path, [wheel.name for wheel in wheels], requirements_name)
    atomic.write_text(args.out, script, mode=0o755)

    location = init_script.cluster_path(libraries_path)
    ado.relay(
        f"wrote {args.out}: installs {len(wheels)} wheel(s)"
        f"{' and ' + requirements_name if requirements_name else ''} from {location}"
    )
    if args.requirements and not requirements_name:
        ado.relay(f"  {args.requirements} holds no requirements: not installed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
