"""Local workspace server: the emulator (emulator.py) over HTTP/1.1, and `LocalWorkspace`, its handle in Python.

Owns the threaded HTTP server (keep-alive, TCP_NODELAY, an idle-client timeout), the path of every request
(admin surface, anonymous discovery, then for /api/: latency, faults, rate limits — faults.py — authentication —
identity.py — and the emulator's answer), the request log, persistence after writes, and the private admin
surface under /__local__/ with its Python equivalents (README, "Local workspace" → Inspection and control).
What the emulator serves and does not model: emulator.py. The command line is ci_cd_scripts/local_workspace.py.
"""

from __future__ import annotations

import collections
import fnmatch
import http.server
import os
import posixpath
import shutil
import signal
import socket
import struct
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .emulator import Emulator
from .faults import FAULT_BODIES, Impairments
from .identity import ANONYMOUS_PATHS, Credentials, discovery
from .state import ScriptedOutcome, load_cluster_seed
from .wire import (
    ADMIN_PREFIX,
    DEFAULT_TOKEN,
    ApiError,
    ConnectionResetFault,
    Request,
    Response,
    UnknownEndpoint,
    normalise_dbfs_path,
    normalise_workspace_path,
    ok,
)

LOG_LIMIT = 100_000  # request log entries kept (oldest dropped first)


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
# HTTP server: auth, latency, faults, rate limits, request log, admin surface
# --------------------------------------------------------------------------------------------------------------


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], workspace: LocalWorkspace):
        self.workspace = workspace
        super().__init__(address, _RequestHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away mid-answer (its own timeout, a reset) is normal for clients under test: no
        traceback for it; anything else is a fault of the emulator and is printed as socketserver does."""
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


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

    def log_message(self, format: str, *args: Any) -> None:
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


class LocalWorkspace:
    """The emulator as a context manager: ``with LocalWorkspace(...) as ws: ws.url``.

    Arguments: token (the valid PAT), host/port (0 = free port), latency_ms (ms for every endpoint, or
    {glob: ms}, or ['GLOB=ms', ...]), rate_limits (['GLOB=N/s', ...]), faults (a SPEC string, syntax in
    faults.py), seed (for random faults), state_dir (persistence), time_scale (multiplies emulated
    durations), clusters (seed cluster dicts or a JSON file path; None = the two state.SEED_CLUSTERS, [] = none),
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
        self.credentials = Credentials({token}, set(service_principals or []), azure_resource_id)
        self.tcp_nodelay = tcp_nodelay  # False only to measure what Python's http.server default costs
        self.host = host
        self.port = port
        self.state_dir = Path(state_dir) if state_dir else None
        self.seed = seed
        self.impairments = Impairments(faults, rate_limits, latency_ms, seed)
        self._log: collections.deque[RequestRecord] = collections.deque(maxlen=LOG_LIMIT)
        self._log_lock = threading.Lock()
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

    def start(self) -> LocalWorkspace:
        if self._server is None:
            self._server = _Server((self.host, self.port), self)
            self.emulator.base_url = f"http://{self._server.server_address[0]}:{self._server.server_address[1]}"
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True, name="local-workspace"
            )
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

    def __enter__(self) -> LocalWorkspace:
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
            r
            for r in self.requests
            if r.path.startswith("/api/")
            and (method is None or r.method == method)
            and fnmatch.fnmatchcase(r.path, path)
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
        """Replace the fault rules (a --faults SPEC; None = none)."""
        self.impairments.set_faults(spec)

    def set_rate_limits(self, limits: list[str] | None) -> None:
        """Replace the rate limits (['GLOB=N/s', ...]; None = none)."""
        self.impairments.set_rate_limits(limits)

    def set_latency(self, latency_ms: Any) -> None:
        """Replace the latency (ms for every endpoint, {glob: ms} or ['GLOB=ms', ...])."""
        self.impairments.set_latency(latency_ms)

    def add_token(self, token: str) -> None:
        self.credentials.tokens.add(token)

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
        self.emulator.script(
            notebook_path, ScriptedOutcome(result_state.upper(), duration_seconds, result, error, error_trace)
        )

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
                response = discovery(self.url)
            elif path.startswith("/api/"):
                delay = self.impairments.latency_for(path)
                if delay > 0:
                    self.emulator.stopping.wait(delay)
                rule = self.impairments.fault_for(method, path)
                if rule is not None:
                    fault_name = rule.fault
                    if rule.fault == "reset":
                        raise ConnectionResetFault()
                    if rule.fault == "reset-after":
                        # The call is served (a run is submitted, a file written), then the answer is lost.
                        self.credentials.authenticate(request)
                        self.emulator.handle(request)
                        if method not in ("GET", "HEAD"):
                            self._persist()
                        raise ConnectionResetFault()
                    status = int(rule.fault)
                    code, message = FAULT_BODIES[status]
                    headers = {"Retry-After": str(rule.retry_after)} if rule.retry_after is not None else {}
                    raise ApiError(status, code, message, headers)
                retry_after = self.impairments.rate_limited(path)
                if retry_after is not None:
                    fault_name = "rate-limit"
                    raise ApiError(
                        429,
                        "REQUEST_LIMIT_EXCEEDED",
                        "Workspace request rate exceeded: RPC token bucket limit has been exceeded.",
                        {"Retry-After": str(retry_after)},
                    )
                self.credentials.authenticate(request)
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
            response = ApiError(
                500, "INTERNAL_ERROR", f"Local workspace error: {type(error).__name__}: {error}"
            ).response()
        # Logged before the reply leaves: a client that got its answer (or a reset) always finds the request
        # in the log, so tests read the log right after a call without waiting.
        if not path.startswith(ADMIN_PREFIX):
            self._record(method, request, response.status, started, started_wall, fault_name, delay, unknown_endpoint)
        handler.send_reply(response, head_only=(method == "HEAD"))

    def _record(
        self,
        method: str,
        request: Request,
        status: int,
        started: float,
        started_wall: float,
        fault: str | None,
        delay: float = 0.0,
        unknown_endpoint: bool = False,
    ) -> None:
        query = "&".join(f"{key}={value}" for key, value in request.query.items())
        record = RequestRecord(
            method,
            request.path,
            query,
            status,
            time.perf_counter() - started,
            started_wall,
            fault,
            round(delay * 1000.0, 3),
            unknown_endpoint,
        )
        with self._log_lock:
            self._log.append(record)

    # ---- admin surface ----------------------------------------------------------------------------------------

    def _admin(self, request: Request) -> Response:
        name = request.path[len(ADMIN_PREFIX) :].strip("/")
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
                self.fail_next_start(
                    body["cluster_id"],
                    body.get("code", "INIT_SCRIPT_FAILURE"),
                    body.get("message", "Cluster scoped init script failed: Script exit status is non-zero"),
                )
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
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Bad admin request: {error}") from None
        raise ApiError(404, "ENDPOINT_NOT_FOUND", f"No admin endpoint '{method} {request.path}'")
