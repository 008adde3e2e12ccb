"""Every HTTP call to Databricks: host, authentication, session, timeouts, retries, rate limits and errors.

Owns the wire: one `requests.Session` per client (one client per workspace host) with a connection pool sized to
the concurrency, a (connect, read) timeout on every call, ONE retry loop (`Client.request`), a client-side rate
limiter per endpoint family, and the mapping of error answers to the `errors.ApiError` family. On top of that,
small typed helpers per API family (`client.workspace`, `.dbfs`, `.files`, `.clusters`, `.libraries`, `.jobs`,
`.me()`) and one deadline-bounded waiter (`Client.poll`). It does not decide what to deploy (scripts and their
modules do) and does not choose Azure credentials (`azure_auth.py` does).

Authentication (``--auth``, else ``DATABRICKS_AUTH_TYPE``, else ``auto``):

* ``pat`` — ``Authorization: Bearer $DATABRICKS_TOKEN``.
* ``pipelines`` | ``azure-cli`` | ``environment`` | ``managed-identity`` | ``token`` (the shared vocabulary of
  `azure_auth`; the Databricks CLI names ``azure-pipelines``, ``azure-client-secret``, ``azure-msi`` are accepted
  as aliases, also in ``DATABRICKS_AUTH_TYPE``) — a Microsoft Entra ID token for the
  AzureDatabricks application (scope `DATABRICKS_SCOPE`) from the credential `azure_auth.credential` builds,
  refreshed `REFRESH_MARGIN_SECONDS` before it expires. With ``DATABRICKS_AZURE_RESOURCE_ID`` set, every call also
  carries the service-principal management headers (an ARM token and the workspace resource id) so that a
  principal that is not yet a workspace member is provisioned on first use.
* ``auto`` — ``pat`` when ``DATABRICKS_TOKEN`` is set, else the Entra mode `azure_auth.detect` finds (pipelines
  workload identity, inside AzureCLI@2, client secret from ``AZURE_*``/``ARM_*``, platform managed identity,
  ``AZURE_ACCESS_TOKEN``, a developer's ``az login``), else a one-line error saying what to set.

Retry policy (all in `Client.request`): 429 and 503 are retried for every call, honouring ``Retry-After`` (else
exponential backoff with jitter); 500/502/504, connection errors and timeouts only for idempotent calls (GET, HEAD,
PUT, DELETE, and POSTs declared idempotent: ``mkdirs``, overwriting imports, ``runs/submit`` with its
``idempotency_token``...); all within a total retry budget per call (default `DEFAULT_RETRY_BUDGET_SECONDS`, 120 s),
after which the last error is raised saying how many attempts were made. Until the host has answered once, a failed
connection is retried only twice (a wrong ``--host`` fails in seconds, not minutes). Request bodies that are files
are rewound before a retry.

Deadlines: a client made for a step (`connect_from_args`, from the step's ``--timeout``) has a step deadline that
bounds every call it makes, reads included: a call's retry budget is min(budget, time left in the step), its
connect and read timeouts are cut to the time left, a call is not sent (nor held by the rate limiter) past the
deadline, and a call still unanswered or refused when it comes raises `errors.StepTimedOut`, so the step ends at its
``--timeout`` whatever the workspace does. Inside a wait (`Client.poll`, itself capped by the step deadline) a call
retries only until the wait's deadline, so a wait ends with `WaitTimedOut` at its deadline even while the service
answers 503/429. One transfer that keeps streaming data (a large PUT) is not cut mid-stream: socket timeouts bound
each read or write, not a whole body.

Secrets: tokens live only in the auth object and the request headers; they never appear in a repr, an exception,
a log record or the request log. Service messages are scrubbed of known secret values before they are raised. A
token (or ``DATABRICKS_AZURE_RESOURCE_ID``) with a line break, whitespace, a control or non-Latin-1 character is
refused by name when auth is resolved (`azure_auth.header_value_from_environ`; leading and trailing ones too,
nothing is stripped), since the HTTP library's own refusal quotes the whole header.

A host on this machine (`is_loopback`) is the local workspace: an unreachable one gets a hint with the command that
starts it, a missing or refused (401/403) token a hint naming the token it takes (`LOCAL_WORKSPACE_TOKEN`, which the emulator takes by default).

Import note: in the test process ``databricks`` is databricks-sdk; load this module with
``helpers.load_module("databricks")``. Other modules take a `Client` as a parameter instead of importing this one.
"""
from __future__ import annotations

import base64
import contextlib
import dataclasses
import ipaddress
import logging
import os
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from email.utils import parsedate_to_datetime
from typing import IO, Any, TypeVar
from urllib.parse import quote, urlsplit

import requests
import requests.auth
from requests.adapters import HTTPAdapter

from . import azure_auth
from .errors import (
    ApiError,
    ConfigError,
    ConnectionFailed,
    InputError,
    StepTimedOut,
    UsageError,
    WaitTimedOut,
    api_error,
)

log = logging.getLogger("databricks_client")

