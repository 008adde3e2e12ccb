"""Making a client: `connect` (host, auth, limits and deadline from arguments, environment and config) and
`connect_from_args` (the same from a step's parsed ``--host``/``--auth``/``--timeout``/``--dry-run``).

Owns only the construction: which values a `Client` gets. README "Talking to Databricks" says where each comes
from. It does not send anything (`transport.py`), check hosts (`hosts.py`) nor choose credentials (`auth.py`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .api import Client
from .auth import Auth, resolve_auth
from .hosts import resolve_host
from .retry import DEFAULT_BACKOFF, DEFAULT_RETRY_BUDGET_SECONDS
from .transport import DEFAULT_POLL_SECONDS, DEFAULT_TIMEOUT


def connect(
    host: str | None = None,
    auth: str | Auth | None = None,
    config: Any = None,
    concurrency: int = 8,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    retry_budget_seconds: float = DEFAULT_RETRY_BUDGET_SECONDS,
    rate_limits: Mapping[str, float | None] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    backoff: tuple[float, float] = DEFAULT_BACKOFF,
    poll_seconds: tuple[float, float] = DEFAULT_POLL_SECONDS,
    read_only: bool = False,
    step_timeout: float | None = None,
) -> Client:
    """A client for the workspace: host from `host`/DATABRICKS_HOST/config, auth per `resolve_auth`.

    No request is sent here; the first call shows whether host and credentials work. `rate_limits` (requests per
    second per endpoint family) are merged over `DEFAULT_RATE_LIMITS` and the config's ``deploy.rate_limits``.
    `read_only` (dry runs) makes any write a programming error. `step_timeout` (seconds from now) is the step's
    deadline: every call, wait and retry of the client ends by it (see the module docstring).
    """
    resolved_host = resolve_host(host, config, environ)
    resolved_auth = auth if isinstance(auth, Auth) else resolve_auth(auth, environ, host=resolved_host)
    limits: dict[str, float | None] = {}
    deploy = getattr(config, "deploy", None) or {}
    if isinstance(deploy.get("rate_limits"), Mapping):
        limits.update(deploy["rate_limits"])
    limits.update(rate_limits or {})
    return Client(
        resolved_host,
        resolved_auth,
        concurrency=concurrency,
        timeout=timeout,
        retry_budget_seconds=retry_budget_seconds,
        backoff=backoff,
        rate_limits=limits,
        poll_seconds=poll_seconds,
        read_only=read_only,
        step_timeout=step_timeout,
    )


def connect_from_args(args: Any, config: Any = None, *, concurrency: int | None = None) -> Client:
    """The client a script gets from its parsed ``--host``/``--auth`` (`cli.add_workspace_args`), the config and
    ``--dry-run`` (read only). Concurrency: the argument, else ``--concurrency``, else deploy.concurrency, else 8.
    ``--poll-interval`` (if the script has it) caps the time between status polls. ``--timeout`` (resolved by
    `cli.step_config`) becomes the step's deadline, counted from here: every call and wait ends by it."""
    deploy = getattr(config, "deploy", None) or {}
    chosen = concurrency or getattr(args, "concurrency", None) or deploy.get("concurrency") or 8
    poll_max = getattr(args, "poll_interval", None)
    poll_seconds = DEFAULT_POLL_SECONDS if not poll_max else (min(DEFAULT_POLL_SECONDS[0], poll_max), poll_max)
    return connect(
        host=getattr(args, "host", None),
        auth=getattr(args, "auth", None),
        config=config,
        concurrency=int(chosen),
        poll_seconds=poll_seconds,
        read_only=bool(getattr(args, "dry_run", False)),
        step_timeout=getattr(args, "timeout", None),
    )
