"""Making a client: `connect` (host, auth, limits and deadline from arguments, environment and config). A step
gets its arguments from its settings (`cicdkit.settings.connect`), never from an argparse namespace.

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