DATABRICKS_SCOPE = "2ff814a6-3304-4ab8-85cb-cd0e6f879c1d/.default"
MANAGEMENT_SCOPE = "https://management.core.windows.net/.default"
REFRESH_MARGIN_SECONDS = 300
AUTH_CHOICES = azure_auth.DATABRICKS_CHOICES  # and azure_auth.ALIASES (the Databricks CLI names)
DEFAULT_TIMEOUT = (5.0, 60.0)
# Per call, never more than the step has left. Two minutes of a call being refused means the workspace is down or
# throttling hard; failing then with the last error beats waiting out the step's whole deadline on one call.
DEFAULT_RETRY_BUDGET_SECONDS = 120.0
DEFAULT_BACKOFF = (1.0, 10.0)
DEFAULT_POLL_SECONDS = (1.0, 10.0)
# A wait's last status read starts this long (at most a tenth of the wait) before its deadline, so that it is
# answered by the deadline: the wait then ends on time with the state it last saw.
LAST_READ_SECONDS = 1.0
# Shortest socket timeout a call inside a wait is given, even when the wait's deadline is (almost) there.
MIN_CALL_SECONDS = 0.1

# Requests per second per endpoint family, kept under the documented per-workspace limits (most specific prefix
# wins; a family missing here is not limited). Override with connect(rate_limits={...}) or deploy.rate_limits;
# a value of 0 or None switches a family off.
DEFAULT_RATE_LIMITS: dict[str, float] = {
    "workspace/import": 25,
    "workspace/export": 50,
    "workspace": 50,
    "dbfs": 25,
    "fs": 50,
    "clusters": 20,
    "libraries": 20,
    "jobs/runs/submit": 30,
    "jobs/runs/get": 80,
    "jobs": 20,
}

_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
_RETRY_ALWAYS = frozenset({429, 503})
_RETRY_IF_IDEMPOTENT = frozenset({500, 502, 504})
_T = TypeVar("_T")


# --- authentication ----------------------------------------------------------------------------------------


class Auth(requests.auth.AuthBase):
    """Adds credentials to each request. `describe` is safe to print; nothing here shows a token."""

    mode = "none"

    def __init__(self, description: str) -> None:
        self.description = description

    def headers(self) -> dict[str, str]:
        raise NotImplementedError

    def secrets(self) -> list[str]:
        """Values that must never be shown (scrubbed from relayed messages)."""
        return []

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers.update(self.headers())
        return request

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.mode}: {self.description}>"


class PatAuth(Auth):
    """A personal access token (or any bearer token given as-is)."""

    mode = "pat"

    def __init__(self, token: str, description: str = "personal access token from DATABRICKS_TOKEN") -> None:
        super().__init__(description)
        self._header = {"Authorization": f"Bearer {token}"}
        self._token = token

    def headers(self) -> dict[str, str]:
        return dict(self._header)

    def secrets(self) -> list[str]:
        return [self._token]


class EntraAuth(Auth):
    """Microsoft Entra ID tokens from an azure-identity credential, refreshed before they expire."""

    mode = "entra"

    def __init__(self, credential: Any, description: str, *, resource_id: str | None = None) -> None:
        super().__init__(description + (" + SP management headers" if resource_id else ""))
        self._credential = credential
        self._resource_id = resource_id
        self._lock = threading.Lock()
        self._tokens: dict[str, Any] = {}

    def _token(self, scope: str) -> str:
        with self._lock:
            cached = self._tokens.get(scope)
            if cached is None or cached.expires_on - time.time() < REFRESH_MARGIN_SECONDS:
                try:
                    cached = self._credential.get_token(scope)
                except Exception as error:  # azure-identity raises several unrelated classes
                    first = azure_auth.scrub(str(error)).strip().splitlines()
                    raise ConnectionFailed(
                        f"Entra ID login failed ({self.description}): {first[0] if first else type(error).__name__}",
                        hint="check the service connection / az login / AZURE_* variables, or use DATABRICKS_TOKEN",
                    ) from None
                problem = azure_auth.header_value_problem(str(cached.token))
                if problem:
                    raise ConnectionFailed(
                        f"Entra ID login ({self.description}) returned a token that cannot be sent: it {problem}",
                        hint="check the credential's source (AZURE_* variables, az login, the service connection)",
                    )
                self._tokens[scope] = cached
            return cached.token

    def headers(self) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self._token(DATABRICKS_SCOPE)}"}
        if self._resource_id:
            headers["X-Databricks-Azure-SP-Management-Token"] = self._token(MANAGEMENT_SCOPE)
            headers["X-Databricks-Azure-Workspace-Resource-Id"] = self._resource_id
        return headers

    def secrets(self) -> list[str]:
        with self._lock:
            return [token.token for token in self._tokens.values()]


def resolve_auth(auth: str | None = None, environ: Mapping[str, str] | None = None, *, host: str | None = None) -> Auth:
    """The `Auth` for ``--auth`` (else ``DATABRICKS_AUTH_TYPE``, else auto); see the module docstring.

    `host` (resolved) only shapes the hint when no credential is set: for the local workspace, its token."""
    environ = os.environ if environ is None else environ
    local = host is not None and _local_workspace_start(host) is not None
    mode = (auth or environ.get("DATABRICKS_AUTH_TYPE") or "auto").strip().lower()
    token = environ.get("DATABRICKS_TOKEN") or ""
    if mode == "auto" and token:
        mode = "pat"
    if mode == "pat":
        if not token:
            raise ConfigError(
                "no Databricks token: DATABRICKS_TOKEN is not set",
                hint=_local_token_hint() if local else
                "map the secret into the step's env (env: DATABRICKS_TOKEN: $(databricks-token)) or choose --auth",
            )
        return PatAuth(azure_auth.header_value_from_environ(environ, "DATABRICKS_TOKEN"))
    try:
        azure_mode = azure_auth.normalise_mode(mode)
    except UsageError:
        raise UsageError(
            f"unknown auth type {mode!r}", hint=f"use one of {', '.join(AUTH_CHOICES)} (--auth or DATABRICKS_AUTH_TYPE)"
        ) from None
    if azure_mode == "auto":
        try:
            azure_mode = azure_auth.detect(environ)
        except UsageError as error:
            raise ConfigError(
                "no Databricks credentials found: DATABRICKS_TOKEN is not set and no Entra ID login was detected",
                hint=_local_token_hint() if local else
                (f"set DATABRICKS_TOKEN, or {error.hint}" if error.hint else "set DATABRICKS_TOKEN or choose --auth"),
            ) from None
    credential, description = azure_auth.credential(azure_mode, environ)
    resource_id = azure_auth.header_value_from_environ(environ, "DATABRICKS_AZURE_RESOURCE_ID") or None
    return EntraAuth(credential, f"Entra ID via {description}", resource_id=resource_id)


