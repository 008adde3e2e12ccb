"""The cluster init script: where deployed libraries live on a cluster and the bash that installs them.

Owns: mapping a deploy `libraries_path` (``/Volumes/...``, ``/Workspace/...``, legacy ``dbfs:/...``) to the
absolute path a cluster sees, and rendering the script. Does not upload anything (the CD steps do; they
put the wheels and the requirements file directly in `libraries_path`, under their own file names).

The script runs as root on every node at cluster start: ``set -euo pipefail`` so a failing pip fails the
start (a cluster without its libraries must not look healthy), one ``pip install`` so pip resolves the
requirements and the wheels together, every path passed through `shlex.quote`. ``$DATABRICKS_PIP`` may
name another pip (tests use a stub); on a cluster it is unset and the cluster's own Python pip is used.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Sequence
from pathlib import PurePosixPath

from . import wheels
from .errors import InputError

CLUSTER_PIP = "/databricks/python/bin/pip"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def cluster_path(libraries_path: str) -> str:
    """The absolute path a cluster node reads `libraries_path` from; `InputError` for anything else.

    ``/Volumes/<catalog>/<schema>/<volume>[/...]`` and ``/Workspace/...`` are used as they are; legacy
    ``dbfs:/x`` becomes ``/dbfs/x`` (the DBFS FUSE mount), ``dbfs:/Volumes/...`` becomes ``/Volumes/...``.
    """
    text = str(libraries_path).strip()
    hint = "use /Volumes/<catalog>/<schema>/<volume>/..., /Workspace/... or dbfs:/..."
    if not text or _CONTROL.search(text):
        raise InputError(f"libraries path {text!r} is empty or contains control characters", hint=hint)
    if text.lower().startswith("dbfs:"):
        rest = text[5:]
        if not rest.startswith("/"):
            raise InputError(f"libraries path {text!r} is not an absolute dbfs:/ path", hint=hint)
        text = rest if rest.startswith("/Volumes/") else "/dbfs" + rest
    if not text.startswith("/"):
        raise InputError(f"libraries path {text!r} is relative; a cluster needs an absolute path", hint=hint)
    parts = [part for part in text.split("/") if part]
    if any(part in (".", "..") for part in parts):
        raise InputError(f"libraries path {text!r} contains '.' or '..'", hint=hint)
    roots = {"Volumes": 4, "Workspace": 2, "dbfs": 2}
    if not parts or parts[0] not in roots or len(parts) < roots[parts[0]]:
        raise InputError(
            f"libraries path {text!r} is not under /Volumes/<catalog>/<schema>/<volume>, /Workspace or dbfs:/",
            hint=hint,
        )
    return "/" + "/".join(parts)


def wheel_name(path: str) -> str:
    """The file name of a wheel, checked to be a valid wheel file name."""
    name = PurePosixPath(str(path).replace("\\", "/")).name
    try:
        wheels.parse_name(name)
    except wheels.InvalidWheelFilename as error:
        raise InputError(
            f"{path} is not a wheel: {error}", hint="pass the .whl files build_packages.py wrote"
        ) from None
    return name


def check_wheels(names: Sequence[str]) -> list[str]:
    """Sorted wheel names; `InputError` when two wheels are for the same distribution (pip would refuse)."""
    seen: dict[str, str] = {}
    for name in sorted(names):
        distribution = wheels.parse_name(name).distribution
        if distribution in seen:
            raise InputError(
                f"two wheels for {distribution}: {seen[distribution]} and {name}",
                hint="clean the wheel folder and build once",
            )
        seen[distribution] = name
    return sorted(names)


def render(libraries_path: str, wheel_names: Sequence[str], requirements_name: str | None = None) -> str:
    """The init script that installs `requirements_name` and the wheels from `libraries_path` in one pip call."""
    location = cluster_path(libraries_path)
    if requirements_name is not None and (
        not requirements_name
        or "/" in requirements_name
        or "\\" in requirements_name
        or _CONTROL.search(requirements_name)
        or requirements_name in (".", "..")
    ):
        raise InputError(f"requirements file name {requirements_name!r} is not a plain file name")
    wheel_files = check_wheels([wheel_name(name) for name in wheel_names])
    if not wheel_files and not requirements_name:
        raise InputError(
            "nothing to install: no wheels and no requirements", hint="pass --wheel/--wheel-dir or --requirements"
        )
    arguments = []  # one line each: "-r <file>", then one wheel per line
    if requirements_name:
        arguments.append("-r " + shlex.quote(posixpath.join(location, requirements_name)))
    arguments += [shlex.quote(posixpath.join(location, name)) for name in wheel_files]
    what = f"{len(wheel_files)} wheel(s)" + (f" and {requirements_name}" if requirements_name else "")
    lines = [
        "#!/bin/bash",
        "# Cluster init script written by create_init_script.py (databricks-ci-cd).",
        "# Installs the project's libraries with the cluster's Python; a failure fails the cluster start.",
        "set -euo pipefail",
        "",
        f'PIP="${{DATABRICKS_PIP:-{CLUSTER_PIP}}}"',
        "",
        "echo " + shlex.quote(f"init script: installing {what} from {location}") + " >&2",
        '"$PIP" install --disable-pip-version-check --no-input \\',
        *(f"  {argument}" + (" \\" if index < len(arguments) - 1 else "") for index, argument in enumerate(arguments)),
        "echo " + shlex.quote("init script: done") + " >&2",
    ]
    return "\n".join(lines) + "\n"
