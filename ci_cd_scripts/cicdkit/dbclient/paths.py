"""Remote paths: which root a path in the workspace is under, checked before any call uses it.

Owns `remote_path` and `RemotePath`: ``/Workspace/...`` (and ``/Users``, ``/Shared``, ``/Repos``), ``/Volumes/...``
and ``dbfs:/...`` paths, refusing relative paths, ``..``/``.`` segments and other roots. It does not talk to the
workspace (the API families in `api.py` do).
"""

from __future__ import annotations

import dataclasses

from ..errors import InputError


@dataclasses.dataclass(frozen=True)
class RemotePath:
    """A path in the workspace: `kind` is ``workspace``, ``volumes`` or ``dbfs``; `path` as the APIs take it."""

    kind: str
    path: str

    def join(self, *names: str) -> RemotePath:
        return remote_path("/".join([self.path.rstrip("/"), *names]))


_WORKSPACE_ROOTS = ("/Workspace/", "/Users/", "/Shared/", "/Repos/")


def remote_path(path: str, *, allowed: tuple[str, ...] = ("workspace", "volumes", "dbfs")) -> RemotePath:
    """Classify and check a remote path; raise `InputError` for relative paths, ``..``/``.`` parts or other roots.

    Workspace paths come back in their ``/Workspace/...`` form (``/Shared/x`` → ``/Workspace/Shared/x``), which
    every API accepts; trailing slashes are dropped."""
    text = str(path).strip()
    kind = None
    if text.startswith("dbfs:/"):
        kind, body = "dbfs", text[len("dbfs:") :]
    elif text.startswith("/Volumes/"):
        kind, body = "volumes", text
    elif text.startswith(_WORKSPACE_ROOTS) or text == "/Workspace":
        kind, body = "workspace", text
    else:
        body = text
    roots = {"workspace": "/Workspace/...", "volumes": "/Volumes/<catalog>/<schema>/<volume>/...", "dbfs": "dbfs:/..."}
    allowed_roots = " or ".join(roots[name] for name in allowed)
    if kind is None or kind not in allowed:
        raise InputError(f"remote path {text!r} is outside the allowed roots", hint=f"use {allowed_roots}")
    segments = body.split("/")[1:]
    if any(segment in ("..", ".") for segment in segments) or "\\" in body or "\x00" in body:
        raise InputError(f"remote path {text!r} contains '..', '.' or a backslash", hint="give a plain absolute path")
    if any(segment == "" for segment in segments[:-1]):
        raise InputError(f"remote path {text!r} contains an empty segment ('//')")
    if kind == "volumes" and len([s for s in segments if s]) < 4:
        raise InputError(
            f"remote path {text!r} is not inside a volume", hint="use /Volumes/<catalog>/<schema>/<volume>/..."
        )
    normalised = text.rstrip("/") if len(text) > 1 and not text.endswith(":/") else text
    if kind == "workspace" and not normalised.startswith("/Workspace"):
        normalised = "/Workspace" + normalised  # the Files and Libraries APIs need the /Workspace form
    return RemotePath(kind, normalised)