# --- host and remote paths ---------------------------------------------------------------------------------


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
    after_host = {"a path": parts.path not in ("", "/"), "a query ('?...')": "?" in value,
                  "a fragment ('#...')": "#" in value}
    found = [what for what, present in after_host.items() if present]
    if found:
        raise invalid(f"it has {' and '.join(found)}; a workspace URL is only scheme://host[:port]",
                      hint=f"keep only the part up to the host name (and port), e.g. {_HOST_EXAMPLE}")
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
    return (f"is the local workspace running? start it with: {start} (add --state-dir DIR to keep its state), "
            "or check --host / DATABRICKS_HOST")


def _local_token_hint() -> str:
    return (f"the local workspace takes DATABRICKS_TOKEN={LOCAL_WORKSPACE_TOKEN} unless it was started with --token or "
            "$LOCAL_WORKSPACE_TOKEN, then that value")


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
        kind, body = "dbfs", text[len("dbfs:"):]
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
        raise InputError(f"remote path {text!r} is not inside a volume", hint="use /Volumes/<catalog>/<schema>/<volume>/...")
    normalised = text.rstrip("/") if len(text) > 1 and not text.endswith(":/") else text
    if kind == "workspace" and not normalised.startswith("/Workspace"):
        normalised = "/Workspace" + normalised  # the Files and Libraries APIs need the /Workspace form
    return RemotePath(kind, normalised)


# --- rate limiting -----------------------------------------------------------------------------------------


class RateLimiter:
    """Token buckets per endpoint family (requests per second, burst of one second's worth).

    A caller reserves a token and sleeps until its slot, so concurrent threads are spaced out evenly instead of
    bouncing off 429s. Families are path prefixes after ``/api/<version>/``; the most specific one applies.
    """

    def __init__(self, limits: Mapping[str, float | None]) -> None:
        self._lock = threading.Lock()
        self._rates = {family.strip("/"): float(rate) for family, rate in limits.items() if rate}
        self._tokens = {family: max(1.0, rate) for family, rate in self._rates.items()}
        self._stamp = {family: time.monotonic() for family in self._rates}
        self._families = sorted(self._rates, key=len, reverse=True)

    def family(self, path: str) -> str | None:
        match = re.match(r"^/api/[^/]+/(.*)$", path)
        rest = match.group(1) if match else path.lstrip("/")
        for family in self._families:
            if rest == family or rest.startswith(family + "/"):
                return family
        return None

    def reserve(self, path: str) -> float:
        """Take a token for `path`; return how many seconds to wait before sending."""
        family = self.family(path)
        if family is None:
            return 0.0
        rate = self._rates[family]
        with self._lock:
            now = time.monotonic()
            self._tokens[family] = min(max(1.0, rate), self._tokens[family] + (now - self._stamp[family]) * rate)
            self._stamp[family] = now
            self._tokens[family] -= 1.0
            return 0.0 if self._tokens[family] >= 0 else -self._tokens[family] / rate

    def wait(self, path: str) -> None:
        delay = self.reserve(path)
        if delay > 0:
            time.sleep(delay)


# --- the client --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Stats:
    """What a client did, for the scripts' summaries."""

    requests: int = 0
    retries: int = 0
    throttled: int = 0


