"""Local workspace: an embedded emulator of the Databricks REST API for tests, benchmarks and local pipeline runs.

Served under every API-version prefix real clients use (README, "Local workspace"):
Workspace 2.0, DBFS 2.0, Files 2.0 (/Volumes and /Workspace, fs/endpoints discovery), Clusters 2.0+2.1,
Libraries 2.0, Jobs 2.0/2.1/2.2, SCIM Me, /.well-known/databricks-config, and the workspace-files import-file/read endpoints
of the new Databricks CLI, plus Entra ID bearer tokens for service principals. Submitted runs of Python
notebooks, Python files and wheel entry points execute locally in a subprocess (runner.py)
with the cluster's installed wheels importable, a dbutils shim and a lazy local `spark`.

Code layout: core.py (wire conventions: errors, request parsing, paths, trees, routes), files.py
(Workspace, DBFS, Files), compute.py (Clusters, Libraries), jobs.py (Jobs, run execution), runner.py (the
run subprocess); this module owns the state, persistence and the HTTP server (auth, faults, limits,
request log, admin). The command line is ci_cd_scripts/local_workspace.py.

Time: emulated durations (cluster start/restart/terminate, library install phases, run pending/terminating,
scripted run durations) are nominal seconds multiplied by --time-scale (0.01 = 100x faster, 0 = next poll).
A run subprocess always has a deadline (task/run timeout_seconds, else --run-timeout).

NOT implemented (documented behaviours this emulator does not model):
  - Workspace: DBC, HTML and R_MARKDOWN import/export formats; directory import/export; notebooks_modified_after;
    permissions, repos, git folders; the 500 MB total workspace file limit.
  - DBFS: the 503 "re-invoke" answer of very large deletes; list timeouts; mounts.
  - Files API: real multipart/resumable uploads (initiate-upload answers a session token, the presigned-URL
    endpoints answer 501, abort-upload ends the session, so the SDK falls back to a single PUT);
    complete-upload; If-Unmodified-Since; Unity Catalog itself
    (any /Volumes/<catalog>/<schema>/<volume> is accepted without creating catalogs, schemas or volumes).
  - Clusters: create options are stored, not validated; resize/RESIZING, events, pin, permanent-delete,
    policies; spark-versions and list-node-types are short fixed lists; init scripts are stored but never
    executed or checked (fail_next_start simulates a failing one); UC
    artifact allowlists and data_security_mode enforcement.
  - Libraries: pypi/maven/cran/jar libraries are reported INSTALLED but not installed (only wheels reach
    PYTHONPATH); wheels with compiled extension modules cannot be imported from the zip; requirements files
    are checked for existence, not installed; all-cluster libraries.
  - Jobs: schedules, triggers, queueing, max_concurrent_runs, retries, repair, runs/cancel-all, export,
    for_each/condition/sql/dbt/pipeline/jar/spark_submit tasks (they end FAILED), job clusters
    (tasks run on an ephemeral local environment), git_source, permissions, job-level environments,
    notebook `%pip`/`%run`/`%sql` magics (magic lines are comments), dbutils beyond notebook.exit and
    widgets (fs, secrets, notebook.run raise NotImplementedError); runs expiring after 60 days; 2.2 pagination
    applies to tasks and job_clusters only; restart of a TERMINATED cluster answers INVALID_STATE (no knob);
    notebooks run in a scratch folder, so workspace files next to a notebook are not importable.
  - databricks-cli 0.18 fidelity is an optional test: it runs only when that CLI is importable (e.g. from
    $CLI018_PATH) and 127.0.0.2:80 can be bound, because the CLI drops the port from the host.
  - Auth: PATs and unsigned Entra ID JWTs (audience, expiry, service-principal membership and management
    headers checked, signatures not); no OAuth U2M/M2M token endpoints, no per-user permissions; jobs and
    clusters are always owned by the local user whoever calls.
"""
from __future__ import annotations

import base64
import collections
import fnmatch
import hashlib
import http.server
import json
import math
import os
import posixpath
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from cicdkit import atomic
from .compute import _Clusters
from .core import (
    ADMIN_PREFIX,
    API_PREFIX,
    DEFAULT_TOKEN,
    DURATIONS,
    LOG_LIMIT,
    ORG_ID,
    ROUTES,
    SEED_CLUSTERS,
    USER_ID,
    USER_NAME,
    ApiError,
    ConnectionResetFault,
    Request,
    Response,
    ScriptedOutcome,
    Tree,
    UnknownEndpoint,
    normalise_dbfs_path,
    normalise_workspace_path,
    ok,
    route,
)
from .files import _Files, _Workspace
from .jobs import _Jobs


# --------------------------------------------------------------------------------------------------------------
# Fault injection, rate limits, latency
# --------------------------------------------------------------------------------------------------------------

