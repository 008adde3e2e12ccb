"""The settings of one CD step, decided once: each value from its flag, else the target's ``deploy`` section, else
the default.

A step parses its command line (`cli.add_step_args`, `cli.add_cluster_args`), then asks `cli.step_settings` (or
`Settings.from_args` with a config it loaded itself) for a frozen `Settings`, and reads every shared decision from
it: the workspace (host, auth), the concurrency, the step's deadline (``--timeout``), the longest wait between status
polls, dry run, verbosity, the clusters, and the folders and paths a step defaults from the config. The parse-time
checks (a usable --timeout, --poll-interval, --concurrency; a value some step requires, such as the clusters) raise
`errors.UsageError` here, before any call. `connect` turns the settings into the step's Databricks client. The shape
follows twine's ``Settings.from_argparse`` (https://github.com/pypa/twine/blob/main/twine/settings.py).

It owns the precedence and the checks, not the flags themselves (`cli.py` declares them), not the config
(`config.py` resolves the target and its ``deploy`` section, see README "Configuration"), and not the client
(`dbclient`).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from .errors import UsageError

if TYPE_CHECKING:
    from .dbclient import Client

DEFAULT_CONCURRENCY = 8
DEFAULT_STEP_SECONDS = 1200

# Values only some steps need: what `Settings.required` says when one has neither its flag nor its deploy key.
_REQUIRED = {
    "cluster_ids": ("no cluster given", "pass --cluster-id or set deploy.clusters in the config"),
    "notebooks_path": ("WORKSPACE_DIR is missing", "pass it, or set deploy.notebooks_path in the config"),
    "init_script_path": ("no init script given", "pass --script or set deploy.init_script_path in the config"),
}


@dataclasses.dataclass(frozen=True)
class Settings:
    """What a CD step decided from its flags and config (see `from_args` for each value's precedence)."""

    config: Any = dataclasses.field(default=None, repr=False)  # the resolved `config.Config`, None without one
    deploy: Mapping[str, Any] = dataclasses.field(default_factory=lambda: MappingProxyType({}))
    host: str | None = None
    auth: str | None = None
    concurrency: int = DEFAULT_CONCURRENCY
    timeout: float | None = None  # the step's deadline in seconds; None for a step without --timeout
    poll_interval: float | None = None  # the longest wait between status polls; None: the client's default
    dry_run: bool = False
    verbose: bool = False
    cluster_ids: tuple[str, ...] = ()
    notebooks_path: str | None = None
    init_script_path: str | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace, *, config: Any = None, require: Iterable[str] = ()) -> Settings:
        """The settings from parsed arguments and the step's config (None: no config, every default is built in).

        Precedence, flag > the target's ``deploy`` section > default:

        * concurrency: --concurrency, else deploy.concurrency, else `DEFAULT_CONCURRENCY`;
        * timeout (only when the step has --timeout): --timeout, else deploy.timeout_seconds, else
          `DEFAULT_STEP_SECONDS`;
        * cluster_ids: --cluster-id (duplicates dropped, order kept), else deploy.clusters;
        * notebooks_path: WORKSPACE_DIR, else deploy.notebooks_path; init_script_path: --script, else
          deploy.init_script_path;
        * host, auth, poll_interval, dry_run, verbose: their flags (the client resolves host and auth further).

        `UsageError`, in this order: --concurrency below 1; a --timeout that is not a positive, finite number; a
        name in `require` without a value (see `required`); a --poll-interval not above 0.
        """
        deploy = getattr(config, "deploy", None) or {}
        flag_concurrency = getattr(args, "concurrency", None)
        if flag_concurrency is not None and flag_concurrency < 1:
            raise UsageError("--concurrency must be at least 1")
        timeout = None
        if hasattr(args, "timeout"):
            timeout = (
                args.timeout
                if args.timeout is not None
                else float(deploy.get("timeout_seconds") or DEFAULT_STEP_SECONDS)
            )
            if not 0 < timeout < float("inf"):
                raise UsageError(f"--timeout must be a positive number of seconds, not {timeout:g}")
        settings = cls(
            config=config,
            deploy=MappingProxyType(dict(deploy)),
            host=getattr(args, "host", None),
            auth=getattr(args, "auth", None),
            concurrency=int(flag_concurrency or deploy.get("concurrency") or DEFAULT_CONCURRENCY),
            timeout=timeout,
            poll_interval=getattr(args, "poll_interval", None),
            dry_run=bool(getattr(args, "dry_run", False)),
            verbose=bool(getattr(args, "verbose", False)),
            cluster_ids=tuple(dict.fromkeys(getattr(args, "cluster_id", None) or deploy.get("clusters") or [])),
            notebooks_path=_text(getattr(args, "workspace_dir", None) or deploy.get("notebooks_path")),
            init_script_path=_text(getattr(args, "script", None) or deploy.get("init_script_path")),
        )
        for name in require:
            settings.required(name)
        if settings.poll_interval is not None and settings.poll_interval <= 0:
            raise UsageError("--timeout and --poll-interval must be positive")
        return settings

    def required(self, name: str) -> Any:
        """The value of `name` (one of cluster_ids, notebooks_path, init_script_path); `UsageError` saying which
        flag or deploy key gives it when it is empty."""
        message, hint = _REQUIRED[name]
        value = getattr(self, name)
        if not value:
            raise UsageError(message, hint=hint)
        return value


def _text(value: Any) -> str | None:
    return str(value) if value else None


def connect(settings: Settings, *, concurrency: int | None = None, grace_seconds: float = 0.0) -> Client:
    """The step's Databricks client: `settings`' host, auth and config; read only for a dry run; `concurrency`
    (when given) instead of the settings'; status polls at most `Settings.poll_interval` apart; and the step's
    deadline, counted from here, so every call and wait ends by ``--timeout`` (plus `grace_seconds`, for a step
    that still has work after its deadline, such as cancelling the runs that passed it)."""
    from . import dbclient  # imported here: steps without a workspace do not load requests

    poll_max = settings.poll_interval
    poll_seconds = (
        dbclient.DEFAULT_POLL_SECONDS if not poll_max else (min(dbclient.DEFAULT_POLL_SECONDS[0], poll_max), poll_max)
    )
    return dbclient.connect(
        host=settings.host,
        auth=settings.auth,
        config=settings.config,
        concurrency=int(concurrency or settings.concurrency),
        poll_seconds=poll_seconds,
        read_only=settings.dry_run,
        step_timeout=settings.timeout + grace_seconds if settings.timeout is not None else None,
    )