class Client:
    """A Databricks workspace: `request` (the one retry loop), `get`/`post`, and typed helpers per API family."""

    def __init__(
        self,
        host: str,
        auth: Auth,
        *,
        concurrency: int = 8,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        retry_budget_seconds: float = DEFAULT_RETRY_BUDGET_SECONDS,
        backoff: tuple[float, float] = DEFAULT_BACKOFF,
        rate_limits: Mapping[str, float | None] | None = None,
        poll_seconds: tuple[float, float] = DEFAULT_POLL_SECONDS,
        read_only: bool = False,
        step_timeout: float | None = None,
    ) -> None:
        self.host = host
        self.auth = auth
        self.concurrency = max(1, int(concurrency))
        self.timeout = timeout
        self.retry_budget_seconds = float(retry_budget_seconds)
        # The step's deadline (None: no deadline), counted from now: every call made through this client ends by it.
        self.step_timeout = float(step_timeout) if step_timeout is not None else None
        self.step_deadline = time.monotonic() + self.step_timeout if self.step_timeout is not None else None
        self.backoff = backoff
        self.poll_seconds = poll_seconds
        self.read_only = read_only
        self.stats = Stats()
        self._reached = False
        self._unreachable_hint = _unreachable_hint(host)
        self._local = _local_workspace_start(host) is not None
        self._stats_lock = threading.Lock()
        self._waiting = threading.local()  # .deadline: the monotonic deadline of the wait this thread is in
        limits = dict(DEFAULT_RATE_LIMITS)
        limits.update(rate_limits or {})
        self.rate_limiter = RateLimiter(limits)
        self._session = requests.Session()
        self._session.trust_env = True
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=self.concurrency, pool_block=True, max_retries=0)
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        self._session.headers["User-Agent"] = f"databricks-ci-cd/1.0 python-requests/{requests.__version__}"
        self.workspace = Workspace(self)
        self.dbfs = Dbfs(self)
        self.files = Files(self)
        self.clusters = Clusters(self)
        self.libraries = Libraries(self)
        self.jobs = Jobs(self)

    def __repr__(self) -> str:
        return f"<dbclient.Client {self.host} auth={self.auth.description!r}>"

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the step's deadline --

    def time_left(self) -> float | None:
        """Seconds until the step's deadline (negative once passed), or None when the client has no deadline."""
        return None if self.step_deadline is None else self.step_deadline - time.monotonic()

    def check_deadline(self, what: str) -> None:
        """Raise `StepTimedOut` if the step's deadline has passed (long loops call this between their calls)."""
        left = self.time_left()
        if left is not None and left <= 0:
            raise self._step_timed_out(f"{what} was not done")

    def _step_timed_out(self, what: str, attempts: int = 0) -> StepTimedOut:
        tried = f" after {attempts} attempts" if attempts > 1 else ""
        return StepTimedOut(
            f"step deadline reached (--timeout {round(self.step_timeout or 0, 1):g}s){tried}: {what}",
            hint="raise --timeout (or deploy.timeout_seconds), or run the step again when the workspace answers",
        )

    # -- the one place that sends and retries --

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        data: bytes | IO[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        stream: bool = False,
    ) -> requests.Response:
        """Send one API call, retrying per the module's policy; return the 2xx response or raise `ApiError`.

        `body` is sent as JSON, `data` as raw bytes or a file (streamed; rewound before a retry if seekable).
        `idempotent` defaults to True for GET/HEAD/PUT/DELETE and False for POST.
        """
        method = method.upper()
        if self.read_only and method not in ("GET", "HEAD"):
            raise RuntimeError(f"dry run: refusing to send {method} {path}")  # a bug in the caller, not a user error
        if idempotent is None:
            idempotent = method in _IDEMPOTENT_METHODS
        rewind_to = None
        if data is not None and hasattr(data, "read"):
            try:
                rewind_to = data.tell() if data.seekable() else None
            except (AttributeError, OSError):
                rewind_to = None
        replayable = data is None or isinstance(data, (bytes, bytearray)) or rewind_to is not None
        url = self.host + quote(path, safe="/:@!$&'()*+,;=-._~")
        clean_params = {key: _param(value) for key, value in (params or {}).items() if value is not None}
        started = time.monotonic()
        # Which deadline ends the retries: the call's own budget, the step's deadline when that comes first (a
        # budget never outlasts the step), or inside a wait (`poll`) the wait's deadline (never past the step's).
        deadline, bound_by = started + self.retry_budget_seconds, "budget"
        if self.step_deadline is not None and self.step_deadline < deadline:
            deadline, bound_by = self.step_deadline, "step"
        wait_deadline = getattr(self._waiting, "deadline", None)
        if wait_deadline is not None and wait_deadline <= deadline:
            deadline, bound_by = wait_deadline, "wait"
        bound_by_wait = bound_by == "wait"
        what = f"{method} {path}"
        attempt = 0
        while True:
            attempt += 1
            self._pace(path, what, attempt)
            if attempt > 1 and rewind_to is not None:
                data.seek(rewind_to)  # type: ignore[union-attr]
            now = time.monotonic()
            if self.step_deadline is not None and now >= self.step_deadline:
                raise self._step_timed_out(f"{what} was not sent", attempt - 1)
            timeout = self.timeout
            if bound_by != "budget":
                # Socket timeouts cut to the time left, so no answer is awaited past the deadline.
                left = max(MIN_CALL_SECONDS, deadline - now)
                timeout = (min(self.timeout[0], left), min(self.timeout[1], left))
            cut = timeout != self.timeout
            self._count(requests=1, retries=1 if attempt > 1 else 0)
            retry_after = None
            timed_out = False
            try:
                response = self._session.request(
                    method,
                    url,
                    params=clean_params or None,
                    json=body if data is None and body is not None else None,
                    data=data,
                    headers=dict(headers or {}),
                    timeout=timeout,
                    auth=self.auth,
                    stream=stream,
                    allow_redirects=False,
                )
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as error:
                timed_out = isinstance(error, requests.Timeout)
                kind = "timed out" if isinstance(error, requests.Timeout) else "connection failed"
                failure: Exception = ConnectionFailed(
                    f"{method} {path}: {kind} ({type(error).__name__}) talking to {self.host}",
                    hint=self._unreachable_hint,
                )
                # Until the host has answered once, a failed connection most likely means a wrong host: fail fast.
                retryable = idempotent and (self._reached or attempt < 3)
            except (ValueError, UnicodeError) as error:
                # The request could not even be built or sent (a header value HTTP cannot carry, a bad URL). The
                # library's message may quote the header, i.e. the token: say what kind of problem it is instead.
                raise UsageError(
                    f"{method} {path}: the request cannot be sent: {self._unsendable(error)}",
                    hint="check DATABRICKS_TOKEN, DATABRICKS_AZURE_RESOURCE_ID and the host for stray characters",
                ) from None
            else:
                self._reached = True
                log.debug("%s %s -> %s (attempt %d)", method, path, response.status_code, attempt)
                if response.status_code < 300:
                    return response  # redirects are not followed: a workspace API never redirects, a login page does
                failure = self._error(response, method, path)
                status = response.status_code
                if status == 429:
                    self._count(throttled=1)
                retryable = status in _RETRY_ALWAYS or (idempotent and status in _RETRY_IF_IDEMPOTENT)
                retry_after = _retry_after(response.headers.get("Retry-After"))
                response.close()
            if retryable and replayable:
                delay = self._delay(attempt, retry_after)
                now = time.monotonic()
                if now + delay <= deadline:
                    log.info("retrying %s %s in %.1fs after: %s", method, path, delay, failure)
                    time.sleep(delay)
                    continue
                if bound_by_wait:
                    # The wait ends at its deadline, not earlier: use the time left, then let `poll` report it.
                    time.sleep(max(0.0, deadline - now))
                    raise _WaitDeadlinePassed(failure, attempt)
                if bound_by == "step":
                    # No retry fits before the step's deadline: end now, saying so, instead of waiting for it.
                    raise self._step_timed_out(getattr(failure, "message", str(failure)), attempt) from None
            if bound_by == "step" and timed_out and cut:
                # A call that may not be repeated (a POST) got no answer because its timeout was cut to the deadline.
                raise self._step_timed_out(getattr(failure, "message", str(failure)), attempt) from None
            if attempt > 1 and isinstance(failure, (ApiError, ConnectionFailed)):
                note = f"gave up after {attempt} attempts in {time.monotonic() - started:.0f}s"
                if retryable and replayable:
                    note += f", retry budget {self.retry_budget_seconds:g}s"
                failure.hint = f"{note}; {failure.hint}" if failure.hint else note
            raise failure

    def _pace(self, path: str, what: str, attempt: int) -> None:
        """Wait for the client-side rate limiter's slot, unless that slot lies past the step's deadline."""
        delay = self.rate_limiter.reserve(path)
        if delay <= 0:
            return
        left = self.time_left()
        if left is not None and delay >= left:
            raise self._step_timed_out(f"{what} was not sent (the client-side rate limit holds it past the deadline)", attempt - 1)
        time.sleep(delay)

    def _unsendable(self, error: Exception) -> str:
        text = str(error)
        if isinstance(error, (UnicodeError, requests.exceptions.InvalidHeader)) or "header" in text.lower():
            return f"a header value has a character HTTP does not allow ({type(error).__name__})"
        lines = azure_auth.scrub(text, self.auth.secrets()).strip().splitlines()
        return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        initial, maximum = self.backoff
        if retry_after is not None:
            return retry_after + random.uniform(0, min(1.0, initial))
        ceiling = min(maximum, initial * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)

    def _count(self, **increments: int) -> None:
        with self._stats_lock:
            for name, value in increments.items():
                setattr(self.stats, name, getattr(self.stats, name) + value)

    def _error(self, response: requests.Response, method: str, path: str) -> ApiError:
        error_code, message = None, ""
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if isinstance(payload, dict):
            error_code = payload.get("error_code")
            message = str(payload.get("message") or payload.get("error") or "")
        if not message:
            text = response.text or ""
            found = re.search(r"<pre>(.*?)</pre>", text, re.S) or re.search(r"<title>(.*?)</title>", text, re.S)
            message = (found.group(1) if found else text).strip() or response.reason or f"HTTP {response.status_code}"
        message = " ".join(message.split())
        if len(message) > 500:
            message = message[:500] + "..."
        message = azure_auth.scrub(message, self.auth.secrets())
        error = api_error(response.status_code, error_code, message, method=method, path=path)
        if self._local and response.status_code in (401, 403):
            error.hint = _local_token_hint()
        return error

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """GET a JSON API; `{}` for an empty body."""
        return _json(self.request("GET", path, params=params))

    def post(self, path: str, body: Mapping[str, Any] | None = None, *, idempotent: bool = False) -> dict[str, Any]:
        """POST JSON; say `idempotent=True` when repeating the call has the same effect (then it is retried)."""
        return _json(self.request("POST", path, body=dict(body or {}), idempotent=idempotent))

    def me(self) -> dict[str, Any]:
        """The calling identity (SCIM Me): ``userName``, ``id``, ``displayName``..."""
        return self.get("/api/2.0/preview/scim/v2/Me")

    # -- waiting --

    @contextlib.contextmanager
    def _within(self, deadline: float) -> Iterator[None]:
        """Calls made by this thread inside the block retry no later than `deadline` (nested waits: the earlier)."""
        outer = getattr(self._waiting, "deadline", None)
        self._waiting.deadline = deadline if outer is None else min(outer, deadline)
        try:
            yield
        finally:
            self._waiting.deadline = outer

    def poll(
        self,
        fetch: Callable[[], _T],
        done: Callable[[_T], bool],
        *,
        timeout: float,
        what: str,
        describe: Callable[[_T], str] = str,
        on_poll: Callable[[_T, float], None] | None = None,
    ) -> _T:
        """Call `fetch` until `done(value)` is true (it may raise to fail early), or raise `WaitTimedOut`.

        The wait's deadline is `timeout` from now, or the step's deadline when that comes first (then it raises
        `StepTimedOut`, a `WaitTimedOut`). Sleeps grow from `poll_seconds[0]` to `poll_seconds[1]`; the last status
        read starts `LAST_READ_SECONDS` (at most a tenth of the wait) before the deadline, so the wait ends at its
        deadline with the state that read saw. Each `fetch` retries only until the deadline: a status call still
        refused (503/429/timeouts) when it comes ends the wait then, not after the call's own retry budget.
        `on_poll(value, elapsed_seconds)` is called after every fetch (progress reporting).
        """
        started = time.monotonic()
        deadline = started + timeout
        step_bound = self.step_deadline is not None and self.step_deadline <= deadline
        if step_bound:
            deadline = self.step_deadline
        last_read = deadline - min(LAST_READ_SECONDS, max(0.0, deadline - started) / 10)
        limit = f"{round(self.step_timeout or 0, 1):g}s, the step's --timeout" if step_bound else f"{round(timeout, 1):g}s"
        timed_out = StepTimedOut if step_bound else WaitTimedOut
        interval, maximum = self.poll_seconds
        while True:
            try:
                with self._within(deadline):
                    value = fetch()
            except _WaitDeadlinePassed as passed:
                raise timed_out(
                    f"{what}: the workspace was still refusing at the deadline ({limit}; the last call "
                    f"tried {passed.attempts} times): {passed.failure.message}",
                    hint="raise --timeout, or run the step again when the workspace answers",
                ) from None
            if done(value):
                return value
            now = time.monotonic()
            if on_poll is not None:
                on_poll(value, now - started)
            if now >= last_read:
                raise timed_out(
                    f"{what}: still {describe(value)} after {now - started:.0f}s (deadline {limit})",
                    hint="raise --timeout, or look at it in the workspace",
                )
            time.sleep(min(interval, last_read - now))
            interval = min(maximum, interval * 1.5)


