"""Every HTTP call to Databricks: host, authentication, session, timeouts, retries, rate limits and errors.

Owns the wire: one `requests.Session` per client (one client per workspace host) with a connection pool sized to
the concurrency, a (connect, read) timeout on every call, ONE retry loop (`Client.request`), an adaptive rate
controller per endpoint family, and the mapping of error answers to the `errors.ApiError` family. On top of that,
small typed helpers per API family (`client.workspace`, `.dbfs`, `.files`, `.clusters`, `.libraries`, `.jobs`,
`.me()`) and one deadline-bounded waiter (`Client.poll`). It does not decide what to deploy (scripts and their
modules do) and does not choose Azure credentials (`azure_auth.py` does). README "Talking to Databricks" is the
user's side of all this.

The package, one responsibility a module (imports point one way: this file → `connect` → `api` → `transport` →
`rate`, `retry`, `auth`, `hosts`, `paths`):

* `auth.py` — credentials: `Auth`, `PatAuth`, `EntraAuth`, `resolve_auth`.
* `hosts.py` — the host: `resolve_host` and its checks, `is_loopback`, the local-workspace hints.
* `paths.py` — remote paths: `RemotePath`, `remote_path`.
* `rate.py` — how fast calls are sent: `AdaptiveRate` (a window per endpoint family that backs off on 429 and
  climbs back) and `RateLimiter` (the fixed caps of ``deploy.rate_limits``), with an injectable clock.
* `retry.py` — the one retry policy: the classifier `classify`, `RetryPolicy` (with an injectable clock).
* `transport.py` — `Transport`, the base of `Client`: session, one attempt, the retry loop, deadlines, stats,
  `poll`, `get`/`post`/`me`.
* `api.py` — `Client` and the API families `Workspace`, `Dbfs`, `Files`, `Clusters`, `Libraries`, `Jobs`,
  `Listings`.
* `connect.py` — `connect` (a step calls it through `cicdkit.settings.connect`).

Callers use ``from cicdkit import dbclient`` and ``dbclient.X``: every name they need is re-exported here.

Authentication (``--auth``, else ``DATABRICKS_AUTH_TYPE``, else ``auto``; `auth.py`):

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

Retry policy (`retry.py`; the loop that applies it is `Client.request`): 429 and 503 are retried for every call,
honouring ``Retry-After`` (else exponential backoff with jitter); 500/502/504, connection errors and timeouts only
for idempotent calls (GET, HEAD, PUT, DELETE, and POSTs declared idempotent: ``mkdirs``, overwriting imports,
``runs/submit`` with its ``idempotency_token``...); all within a total retry budget per call (default
`DEFAULT_RETRY_BUDGET_SECONDS`, 120 s), after which the last error is raised saying how many attempts were made.
Until the host has answered once, a failed connection is retried only twice (a wrong ``--host`` fails in seconds,
not minutes). Request bodies that are files are rewound before a retry.

Rate (`rate.py`): each endpoint family (imports, the rest of the workspace API, Files, DBFS, jobs runs, ...) may
have as many calls in flight as the step's concurrency; a 429 / ``REQUEST_LIMIT_EXCEEDED`` halves that window and
holds the family for the answer's ``Retry-After``, a run of successes grows it by one again. ``deploy.rate_limits``
adds fixed caps in requests per second (none by default).

Deadlines: a client made for a step (`settings.connect`, from the step's ``--timeout``) has a step deadline that
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
starts it, a missing or refused (401/403) token a hint naming the token it takes (`LOCAL_WORKSPACE_TOKEN`, which the
emulator takes by default).

Import note: the package is ``cicdkit.dbclient``, so it shadows no installed distribution and a step can
``import databricks.sdk`` next to it. Other library modules take a `Client` as a parameter instead of importing it.
"""

from __future__ import annotations

from .api import (
    DBFS_BLOCK_SIZE,
    DBFS_UPLOAD_ATTEMPTS,
    RUN_TERMINAL_STATES,
    Client,
    Clusters,
    Dbfs,
    FileMetadata,
    Files,
    Jobs,
    Libraries,
    Listings,
    Permissions,
    Workspace,
)
from .auth import (
    AUTH_CHOICES,
    DATABRICKS_SCOPE,
    MANAGEMENT_SCOPE,
    REFRESH_MARGIN_SECONDS,
    Auth,
    EntraAuth,
    PatAuth,
    resolve_auth,
)
from .connect import connect
from .hosts import LOCAL_WORKSPACE_TOKEN, is_loopback, resolve_host
from .hosts import _unreachable_hint as _unreachable_hint  # the tests check the hint
from .paths import RemotePath, remote_path
from .rate import DEFAULT_RATE_LIMITS, FAMILIES, AdaptiveRate, RateLimiter
from .retry import (
    DEFAULT_BACKOFF,
    DEFAULT_RETRY_BUDGET_SECONDS,
    MIN_CALL_SECONDS,
    RetryPolicy,
    Verdict,
    classify,
)
from .transport import DEFAULT_POLL_SECONDS, DEFAULT_TIMEOUT, LAST_READ_SECONDS, Stats, Transport

__all__ = [
    "AUTH_CHOICES",
    "AdaptiveRate",
    "DATABRICKS_SCOPE",
    "DBFS_BLOCK_SIZE",
    "DBFS_UPLOAD_ATTEMPTS",
    "DEFAULT_BACKOFF",
    "DEFAULT_POLL_SECONDS",
    "DEFAULT_RATE_LIMITS",
    "DEFAULT_RETRY_BUDGET_SECONDS",
    "DEFAULT_TIMEOUT",
    "FAMILIES",
    "LAST_READ_SECONDS",
    "LOCAL_WORKSPACE_TOKEN",
    "MANAGEMENT_SCOPE",
    "MIN_CALL_SECONDS",
    "REFRESH_MARGIN_SECONDS",
    "RUN_TERMINAL_STATES",
    "Auth",
    "Client",
    "Clusters",
    "Dbfs",
    "EntraAuth",
    "FileMetadata",
    "Files",
    "Jobs",
    "Libraries",
    "Permissions",
    "Listings",
    "PatAuth",
    "RateLimiter",
    "RemotePath",
    "RetryPolicy",
    "Stats",
    "Transport",
    "Verdict",
    "Workspace",
    "classify",
    "connect",
    "is_loopback",
    "remote_path",
    "resolve_auth",
    "resolve_host",
]