FAULT_KINDS = ("429", "500", "502", "503", "504", "reset", "reset-after")
FAULT_BODIES = {
    429: ("REQUEST_LIMIT_EXCEEDED", "Workspace request rate exceeded: RPC token bucket limit has been exceeded."),
    500: ("INTERNAL_ERROR", "Internal error (injected by the local workspace)."),
    502: ("BAD_GATEWAY", "Bad gateway (injected by the local workspace)."),
    503: ("TEMPORARILY_UNAVAILABLE", "The service is temporarily unavailable (injected by the local workspace)."),
    504: ("DEADLINE_EXCEEDED", "Gateway timeout (injected by the local workspace)."),
}


@dataclass
class FaultRule:
    path: str = "*"
    method: str | None = None
    fault: str = "503"
    rate: float = 1.0
    skip: int = 0
    times: int | None = None
    retry_after: int | None = None
    seen: int = 0
    fired: int = 0

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and fnmatch.fnmatchcase(path, self.path)


def parse_faults(spec: str | None) -> list[FaultRule]:
    """Parse a --faults SPEC (see the module docstring); raise ValueError with the offending part."""
    rules: list[FaultRule] = []
    for text in (spec or "").split(";"):
        if not text.strip():
            continue
        rule = FaultRule()
        retry_after_set = False
        for item in text.split(","):
            key, sep, value = item.strip().partition("=")
            key, value = key.strip(), value.strip()
            if not sep or not value:
                raise ValueError(f"fault rule field {item.strip()!r} is not key=value")
            if key == "path":
                rule.path = value
            elif key == "method":
                rule.method = value.upper()
            elif key == "fault":
                if value.lower() not in FAULT_KINDS:
                    raise ValueError(f"fault={value} is not one of {', '.join(FAULT_KINDS)}")
                rule.fault = value.lower()
            elif key == "rate":
                rule.rate = _number(value, f"rate={value}", float)
                if not 0 <= rule.rate <= 1:
                    raise ValueError(f"rate={value} must be between 0 and 1")
            elif key in ("skip", "times"):
                number = _number(value, f"{key}={value}", int)
                if number < 0:
                    raise ValueError(f"{key}={value} must be >= 0")
                setattr(rule, key, number)
            elif key == "retry_after":
                retry_after_set = True
                rule.retry_after = None if value.lower() == "none" else _number(value, f"retry_after={value}", int)
            else:
                raise ValueError(f"unknown fault rule field {key!r} (path, method, fault, rate, skip, times, retry_after)")
        if not retry_after_set and rule.fault == "429":
            rule.retry_after = 1
        rules.append(rule)
    return rules


def _number(text: str, what: str, kind: type = float) -> Any:
    """`kind(text)`, or a ValueError that names the field instead of Python's 'could not convert ...'."""
    try:
        value = kind(text.strip())
    except ValueError:
        noun = "a whole number" if kind is int else "a number"
        raise ValueError(f"{what}: {text.strip()!r} is not {noun}") from None
    if kind is float and (value != value or value in (float("inf"), float("-inf"))):
        raise ValueError(f"{what}: {text.strip()!r} is not a finite number")
    return value


@dataclass
class RateLimit:
    pattern: str
    per_second: float
    capacity: float
    tokens: float = 0.0
    updated: float = 0.0


def parse_rate_limit(text: str) -> RateLimit:
    """`GLOB=N/s` or `GLOB=N/min` (a bare N means per second)."""
    pattern, sep, rate = text.rpartition("=")
    if not sep or not pattern:
        raise ValueError(f"rate limit {text!r} is not ENDPOINT=N/s")
    number, _, unit = rate.strip().partition("/")
    per = {"": 1.0, "s": 1.0, "sec": 1.0, "min": 60.0, "m": 60.0}.get(unit.strip().lower())
    if per is None:
        raise ValueError(f"rate limit {text!r}: unit must be /s or /min")
    value = _number(number, f"rate limit {text!r}: N", float)
    if value <= 0:
        raise ValueError(f"rate limit {text!r}: rate must be positive")
    if not pattern.startswith(("/", "*")):
        pattern = "*/" + pattern
    return RateLimit(pattern, value / per, max(1.0, value if per == 1.0 else value / 60.0), tokens=max(1.0, value if per == 1.0 else value / 60.0), updated=time.monotonic())


def parse_latency(values: Any) -> tuple[float, list[tuple[str, float]]]:
    """Latency as a number (ms, every endpoint), a dict {glob: ms} or a list of 'ms'/'GLOB=ms' strings."""
    default = 0.0
    rules: list[tuple[str, float]] = []
    if values is None:
        return default, rules
    if isinstance(values, (int, float)):
        return float(values), rules
    if isinstance(values, dict):
        items = [f"{k}={v}" for k, v in values.items()]
    elif isinstance(values, str):
        items = [values]
    else:
        items = list(values)
    for item in items:
        pattern, sep, ms = str(item).rpartition("=")
        milliseconds = _number(str(ms), f"latency {str(item)!r}: MS", float)
        if milliseconds < 0:
            raise ValueError(f"latency {str(item)!r}: MS must be >= 0")
        if not sep:
            default = milliseconds
        else:
            if not pattern.startswith(("/", "*")):
                pattern = "*/" + pattern
            rules.append((pattern, milliseconds))
    return default, rules