class _WaitDeadlinePassed(Exception):
    """Internal: a call inside `Client.poll` was still failing (retryably) when the wait's deadline came."""

    def __init__(self, failure: Exception, attempts: int) -> None:
        super().__init__(str(failure))
        self.failure = failure
        self.attempts = attempts


def _param(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _json(response: requests.Response) -> dict[str, Any]:
    if not response.content:
        return {}
    try:
        payload = response.json()
    except ValueError:
        raise ApiError(
            "the answer is not JSON (is --host a Databricks workspace?)",
            status=response.status_code,
            method=response.request.method or "",
            path=urlsplit(response.request.url or "").path,
        ) from None
    return payload if isinstance(payload, dict) else {"value": payload}


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


# --- typed helpers per API family --------------------------------------------------------------------------


class _Family:
    def __init__(self, client: Client) -> None:
        self._client = client


class Workspace(_Family):
    """Workspace API 2.0: notebooks, files and folders under /Workspace (and /Users, /Shared...)."""

    def import_(
        self,
        path: str,
        content: bytes,
        *,
        format: str = "SOURCE",
        language: str | None = None,
        overwrite: bool = True,
    ) -> None:
        """Import one object (JSON, base64). With overwrite the call is idempotent and retried."""
        body = {"path": path, "format": format, "overwrite": overwrite, "content": base64.b64encode(content).decode()}
        if language:
            body["language"] = language
        self._client.post("/api/2.0/workspace/import", body, idempotent=overwrite)

    def export(self, path: str, *, format: str = "SOURCE") -> bytes:
        answer = self._client.get("/api/2.0/workspace/export", {"path": path, "format": format})
        return base64.b64decode(answer.get("content") or "")

    def mkdirs(self, path: str) -> None:
        self._client.post("/api/2.0/workspace/mkdirs", {"path": path}, idempotent=True)

    def list(self, path: str) -> list[dict[str, Any]]:
        """Objects directly in a folder (``objects`` is omitted for an empty folder: then [])."""
        return list(self._client.get("/api/2.0/workspace/list", {"path": path}).get("objects") or [])

    def get_status(self, path: str) -> dict[str, Any]:
        return self._client.get("/api/2.0/workspace/get-status", {"path": path})

    def delete(self, path: str, *, recursive: bool = False) -> None:
        self._client.post("/api/2.0/workspace/delete", {"path": path, "recursive": recursive}, idempotent=True)


DBFS_BLOCK_SIZE = 1024 * 1024
DBFS_UPLOAD_ATTEMPTS = 3


class Dbfs(_Family):
    """DBFS API 2.0 (legacy; prefer Volumes or workspace files). Paths may carry ``dbfs:``."""

    @staticmethod
    def _path(path: str) -> str:
        return path[len("dbfs:"):] if path.startswith("dbfs:") else path

    def put(self, path: str, content: bytes, *, overwrite: bool = True) -> None:
        """One-call upload of at most 1 MB."""
        body = {"path": self._path(path), "contents": base64.b64encode(content).decode(), "overwrite": overwrite}
        self._client.post("/api/2.0/dbfs/put", body, idempotent=overwrite)

    def create(self, path: str, *, overwrite: bool = True) -> int:
        answer = self._client.post("/api/2.0/dbfs/create", {"path": self._path(path), "overwrite": overwrite})
        return int(answer["handle"])

    def add_block(self, handle: int, data: bytes) -> None:
        """Append a block (≤ 1 MB). Not idempotent: retried only on 429/503, never after a lost connection."""
        self._client.post("/api/2.0/dbfs/add-block", {"handle": handle, "data": base64.b64encode(data).decode()})

    def close(self, handle: int) -> None:
        self._client.post("/api/2.0/dbfs/close", {"handle": handle})

    def upload(self, path: str, stream: IO[bytes], *, overwrite: bool = True, block_size: int = DBFS_BLOCK_SIZE) -> int:
        """Streamed create → add-block per 1 MB → close; memory independent of the file size. Returns bytes sent.

        An ``add-block`` whose answer was lost cannot be repeated (it appends), so after a lost connection a
        seekable, overwriting upload starts again from ``create`` — at most `DBFS_UPLOAD_ATTEMPTS` times."""
        try:
            start = stream.tell() if overwrite and stream.seekable() else None
        except (AttributeError, OSError):
            start = None
        for attempt in range(1, DBFS_UPLOAD_ATTEMPTS + 1):
            try:
                return self._upload_once(path, stream, overwrite=overwrite, block_size=block_size)
            except ConnectionFailed:
                if start is None or attempt == DBFS_UPLOAD_ATTEMPTS:
                    raise
                self._client._count(retries=1)
                stream.seek(start)
        raise AssertionError("unreachable")

    def _upload_once(self, path: str, stream: IO[bytes], *, overwrite: bool, block_size: int) -> int:
        handle = self.create(path, overwrite=overwrite)
        sent = 0
        while True:
            block = stream.read(block_size)
            if not block:
                break
            self.add_block(handle, block)
            sent += len(block)
        self.close(handle)
        return sent

    def get_status(self, path: str) -> dict[str, Any]:
        return self._client.get("/api/2.0/dbfs/get-status", {"path": self._path(path)})

    def list(self, path: str) -> list[dict[str, Any]]:
        return list(self._client.get("/api/2.0/dbfs/list", {"path": self._path(path)}).get("files") or [])

    def mkdirs(self, path: str) -> None:
        self._client.post("/api/2.0/dbfs/mkdirs", {"path": self._path(path)}, idempotent=True)

    def delete(self, path: str, *, recursive: bool = False) -> None:
        self._client.post("/api/2.0/dbfs/delete", {"path": self._path(path), "recursive": recursive}, idempotent=True)

    def read(self, path: str, *, offset: int = 0, length: int = DBFS_BLOCK_SIZE) -> bytes:
        answer = self._client.get("/api/2.0/dbfs/read", {"path": self._path(path), "offset": offset, "length": length})
        return base64.b64decode(answer.get("data") or "")


@dataclasses.dataclass(frozen=True)
class FileMetadata:
    """What ``HEAD fs/files`` says about a file."""

    path: str
    size: int | None
    last_modified: str | None
    content_type: str | None


class Files(_Family):
    """Files API 2.0 for /Volumes/... and /Workspace/... files: streamed uploads and downloads."""

    @staticmethod
    def _url(kind: str, path: str) -> str:
        return f"/api/2.0/fs/{kind}{path if path.startswith('/') else '/' + path}"

    def upload(self, path: str, content: bytes | IO[bytes], *, overwrite: bool = True) -> None:
        """PUT the bytes or the (seekable) file, streamed; with overwrite the call is retried after a failure."""
        self._client.request(
            "PUT",
            self._url("files", path),
            params={"overwrite": overwrite},
            data=content,
            headers={"Content-Type": "application/octet-stream"},
            idempotent=overwrite,
        )

    def head(self, path: str) -> FileMetadata | None:
        """Metadata of a file, or None when it does not exist."""
        from .errors import NotFound

        try:
            response = self._client.request("HEAD", self._url("files", path))
        except NotFound:
            return None
        size = response.headers.get("Content-Length")
        return FileMetadata(
            path=path,
            size=int(size) if size and size.isdigit() else None,
            last_modified=response.headers.get("Last-Modified"),
            content_type=response.headers.get("Content-Type"),
        )

    def get(self, path: str) -> bytes:
        return self._client.request("GET", self._url("files", path)).content

    def download(self, path: str, destination: IO[bytes], *, chunk_size: int = DBFS_BLOCK_SIZE) -> int:
        """Stream a file into `destination`; returns the bytes written."""
        written = 0
        with self._client.request("GET", self._url("files", path), stream=True) as response:
            for chunk in response.iter_content(chunk_size):
                destination.write(chunk)
                written += len(chunk)
                self._client.check_deadline(f"GET {self._url('files', path)} (download)")
        return written

    def mkdirs(self, path: str) -> None:
        self._client.request("PUT", self._url("directories", path))

    def list_directory(self, path: str) -> Iterator[dict[str, Any]]:
        """Entries of a directory (``path``, ``name``, ``is_directory``, ``file_size``, ``last_modified``), all pages."""
        token = None
        while True:
            answer = self._client.get(self._url("directories", path), {"page_token": token})
            yield from answer.get("contents") or []
            token = answer.get("next_page_token")
            if not token:
                return

    def delete(self, path: str) -> None:
        self._client.request("DELETE", self._url("files", path))


class Clusters(_Family):
    """Clusters API 2.0: read, start, restart, edit, and wait for a state under a deadline."""

    def get(self, cluster_id: str) -> dict[str, Any]:
        """The cluster's details; `ResourceDoesNotExist` for an unknown id (the service answers 400)."""
        return self._client.get("/api/2.0/clusters/get", {"cluster_id": cluster_id})

    def start(self, cluster_id: str) -> None:
        """Start a TERMINATED cluster (a start that raced with another answers `InvalidState`)."""
        self._transition("/api/2.0/clusters/start", cluster_id)

    def restart(self, cluster_id: str) -> None:
        """Restart a RUNNING cluster."""
        self._transition("/api/2.0/clusters/restart", cluster_id)

    def _transition(self, path: str, cluster_id: str) -> None:
        # start/restart are not idempotent (a second restart is a second restart), so a lost answer is not
        # blindly repeated: look at the cluster first, and send again only if the first call did not land.
        try:
            self._client.post(path, {"cluster_id": cluster_id})
        except ConnectionFailed:
            if self.get(cluster_id).get("state") in ("PENDING", "RESTARTING"):
                return
            self._client.post(path, {"cluster_id": cluster_id})

    def edit(self, spec: Mapping[str, Any]) -> None:
        """Replace the cluster's configuration with `spec` (a full spec: start from `cluster_spec.editable_spec`)."""
        self._client.post("/api/2.0/clusters/edit", dict(spec), idempotent=True)

    def wait_for_state(
        self,
        cluster_id: str,
        states: tuple[str, ...] = ("RUNNING",),
        *,
        timeout: float,
        fail_states: tuple[str, ...] = ("ERROR", "TERMINATED", "TERMINATING", "UNKNOWN"),
        on_poll: Callable[[dict[str, Any], float], None] | None = None,
    ) -> dict[str, Any]:
        """Poll until the cluster is in one of `states`; `OperationFailed` in a fail state, `WaitTimedOut` at the deadline."""
        from .errors import OperationFailed

        def done(details: dict[str, Any]) -> bool:
            state = details.get("state", "UNKNOWN")
            if state in states:
                return True
            if state in fail_states:
                reason = details.get("state_message") or (details.get("termination_reason") or {}).get("code") or ""
                raise OperationFailed(
                    f"cluster {cluster_id} is {state} while waiting for {'/'.join(states)}"
                    + (f": {' '.join(str(reason).split())}" if reason else "")
                )
            return False

        return self._client.poll(
            lambda: self.get(cluster_id),
            done,
            timeout=timeout,
            what=f"cluster {cluster_id} did not reach {'/'.join(states)}",
            describe=lambda details: details.get("state", "UNKNOWN"),
            on_poll=on_poll,
        )


class Libraries(_Family):
    """Libraries API 2.0. A library is a dict like ``{"whl": "/Volumes/.../x.whl"}`` or ``{"pypi": {"package": ...}}``."""

    def install(self, cluster_id: str, libraries: list[Mapping[str, Any]]) -> None:
        self._client.post(
            "/api/2.0/libraries/install", {"cluster_id": cluster_id, "libraries": list(libraries)}, idempotent=True
        )

    def uninstall(self, cluster_id: str, libraries: list[Mapping[str, Any]]) -> None:
        self._client.post(
            "/api/2.0/libraries/uninstall", {"cluster_id": cluster_id, "libraries": list(libraries)}, idempotent=True
        )

    def cluster_status(self, cluster_id: str) -> list[dict[str, Any]]:
        """``library_statuses`` of the cluster ([] when none): each has ``library``, ``status``, ``messages``."""
        answer = self._client.get("/api/2.0/libraries/cluster-status", {"cluster_id": cluster_id})
        return list(answer.get("library_statuses") or [])


RUN_TERMINAL_STATES = ("TERMINATED", "SKIPPED", "INTERNAL_ERROR")


class Jobs(_Family):
    """Jobs API 2.1: one-off runs (``runs/submit`` with an idempotency token), their state and output."""

    def submit(self, spec: Mapping[str, Any], *, idempotency_token: str | None = None) -> int:
        """Submit a one-time run; returns its run_id. The idempotency token (a fresh one unless given) makes the
        call safe to retry: the service answers a repeated submit with the same run."""
        body = dict(spec)
        body["idempotency_token"] = idempotency_token or body.get("idempotency_token") or uuid.uuid4().hex
        answer = self._client.post("/api/2.1/jobs/runs/submit", body, idempotent=True)
        return int(answer["run_id"])

    def get_run(self, run_id: int) -> dict[str, Any]:
        return self._client.get("/api/2.1/jobs/runs/get", {"run_id": run_id})

    def get_output(self, run_id: int) -> dict[str, Any]:
        """Output of a task run (for a multi-task run, call it with each ``tasks[i].run_id``)."""
        return self._client.get("/api/2.1/jobs/runs/get-output", {"run_id": run_id})

    def cancel_run(self, run_id: int) -> None:
        self._client.post("/api/2.1/jobs/runs/cancel", {"run_id": run_id}, idempotent=True)

    def wait_for_run(
        self, run_id: int, *, timeout: float, on_poll: Callable[[dict[str, Any], float], None] | None = None
    ) -> dict[str, Any]:
        """Poll until the run is in a terminal life-cycle state; returns the run (check ``state.result_state``)."""
        return self._client.poll(
            lambda: self.get_run(run_id),
            lambda run: (run.get("state") or {}).get("life_cycle_state") in RUN_TERMINAL_STATES,
            timeout=timeout,
            what=f"run {run_id} did not finish",
            describe=lambda run: (run.get("state") or {}).get("life_cycle_state", "UNKNOWN"),
            on_poll=on_poll,
        )


# --- construction ------------------------------------------------------------------------------------------


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

