"""Where the workspace is: the host a step talks to, checked before any request, and the local-workspace hints.

Owns `resolve_host` (``--host``, else ``DATABRICKS_HOST``, else the config's ``workspace.host``; README "Talking to
Databricks", "Where the workspace is") and its checks, `is_loopback` (the only hosts plain ``http://`` may reach),
and the hints for a workspace on this machine (the local workspace): how to start it when it cannot be reached and
which token it takes (`LOCAL_WORKSPACE_TOKEN`). It does not send requests (`transport.py`) nor choose credentials
(`auth.py`).
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from ..errors import ConfigError

_HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")
_HOST_EXAMPLE = "https://adb-<workspace-id>.<n>.azuredatabricks.net"


def resolve_host(host: str | None = None, config: Any = None, environ: Mapping[str, str] | None = None) -> str:
    """``--host``, else ``DATABRICKS_HOST``, else config ``workspace.host``; normalised to ``scheme://netloc``.

    Checked before any request, naming where the value came from: scheme http(s), a host name of letters, digits,
    ``-``, ``_`` and dots (or an IP address), a port 1-65535, nothing after it but an optional ``/`` (no path,
    query or fragment), no user name or password (a wrong value would otherwise be retried as a network error
    and end as exit 1, or be silently cut to its host). Plain ``http://`` only reaches a loopback host
    (the local workspace): anywhere else a bearer token would be readable on the wire, so it is refused rather
    than sent."""
    environ = os.environ if environ is None else environ
    candidates = (
        ("--host", host),
        ("DATABRICKS_HOST", environ.get("DATABRICKS_HOST")),
        ("workspace.host in the config", getattr(config, "host", None)),
    )
    for source, raw in candidates:
        value = str(raw).strip() if raw is not None else ""
        if value:
            return _checked_host(value, source)
    raise ConfigError(
        "no Databricks workspace host", hint="pass --host, set DATABRICKS_HOST, or set workspace.host in the config"
    )


def _checked_host(original: str, source: str) -> str:
    def invalid(why: str, *, hint: str = f"use {_HOST_EXAMPLE}") -> ConfigError:
        # Never echo a value with '@' in it: whatever comes before it may be a user name and password.
        shown = f" ({original!r})" if "@" not in original else ""
        return ConfigError(f"{source}{shown} is not a workspace URL: {why}", hint=hint)

    if any(char.isspace() or not char.isprintable() for char in original):
        raise invalid("it contains whitespace or control characters")
    value = original if "://" in original else "https://" + original
    try:
        parts = urlsplit(value)
    except ValueError:
        raise invalid("it cannot be read as a URL (an unclosed '[' of an IPv6 address?)") from None
    try:
        port = parts.port
    except ValueError:
        raise invalid("the port must be a number from 1 to 65535") from None
    if "@" in parts.netloc:
        raise invalid("it contains a user name or password (give credentials in DATABRICKS_TOKEN or --auth)")
    # The API paths are ours to add: a path, query or fragment would be silently dropped (or hide a typo such as
    # the browser's '?o=<workspace-id>'), so anything after the host name but a single '/' is refused.
    after_host = {
        "a path": parts.path not in ("", "/"),
        "a query ('?...')": "?" in value,
        "a fragment ('#...')": "#" in value,
    }
    found = [what for what, present in after_host.items() if present]
    if found:
        raise invalid(
            f"it has {' and '.join(found)}; a workspace URL is only scheme://host[:port]",
            hint=f"keep only the part up to the host name (and port), e.g. {_HOST_EXAMPLE}",
        )
    if parts.scheme not in ("http", "https"):
        raise invalid(f"the scheme must be https:// (not {parts.scheme}://)")
    hostname = parts.hostname or ""
    if not hostname:
        raise invalid("there is no host name")
    if not _is_ip_address(hostname):
        name = hostname[:-1] if hostname.endswith(".") else hostname
        if len(name) > 253 or not all(_HOST_LABEL.match(label) for label in name.split(".")):
            raise invalid("the host name may only contain letters, digits, '-', '_' and dots")
    if port == 0:
        raise invalid("the port must be a number from 1 to 65535")
    if parts.scheme == "http" and not is_loopback(hostname):
        raise ConfigError(
            f"{source} ({original!r}) uses plain http://: the token would cross the network unencrypted",
            hint="use https://; http:// is accepted only for a local workspace on this machine (localhost, 127.0.0.1, ::1)",
        )
    return f"{parts.scheme}://{parts.netloc}"


def _is_ip_address(hostname: str) -> bool:
    try:
        ipaddress.ip_address(hostname)
    except ValueError:
        return False
    return True


def is_loopback(hostname: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1): the only hosts plain http:// may reach."""
    if hostname.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


# A workspace on this machine is the local workspace (ci_cd_scripts/local_workspace.py): when it cannot be reached
# or refuses the token, say how to start it and which token it takes instead of the hints for a real workspace.


def _local_workspace_start(host: str) -> str | None:
    """The command that starts the local workspace at `host` (scheme://netloc), or None when it is not loopback."""
    parts = urlsplit(host)
    hostname = parts.hostname or ""
    if not is_loopback(hostname):
        return None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    bind = "" if hostname in ("127.0.0.1", "localhost") or ":" in hostname else f" --host {hostname}"
    command = f"python ci_cd_scripts/local_workspace.py{bind} --port {port}"
    if parts.scheme == "https" or ":" in hostname:
        command += f" and use http://127.0.0.1:{port} (it serves plain http on IPv4)"
    return command


# The local workspace's default token (local_cloud imports it from here: the library never imports local_cloud).
LOCAL_WORKSPACE_TOKEN = "dapi-local-token"


def _unreachable_hint(host: str) -> str:
    start = _local_workspace_start(host)
    if start is None:
        return "check --host / DATABRICKS_HOST and the network"
    return (
        f"is the local workspace running? start it with: {start} (add --state-dir DIR to keep its state), "
        "or check --host / DATABRICKS_HOST"
    )


def _local_token_hint() -> str:
    return (
        f"the local workspace takes DATABRICKS_TOKEN={LOCAL_WORKSPACE_TOKEN} unless it was started with --token or "
        "$LOCAL_WORKSPACE_TOKEN, then that value"
    )