# --------------------------------------------------------------------------------------------------------------
# Request log
# --------------------------------------------------------------------------------------------------------------


@dataclass
class RequestRecord:
    """One served request: never headers or bodies (they can carry secrets). status 0 = connection reset.

    unknown_endpoint: the emulator has no API for this method and path (answered 404 ENDPOINT_NOT_FOUND).
    """

    method: str
    path: str
    query: str
    status: int
    duration: float
    started: float
    fault: str | None = None
    latency_ms: float = 0.0  # injected latency this request waited (--latency-ms rule that matched)
    unknown_endpoint: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


# --------------------------------------------------------------------------------------------------------------
# Persistence (--state-dir): state.json (atomic replace) + content-addressed blobs
# --------------------------------------------------------------------------------------------------------------

STATE_VERSION = 1


def _state_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"__bytes__": base64.b64encode(value).decode("ascii")}
    raise TypeError(f"not serialisable: {type(value).__name__}")


def _state_hook(value: dict) -> Any:
    if set(value) == {"__bytes__"}:
        return base64.b64decode(value["__bytes__"])
    return value


class _Persistence:
    """--state-dir: metadata in state.json, file contents in blobs/<sha256> (written once)."""

    def save_state(self, state_dir: Path) -> None:
        with self.lock:
            blobs = state_dir / "blobs"
            trees = {}
            for name in ("workspace", "dbfs", "volumes"):
                tree: Tree = getattr(self, name)
                trees[name] = tree.to_state()
                for node in tree.nodes.values():
                    if "data" in node:
                        sha = Tree.sha256(node)
                        if sha not in self.saved_blobs:
                            target = blobs / sha
                            if not target.exists():
                                atomic.write_bytes(target, node["data"])
                            self.saved_blobs.add(sha)
            state = {
                "version": STATE_VERSION,
                "trees": trees,
                "clusters": list(self.clusters.values()),
                "libraries": self.libraries,
                "jobs": list(self.jobs.values()),
                "runs": list(self.runs.values()),
                "idempotency": self.idempotency,
                "next_id": self.next_id,
            }
            text = json.dumps(state, separators=(",", ":"), default=_state_default)
            atomic.write_bytes(state_dir / "state.json", text.encode("utf-8"))
            self.dirty = False

    def load_state(self, state_dir: Path) -> None:
        path = state_dir / "state.json"
        if not path.exists():
            state_dir.mkdir(parents=True, exist_ok=True)
            return
        state = json.loads(path.read_text(encoding="utf-8"), object_hook=_state_hook)
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"{path}: unsupported state version {state.get('version')!r}")
        blobs = state_dir / "blobs"
        with self.lock:
            for name, nodes in state["trees"].items():
                setattr(self, name, Tree.from_state(nodes, lambda sha: (blobs / sha).read_bytes()))
            self.clusters = {c["cluster_id"]: c for c in state["clusters"]}
            self.libraries = state["libraries"]
            self.jobs = {int(j["job_id"]): j for j in state["jobs"]}
            self.runs = {int(r["run_id"]): r for r in state["runs"]}
            self.idempotency = state["idempotency"]
            self.next_id.update(state["next_id"])
            self.after_load()
            self.dirty = False
        # Drop blobs nothing refers to any more (replaced or deleted content).
        used = {node.get("sha256") for nodes in state["trees"].values() for node in nodes}
        if blobs.is_dir():
            for blob in blobs.iterdir():
                if blob.name not in used and not blob.name.startswith("."):
                    blob.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------------------------
# The emulator: state of every family and the dispatch of /api/ requests
# --------------------------------------------------------------------------------------------------------------


class Emulator(_Persistence, _Workspace, _Files, _Clusters, _Jobs):
    """Workspace state (trees, clusters, libraries, jobs, runs) and the handlers of the REST API.

    Every handler runs under `self.lock`; time-driven state (clusters, libraries, runs) advances lazily on
    access from wall-clock timestamps, so no background ticking is needed except run execution threads.
    """

    def __init__(
        self,
        *,
        base_url: str = "http://127.0.0.1",
        time_scale: float = 1.0,
        clusters: list[dict] | None = None,
        run_timeout: float = 600.0,
        dbfs_handle_timeout: float = 600.0,
        dbfs_delete_missing_ok: bool = False,
        work_dir: Path | None = None,
    ):
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.base_url = base_url
        self.time_scale = max(0.0, float(time_scale))
        self.run_timeout = run_timeout
        self.dbfs_handle_timeout = dbfs_handle_timeout
        self.dbfs_delete_missing_ok = dbfs_delete_missing_ok
        self.work_dir = work_dir or Path(tempfile.mkdtemp(prefix="local-workspace-"))
        self.stopping = threading.Event()
        self.dirty = False
        self.scripted: dict[str, ScriptedOutcome] = {}
        self.processes: dict[int, subprocess.Popen] = {}
        self.threads: list[threading.Thread] = []
        self.persist_hook: Callable[[], None] = lambda: None
        self.saved_blobs: set[str] = set()
        self.seed_clusters = [dict(c) for c in (SEED_CLUSTERS if clusters is None else clusters)]
        self.reset()

    # ---- state lifecycle -----------------------------------------------------------------------------------

    def reset(self) -> None:
        with self.lock:
            self.workspace = Tree(("/Users", f"/Users/{USER_NAME}", "/Shared", "/Repos"))
            self.dbfs = Tree(("/FileStore", "/tmp"))
            self.volumes = Tree(("/Volumes",))
            self.dbfs_handles: dict[int, dict] = {}
            self.clusters: dict[str, dict] = {}
            self.libraries: dict[str, list[dict]] = {}
            self.jobs: dict[int, dict] = {}
            self.runs: dict[int, dict] = {}
            self.idempotency: dict[str, int] = {}
            self.next_id = {"handle": 1, "job": 1001, "run": 5001, "cluster": 1}
            self.upload_sessions: dict[str, str] = {}
            for spec in self.seed_clusters:
                self.add_cluster(spec)
            self.dirty = True

    def scaled(self, name_or_seconds: str | float) -> float:
        seconds = DURATIONS[name_or_seconds] if isinstance(name_or_seconds, str) else float(name_or_seconds)
        return seconds * self.time_scale

    def new_id(self, kind: str) -> int:
        value = self.next_id[kind]
        self.next_id[kind] = value + 1
        return value

    def mark_dirty(self) -> None:
        with self.lock:
            self.dirty = True
            self.changed.notify_all()

    # ---- dispatch ------------------------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        match = API_PREFIX.match(request.path)
        if not match:
            raise UnknownEndpoint(request.method, request.path)
        version, service_path = match.groups()
        request.version = version
        if service_path.startswith(("fs/files/", "fs/directories/")) or service_path in ("fs/files", "fs/directories"):
            if version != "2.0":
                raise UnknownEndpoint(request.method, request.path)
            with self.lock:
                return self.files_api(request, service_path)
        if service_path.startswith("workspace-files/") and version == "2.0":
            with self.lock:
                return self.workspace_files_api(request, service_path[len("workspace-files/"):])
        entry = ROUTES.get((request.method, service_path))
        if entry is None or version not in entry[0]:
            if request.method == "HEAD" and (("GET", service_path) in ROUTES):
                entry = ROUTES[("GET", service_path)]
            else:
                raise UnknownEndpoint(request.method, "/" + service_path)
        with self.lock:
            return entry[1](self, request)


# ---- identity -------------------------------------------------------------------------------------------------


@route("GET", "preview/scim/v2/Me")
def scim_me(emu: Emulator, request: Request) -> Response:
    if request.principal != USER_NAME:  # a service principal: its application id is its userName
        me = {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "id": str(int(hashlib.sha256(request.principal.encode()).hexdigest()[:13], 16)),
            "userName": request.principal,
            "displayName": request.principal,
            "active": True,
        }
        response = ok(me)
        response.headers["X-Databricks-Org-Id"] = ORG_ID
        return response
    me = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "id": USER_ID,
        "userName": USER_NAME,
        "displayName": "Local User",
        "active": True,
        "emails": [{"type": "work", "value": USER_NAME, "primary": True}],
        "groups": [{"display": "admins", "type": "direct", "value": "1", "$ref": "Groups/1"}],
        "entitlements": [{"value": "workspace-access"}, {"value": "allow-cluster-create"}],
    }
    response = ok(me)
    response.headers["X-Databricks-Org-Id"] = ORG_ID
    return response


# --------------------------------------------------------------------------------------------------------------
# HTTP server: auth, latency, faults, rate limits, request log, admin surface
# --------------------------------------------------------------------------------------------------------------


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], workspace: "LocalWorkspace"):
        self.workspace = workspace
        super().__init__(address, _RequestHandler)


class _RequestHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "LocalWorkspace/1.0"
    sys_version = ""

    def setup(self) -> None:
        # A socket timeout (StreamRequestHandler applies self.timeout): an idle keep-alive or half-open client
        # would otherwise hold its handler thread forever; on expiry the connection is closed.
        self.timeout = self.server.workspace.client_timeout
        super().setup()
        # Without TCP_NODELAY, headers and body leave in two segments and delayed ACK stalls keep-alive ~40 ms.
        if self.server.workspace.tcp_nodelay:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size_line = self.rfile.readline(65537)
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline(3)
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _serve(self) -> None:
        self.server.workspace._serve(self)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _serve

    def send_reply(self, response: Response, head_only: bool = False) -> None:
        self.send_response(response.status)
        if response.content_type and (response.body or response.status not in (204, 304)):
            self.send_header("Content-Type", response.content_type)
        for key, value in response.headers.items():
            self.send_header(key, value)
        if "Content-Length" not in response.headers:
            self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if response.body and not head_only:
            self.wfile.write(response.body)

    def reset_connection(self) -> None:
        """Drop the connection with an RST (SO_LINGER 0), what a crashing gateway looks like to a client."""
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            # Closed here, before socketserver's shutdown(SHUT_WR) could send a polite FIN first.
            self.connection.close()
        except OSError:
            pass
        self.close_connection = True


ANONYMOUS_PATHS = ("/.well-known/databricks-config",)
AZURE_DATABRICKS_APP_ID = "2ff814a6-3304-4ab8-85cb-cd0e6f879c1d"
ENTRA_AUDIENCES = (AZURE_DATABRICKS_APP_ID, f"api://{AZURE_DATABRICKS_APP_ID}")


def _jwt_claims(token: str) -> dict | None:
    """The payload of a JWT-shaped token (signature not checked: the emulator trusts its test callers)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    return claims if isinstance(claims, dict) else None


class LocalWorkspace:
    """The emulator as a context manager: ``with LocalWorkspace(...) as ws: ws.url``.

    Arguments: token (the valid PAT), host/port (0 = free port), latency_ms (ms for every endpoint, or
    {glob: ms}, or ['GLOB=ms', ...]), rate_limits (['GLOB=N/s', ...]), faults (a SPEC string, see the module
    docstring), seed (for random faults), state_dir (persistence), time_scale (multiplies emulated
    durations), clusters (seed cluster dicts or a JSON file path; None = the two SEED_CLUSTERS, [] = none),
    run_timeout (deadline of run subprocesses without timeout_seconds), dbfs_handle_timeout (seconds a DBFS
    streaming handle lives idle), dbfs_delete_missing_ok (200 instead of 404 for deleting a missing DBFS path),
    tcp_nodelay (default True; benchmarks turn it off to compare with http.server's default),
    service_principals (Entra application ids already in the workspace), azure_resource_id (the workspace's
    Azure resource id checked against X-Databricks-Azure-Workspace-Resource-Id) and client_timeout (seconds a
    connection may sit idle or half-sent before it is closed; default 120).
    """

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        port: int = 0,
        latency_ms: Any = 0,
        rate_limits: list[str] | None = None,
        faults: str | None = None,
        seed: int | None = None,
        state_dir: str | os.PathLike[str] | None = None,
        time_scale: float = 1.0,
        clusters: list[dict] | str | os.PathLike[str] | None = None,
        *,
        host: str = "127.0.0.1",
        run_timeout: float = 600.0,
        dbfs_handle_timeout: float = 600.0,
        dbfs_delete_missing_ok: bool = False,
        tcp_nodelay: bool = True,
        service_principals: list[str] | None = None,
        azure_resource_id: str | None = None,
        client_timeout: float = 120.0,
    ):
        self.token = token
        self.client_timeout = client_timeout
        # Entra ID: application ids already members of the workspace; others join by sending the
        # management headers. azure_resource_id, when set, must match X-Databricks-Azure-Workspace-Resource-Id.
        self.service_principals = set(service_principals or [])
        self.azure_resource_id = azure_resource_id
        self.tcp_nodelay = tcp_nodelay  # False only to measure what Python's http.server default costs
        self.tokens = {token}
        self.host = host
        self.port = port
        self.state_dir = Path(state_dir) if state_dir else None
        self.random = random.Random(seed)
        self.seed = seed
        self.faults = parse_faults(faults)
        self.rate_limits = [parse_rate_limit(text) for text in rate_limits or []]
        self.latency_default, self.latency_rules = parse_latency(latency_ms)
        self._log: collections.deque[RequestRecord] = collections.deque(maxlen=LOG_LIMIT)
        self._log_lock = threading.Lock()
        self._control = threading.Lock()
        if isinstance(clusters, (str, os.PathLike)):
            clusters = load_cluster_seed(Path(clusters))
        self._work_dir = Path(tempfile.mkdtemp(prefix="local-workspace-"))
        self.emulator = Emulator(
            time_scale=time_scale,
            clusters=clusters,
            run_timeout=run_timeout,
            dbfs_handle_timeout=dbfs_handle_timeout,
            dbfs_delete_missing_ok=dbfs_delete_missing_ok,
            work_dir=self._work_dir,
        )
        self.emulator.persist_hook = self._persist
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        if self.state_dir is not None:
            self.emulator.load_state(self.state_dir)

    # ---- lifecycle --------------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("LocalWorkspace is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "LocalWorkspace":
        if self._server is None:
            self._server = _Server((self.host, self.port), self)
            self.emulator.base_url = f"http://{self._server.server_address[0]}:{self._server.server_address[1]}"
            self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True, name="local-workspace")
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self.emulator.shutdown()
        self._persist(force=True)
        shutil.rmtree(self._work_dir, ignore_errors=True)

    def __enter__(self) -> "LocalWorkspace":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def serve_forever(self) -> None:
        """CLI mode: block until stopped by a signal."""
        self.start()
        stop = threading.Event()

        def _signal(_signum: int, _frame: Any) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, _signal)
        signal.signal(signal.SIGINT, _signal)
        while not stop.wait(3600):
            pass
        self.stop()

    # ---- request log ------------------------------------------------------------------------------------------

    @property
    def requests(self) -> list[RequestRecord]:
        """The request log, oldest first: /api/ calls and anonymous discovery, not the /__local__/ admin surface."""
        with self._log_lock:
            return list(self._log)

    def api_requests(self, method: str | None = None, path: str = "*") -> list[RequestRecord]:
        """Logged /api/ requests filtered by method and an fnmatch pattern on the path."""
        return [
            r for r in self.requests
            if r.path.startswith("/api/") and (method is None or r.method == method) and fnmatch.fnmatchcase(r.path, path)
        ]

    def count(self, method: str | None = None, path: str = "*") -> int:
        return len(self.api_requests(method, path))

    def unknown_endpoint_requests(self) -> list[RequestRecord]:
        """Logged requests the emulator has no API for: what a client needed that the emulator does not serve."""
        return [r for r in self.requests if r.unknown_endpoint]

    def clear_log(self) -> None:
        with self._log_lock:
            self._log.clear()

    # ---- control (also reachable over HTTP under /__local__/) --------------------------------------------------

    def set_faults(self, spec: str | None) -> None:
        with self._control:
            self.faults = parse_faults(spec)

    def set_rate_limits(self, limits: list[str] | None) -> None:
        with self._control:
            self.rate_limits = [parse_rate_limit(text) for text in limits or []]

    def set_latency(self, latency_ms: Any) -> None:
        with self._control:
            self.latency_default, self.latency_rules = parse_latency(latency_ms)

    def add_token(self, token: str) -> None:
        self.tokens.add(token)

    def reset(self) -> None:
        """Back to the initial state: seed clusters, empty stores, no faults/limits, empty log."""
        self.emulator.shutdown_runs()
        self.emulator.reset()
        self.set_faults(None)
        self.set_rate_limits(None)
        self.set_latency(0)
        self.clear_log()
        self._persist(force=True)

    def script_run(
        self,
        notebook_path: str,
        result_state: str = "SUCCESS",
        duration_seconds: float = 0.0,
        result: str | None = None,
        error: str | None = None,
        error_trace: str | None = None,
    ) -> None:
        """Runs of `notebook_path` (also python_file paths) end with this outcome instead of executing."""
        self.emulator.script(notebook_path, ScriptedOutcome(result_state.upper(), duration_seconds, result, error, error_trace))

    def clear_scripts(self) -> None:
        with self.emulator.lock:
            self.emulator.scripted.clear()

    def seed_cluster(self, spec: dict) -> dict:
        """Add (or replace) a cluster; returns its ClusterDetails."""
        with self.emulator.lock:
            cluster = self.emulator.add_cluster(spec)
            self.emulator.mark_dirty()
            return self.emulator.cluster_details(cluster)

    def cluster(self, cluster_id: str) -> dict:
        with self.emulator.lock:
            return self.emulator.cluster_details(self.emulator.get_cluster(cluster_id))

    @property
    def cluster_ids(self) -> list[str]:
        with self.emulator.lock:
            return list(self.emulator.clusters)

    def set_cluster_state(self, cluster_id: str, state: str) -> None:
        """Force a cluster into a state (e.g. ERROR, TERMINATED) without a transition."""
        with self.emulator.lock:
            self.emulator.force_cluster_state(cluster_id, state.upper())

    def fail_next_start(
        self,
        cluster_id: str,
        code: str = "INIT_SCRIPT_FAILURE",
        message: str = "Cluster scoped init script failed: Script exit status is non-zero",
    ) -> None:
        """The cluster's next start/restart/edit-restart ends TERMINATED with this termination_reason."""
        with self.emulator.lock:
            self.emulator.fail_next_start(cluster_id, code, message)

    def library_statuses(self, cluster_id: str) -> list[dict]:
        with self.emulator.lock:
            return self.emulator.library_statuses(cluster_id)

    def workspace_file(self, path: str) -> bytes | None:
        """Content of a workspace notebook/file (None when absent); `/Workspace/...` accepted."""
        with self.emulator.lock:
            return self.emulator.read_workspace_file(normalise_workspace_path(path))

    def workspace_object(self, path: str) -> dict | None:
        with self.emulator.lock:
            node = self.emulator.workspace.get(normalise_workspace_path(path))
            return None if node is None else self.emulator.object_info(node)

    def workspace_paths(self) -> list[str]:
        with self.emulator.lock:
            return sorted(self.emulator.workspace.nodes)

    def dbfs_file(self, path: str) -> bytes | None:
        with self.emulator.lock:
            node = self.emulator.dbfs.get(normalise_dbfs_path(path))
            return None if node is None or node["type"] == "DIRECTORY" else node["data"]

    def volume_file(self, path: str) -> bytes | None:
        with self.emulator.lock:
            node = self.emulator.volumes.get(posixpath.normpath(path))
            return None if node is None or node["type"] == "DIRECTORY" else node["data"]

    def put_file(self, path: str, data: bytes) -> None:
        """Write a file straight into the store its path names (dbfs:/..., /Volumes/..., workspace path)."""
        with self.emulator.lock:
            self.emulator.write_file(path, data)

    def run(self, run_id: int) -> dict:
        with self.emulator.lock:
            return self.emulator.run_view(self.emulator.get_run(run_id))

    def wait_run(self, run_id: int, timeout: float = 60.0) -> dict:
        """Block until a run is terminal (deadline `timeout` seconds); returns the run."""
        return self.emulator.wait_run(run_id, timeout)

    def jobs(self) -> list[dict]:
        with self.emulator.lock:
            return [dict(job) for job in self.emulator.jobs.values()]

    # ---- serving --------------------------------------------------------------------------------------------

    def _persist(self, force: bool = False) -> None:
        if self.state_dir is not None and (force or self.emulator.dirty):
            self.emulator.save_state(self.state_dir)

    def _latency_for(self, path: str) -> float:
        for pattern, ms in self.latency_rules:
            if fnmatch.fnmatchcase(path, pattern):
                return ms / 1000.0
        return self.latency_default / 1000.0

    def _fault_for(self, method: str, path: str) -> FaultRule | None:
        with self._control:
            for rule in self.faults:
                if not rule.matches(method, path):
                    continue
                rule.seen += 1
                if rule.seen <= rule.skip or (rule.times is not None and rule.fired >= rule.times):
                    continue
                if rule.rate < 1.0 and self.random.random() >= rule.rate:
                    continue
                rule.fired += 1
                return rule
        return None

    def _rate_limited(self, path: str) -> int | None:
        """Take a token from every bucket matching path; the Retry-After seconds when one is empty."""
        with self._control:
            clock = time.monotonic()
            for bucket in self.rate_limits:
                if not fnmatch.fnmatchcase(path, bucket.pattern):
                    continue
                bucket.tokens = min(bucket.capacity, bucket.tokens + (clock - bucket.updated) * bucket.per_second)
                bucket.updated = clock
                if bucket.tokens < 1.0:
                    return max(1, math.ceil((1.0 - bucket.tokens) / bucket.per_second))
                bucket.tokens -= 1.0
        return None

    def _authenticate(self, request: Request) -> None:
        """PATs from `self.tokens`; JWT-shaped bearer tokens go through the Entra ID rules (`_entra`)."""
        header = request.headers.get("Authorization") or ""
        scheme, _, credential = header.partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise ApiError(401, 401, "Credential was not sent or was of an unsupported type for this API.")
        if credential in self.tokens:
            request.principal = USER_NAME
            return
        claims = _jwt_claims(credential)
        if claims is None:
            raise ApiError(403, 403, "Invalid access token.", {"X-Databricks-Reason-Phrase": "Invalid access token."})
        request.principal = self._entra(request, claims)

    def _entra(self, request: Request, claims: dict) -> str:
        """Contract section 2.2 ([U] where unverified): Azure Databricks audience, not expiring, a known service
        principal — or a new one that sends both management headers (first-login provisioning)."""
        if claims.get("aud") not in ENTRA_AUDIENCES:
            raise ApiError(401, 401, "Credential was not sent or was of an unsupported type for this API.")
        expires = claims.get("exp")
        if isinstance(expires, (int, float)) and expires < time.time() + 30:
            raise ApiError(403, 403, "Token is expiring within 30 seconds. (token expired)")
        principal = str(claims.get("appid") or claims.get("azp") or claims.get("oid") or "")
        if not principal:
            raise ApiError(403, 403, "Invalid access token.", {"X-Databricks-Reason-Phrase": "Invalid access token."})
        resource_id = request.headers.get("X-Databricks-Azure-Workspace-Resource-Id")
        if resource_id and self.azure_resource_id and resource_id.lower() != self.azure_resource_id.lower():
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"The workspace with resource ID {resource_id} could not be found.")
        if principal not in self.service_principals:
            if not (resource_id and request.headers.get("X-Databricks-Azure-SP-Management-Token")):
                raise ApiError(403, 403, "Invalid access token.", {"X-Databricks-Reason-Phrase": "Invalid access token."})
            with self._control:
                self.service_principals.add(principal)
        return principal

    def _serve(self, handler: _RequestHandler) -> None:
        started_wall, started = time.time(), time.perf_counter()
        method = handler.command
        body = handler._read_body()
        request = Request(method, handler.path, handler.headers, body)
        path = request.path
        fault_name: str | None = None
        delay = 0.0
        unknown_endpoint = False
        try:
            if path.startswith(ADMIN_PREFIX):
                response = self._admin(request)
            elif path in ANONYMOUS_PATHS:
                response = ok({"oidc_endpoint": f"{self.url}/oidc", "workspace_id": ORG_ID})
            elif path.startswith("/api/"):
                delay = self._latency_for(path)
                if delay > 0:
                    self.emulator.stopping.wait(delay)
                rule = self._fault_for(method, path)
                if rule is not None:
                    fault_name = rule.fault
                    if rule.fault == "reset":
                        raise ConnectionResetFault()
                    if rule.fault == "reset-after":
                        # The call is served (a run is submitted, a file written), then the answer is lost.
                        self._authenticate(request)
                        self.emulator.handle(request)
                        if method not in ("GET", "HEAD"):
                            self._persist()
                        raise ConnectionResetFault()
                    status = int(rule.fault)
                    code, message = FAULT_BODIES[status]
                    headers = {"Retry-After": str(rule.retry_after)} if rule.retry_after is not None else {}
                    raise ApiError(status, code, message, headers)
                retry_after = self._rate_limited(path)
                if retry_after is not None:
                    fault_name = "rate-limit"
                    raise ApiError(429, "REQUEST_LIMIT_EXCEEDED", "Workspace request rate exceeded: RPC token bucket limit has been exceeded.", {"Retry-After": str(retry_after)})
                self._authenticate(request)
                response = self.emulator.handle(request)
                if method not in ("GET", "HEAD"):
                    self._persist()
            else:
                raise UnknownEndpoint(method, path)
        except ConnectionResetFault:
            # Logged before the reset, like every answer below: a client that saw it finds the entry.
            self._record(method, request, 0, started, started_wall, "reset", delay)
            handler.reset_connection()
            return
        except ApiError as error:
            if method == "HEAD":
                error.empty_body = True
            unknown_endpoint = isinstance(error, UnknownEndpoint)
            response = error.response()
        except Exception as error:  # a bug in the emulator: answer 500 like the service would, keep serving
            import traceback

            traceback.print_exc(file=sys.stderr)
            response = ApiError(500, "INTERNAL_ERROR", f"Local workspace error: {type(error).__name__}: {error}").response()
        # Logged before the reply leaves: a client that got its answer (or a reset) always finds the request
        # in the log, so tests read the log right after a call without waiting.
        if not path.startswith(ADMIN_PREFIX):
            self._record(method, request, response.status, started, started_wall, fault_name, delay, unknown_endpoint)
        handler.send_reply(response, head_only=(method == "HEAD"))

    def _record(self, method: str, request: Request, status: int, started: float, started_wall: float, fault: str | None,
                delay: float = 0.0, unknown_endpoint: bool = False) -> None:
        query = "&".join(f"{key}={value}" for key, value in request.query.items())
        record = RequestRecord(method, request.path, query, status, time.perf_counter() - started, started_wall, fault,
                               round(delay * 1000.0, 3), unknown_endpoint)
        with self._log_lock:
            self._log.append(record)

    # ---- admin surface ----------------------------------------------------------------------------------------

    def _admin(self, request: Request) -> Response:
        name = request.path[len(ADMIN_PREFIX):].strip("/")
        method = request.method
        try:
            body = request.json()
            if name == "requests" and method == "GET":
                return ok({"requests": [r.to_dict() for r in self.requests]})
            if name == "requests" and method == "DELETE":
                self.clear_log()
                return ok()
            if name == "reset" and method == "POST":
                self.reset()
                return ok()
            if name == "faults" and method == "POST":
                self.set_faults(body.get("spec"))
                return ok()
            if name == "faults" and method == "DELETE":
                self.set_faults(None)
                return ok()
            if name == "rate-limits" and method == "POST":
                self.set_rate_limits(body.get("limits"))
                return ok()
            if name == "latency" and method == "POST":
                self.set_latency(body.get("latency_ms", 0))
                return ok()
            if name == "tokens" and method == "POST":
                self.add_token(str(body["token"]))
                return ok()
            if name == "clusters" and method == "POST":
                return ok({"clusters": [self.seed_cluster(spec) for spec in body.get("clusters", [])]})
            if name == "cluster-state" and method == "POST":
                self.set_cluster_state(body["cluster_id"], body["state"])
                return ok()
            if name == "fail-next-start" and method == "POST":
                self.fail_next_start(body["cluster_id"], body.get("code", "INIT_SCRIPT_FAILURE"), body.get("message", "Cluster scoped init script failed: Script exit status is non-zero"))
                return ok()
            if name == "script-run" and method == "POST":
                self.script_run(
                    body["notebook_path"],
                    body.get("result_state", "SUCCESS"),
                    float(body.get("duration_seconds", 0)),
                    body.get("result"),
                    body.get("error"),
                    body.get("error_trace"),
                )
                return ok()
            if name == "state" and method == "GET":
                with self.emulator.lock:
                    return ok(self.emulator.summary())
        except (KeyError, TypeError, ValueError) as error:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Bad admin request: {error}")
        raise ApiError(404, "ENDPOINT_NOT_FOUND", f"No admin endpoint '{method} {request.path}'")


def load_cluster_seed(path: Path) -> list[dict]:
    """A seed file is a JSON list of cluster specs, or {"clusters": [...]}."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(data, dict):
        data = data.get("clusters", [])
    if not isinstance(data, list) or not all(isinstance(c, dict) for c in data):
        raise ValueError(f"{path}: expected a JSON list of cluster objects or {{\"clusters\": [...]}}")
    return data
