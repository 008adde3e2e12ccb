"""Local workspace: an embedded emulator of the Databricks REST API for tests, benchmarks and local pipeline runs.

Starts a threaded HTTP/1.1 server (keep-alive, TCP_NODELAY) and prints its URL (http://HOST:PORT) as the
first line of stdout. Point databricks-sdk, our own client or curl at it with a bearer token:

    python ci_cd_scripts/local_workspace.py --port 0 --time-scale 0.05
    python ci_cd_scripts/local_workspace.py --faults "path=*/dbfs/add-block,fault=503,times=2" --seed 7

The token is read from $LOCAL_WORKSPACE_TOKEN (default dapi-local-token); --token exists for throwaway
local tokens only. The server runs until SIGINT/SIGTERM; with --state-dir it keeps its state between runs.

Served under every API-version prefix real clients use (see shared/reference/databricks-rest-contract.md):
Workspace 2.0, DBFS 2.0, Files 2.0 (/Volumes and /Workspace), Clusters 2.0+2.1, Libraries 2.0,
Jobs 2.0/2.1/2.2, SCIM Me, /.well-known/databricks-config. Submitted runs of Python notebooks, Python
files and wheel entry points execute locally in a subprocess (local_workspace_runner.py) with the cluster's
installed wheels importable, a dbutils shim and a lazy local `spark`.

Fault injection (--faults SPEC): rules separated by ';', each a ','-separated list of key=value:
  path=GLOB        fnmatch pattern on the URL path, e.g. */dbfs/put or /api/2.1/jobs/runs/* (default *)
  method=VERB      only this HTTP method (default any)
  fault=KIND       429, 500, 502, 503, 504 (JSON error body) or reset (connection dropped with RST)
  rate=P           probability 0..1 per matching request, drawn from --seed (default 1)
  skip=N           let the first N matching requests through (default 0)
  times=N          fire at most N times (default unlimited)
  retry_after=S    Retry-After seconds for 429/503 (default 1 for 429, none otherwise; 'none' omits it)
Example: "path=*/dbfs/add-block,fault=503,skip=1,times=2; path=*/jobs/runs/get,fault=429,rate=0.1"
Rate limits (--rate-limit GLOB=N/s or N/min, repeatable): one token bucket per rule (burst N), breaches
answer 429 REQUEST_LIMIT_EXCEEDED with Retry-After. Latency (--latency-ms L or GLOB=L, repeatable).
Faults, limits and latency apply to /api/ paths only.

Private admin surface (no auth): GET/DELETE /__local__/requests (request log), POST /__local__/reset,
POST /__local__/faults {"spec"}, POST /__local__/rate-limits {"limits": [...]}, POST /__local__/latency
{"latency_ms": ...}, POST /__local__/tokens {"token"}, POST /__local__/clusters {"clusters": [...]},
POST /__local__/cluster-state {"cluster_id", "state"}, POST /__local__/script-run {"notebook_path",
"result_state", "duration_seconds", "result", "error", "error_trace"}, GET /__local__/state.

Time: emulated durations (cluster start/restart/terminate, library install phases, run pending/terminating,
scripted run durations) are nominal seconds multiplied by --time-scale (0.01 = 100x faster, 0 = next poll).
A run subprocess always has a deadline (task/run timeout_seconds, else --run-timeout).

NOT implemented (documented behaviours this emulator does not model):
  - Workspace: DBC, HTML and R_MARKDOWN import/export formats; directory import/export; notebooks_modified_after;
    workspace-files/import-file; permissions, repos, git folders; the 500 MB total workspace file limit.
  - DBFS: the 503 "re-invoke" answer of very large deletes; list timeouts; mounts.
  - Files API: real multipart/resumable uploads (initiate-upload answers a session token, the presigned-URL
    endpoints answer 501 so the SDK falls back to a single PUT); If-Unmodified-Since; Unity Catalog itself
    (any /Volumes/<catalog>/<schema>/<volume> is accepted without creating catalogs, schemas or volumes).
  - Clusters: create options are stored, not validated; resize/RESIZING, events, pin, permanent-delete,
    spark-versions, list-node-types, policies, init scripts are stored but never executed, UC
    artifact allowlists and data_security_mode enforcement, Entra ID / Azure management-token auth modes.
  - Libraries: pypi/maven/cran/jar libraries are reported INSTALLED but not installed (only wheels reach
    PYTHONPATH); wheels with compiled extension modules cannot be imported from the zip; requirements files
    are checked for existence, not installed; all-cluster libraries.
  - Jobs: schedules, triggers, queueing, max_concurrent_runs, retries, repair, run_if/conditions other than
    ALL_SUCCESS, for_each/condition/sql/dbt/pipeline/jar/spark_submit tasks (they end FAILED), job clusters
    (tasks run on an ephemeral local environment), git_source, permissions, job-level environments,
    notebook `%pip`/`%run`/`%sql` magics (magic lines are comments), dbutils beyond notebook.exit and
    widgets (fs, secrets, notebook.run raise NotImplementedError); runs expiring after 60 days; 2.2 pagination
    applies to tasks and job_clusters only; restart of a TERMINATED cluster answers INVALID_STATE (no knob).
  - Fidelity against the legacy databricks-cli 0.18 (it needs port 80) is not part of the test suite.
  - Auth: only personal access tokens (Bearer); no OAuth, no Entra JWTs, no per-user permissions.
"""
from __future__ import annotations

import base64
import binascii
import collections
import email.utils
import fnmatch
import hashlib
import http.server
import io
import json
import math
import os
import posixpath
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import atomic

DEFAULT_TOKEN = "dapi-local-token"
USER_NAME = "local-user@example.com"
USER_ID = "7001000000000001"
ORG_ID = "1234567890123456"
MB = 1024 * 1024
WORKSPACE_IMPORT_LIMIT = 10 * MB  # 10,485,760 bytes
DBFS_BLOCK_LIMIT = MB  # put `contents`, add-block `data`, read `length`
FILES_PUT_LIMIT = 5 * 1024 * MB
OUTPUT_LIMIT = 5 * MB  # notebook_output.result, logs
LOG_LIMIT = 100_000  # request log entries kept (oldest dropped first)
API_PREFIX = re.compile(r"^/api/(2\.\d)/(.*)$")
ADMIN_PREFIX = "/__local__/"

# Nominal durations (seconds) before --time-scale; see the module docstring.
DURATIONS = {
    "cluster_start": 6.0,
    "cluster_restart": 6.0,
    "cluster_terminate": 2.0,
    "library_install": 3.0,
    "run_pending": 1.0,
    "run_terminating": 0.5,
}
SEED_CLUSTERS = [
    {
        "cluster_id": "0101-000000-local001",
        "cluster_name": "ci-cd-dev",
        "spark_version": "15.4.x-scala2.12",
        "state": "RUNNING",
        "data_security_mode": "SINGLE_USER",
    },
    {
        "cluster_id": "0101-000000-local002",
        "cluster_name": "ci-cd-legacy",
        "spark_version": "14.3.x-scala2.12",
        "state": "TERMINATED",
        "data_security_mode": "USER_ISOLATION",
    },
]


def now_ms() -> int:
    return int(time.time() * 1000)


# --------------------------------------------------------------------------------------------------------------
# Errors and responses
# --------------------------------------------------------------------------------------------------------------


class ApiError(Exception):
    """An error answer: `{"error_code", "message"}` with an HTTP status (and optional extra headers)."""

    def __init__(self, status: int, error_code: str | int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message
        self.headers = headers or {}
        self.empty_body = False

    def response(self) -> "Response":
        body = b"" if self.empty_body else _json_bytes({"error_code": self.error_code, "message": self.message})
        return Response(self.status, body, dict(self.headers), "application/json")


def invalid(message: str) -> ApiError:
    return ApiError(400, "INVALID_PARAMETER_VALUE", message)


def not_found(message: str) -> ApiError:
    return ApiError(404, "RESOURCE_DOES_NOT_EXIST", message)


def already_exists(message: str, status: int = 400) -> ApiError:
    return ApiError(status, "RESOURCE_ALREADY_EXISTS", message)


def invalid_state(message: str) -> ApiError:
    return ApiError(400, "INVALID_STATE", message)


class ConnectionResetFault(Exception):
    """Raised by fault injection: drop the connection with a TCP reset instead of answering."""


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


def ok(value: Any = None, status: int = 200) -> Response:
    return Response(status, _json_bytes({} if value is None else value))


def no_content() -> Response:
    return Response(204, b"", {}, "")


# --------------------------------------------------------------------------------------------------------------
# Requests: query/JSON/multipart parameters
# --------------------------------------------------------------------------------------------------------------


@dataclass
class Part:
    name: str
    data: bytes
    filename: str | None = None


def parse_multipart(body: bytes, content_type: str) -> dict[str, Part]:
    """Split a multipart/form-data body into named parts; part bodies stay opaque bytes (never recursed into)."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not match:
        raise ApiError(400, "MALFORMED_REQUEST", "Invalid multipart request: no boundary")
    delimiter = b"--" + match.group(1).encode("latin-1")
    parts: dict[str, Part] = {}
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        if chunk.startswith(b"\r\n"):
            chunk = chunk[2:]
        head, sep, data = chunk.partition(b"\r\n\r\n")
        if not sep:
            continue
        if data.endswith(b"\r\n"):
            data = data[:-2]
        disposition = ""
        for line in head.decode("latin-1").split("\r\n"):
            key, _, value = line.partition(":")
            if key.strip().lower() == "content-disposition":
                disposition = value
        name = re.search(r'(?:^|;)\s*name="([^"]*)"', disposition)
        filename = re.search(r'filename="([^"]*)"', disposition)
        if name:
            parts[name.group(1)] = Part(name.group(1), data, filename.group(1) if filename else None)
    return parts


def to_bool(value: Any, default: bool = False) -> bool:
    """Booleans arrive as JSON true/false, "true"/"false", "True"/"False" (CLI 0.18 multipart) or strings in JSON."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return bool(value)
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise invalid(f"Invalid boolean value: {value}")


class Request:
    """One API call: method, URL-decoded path, query, headers and body, with lazy JSON/multipart parsing."""

    def __init__(self, method: str, raw_path: str, headers: Any, body: bytes):
        self.method = method
        split = urllib.parse.urlsplit(raw_path)
        self.raw_path = split.path
        self.path = urllib.parse.unquote(split.path)
        self.query = {k: v[-1] for k, v in urllib.parse.parse_qs(split.query, keep_blank_values=True).items()}
        self.headers = headers
        self.body = body
        self.version = ""
        self._json: Any = None
        self._form: dict[str, Part] | None = None

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "") or ""

    @property
    def is_multipart(self) -> bool:
        return self.content_type.lower().startswith("multipart/form-data")

    def form(self) -> dict[str, Part]:
        if self._form is None:
            self._form = parse_multipart(self.body, self.content_type) if self.is_multipart else {}
        return self._form

    def json(self) -> dict:
        """The body as a JSON object whatever the content type (CLI 0.18 sends text/json); {} when empty."""
        if self._json is None:
            if self.is_multipart or self.content_type.lower().startswith("application/octet-stream") or not self.body.strip():
                self._json = {}
            else:
                try:
                    value = json.loads(self.body)
                except (ValueError, UnicodeDecodeError):
                    raise ApiError(400, "MALFORMED_REQUEST", "Invalid JSON given in the body of the request - expected a map")
                if not isinstance(value, dict):
                    raise ApiError(400, "MALFORMED_REQUEST", "Invalid JSON given in the body of the request - expected a map")
                self._json = value
        return self._json

    def param(self, name: str, default: Any = None) -> Any:
        """Query string first, then multipart text fields, then the JSON body (GET bodies too, as the seed sends)."""
        if name in self.query:
            return self.query[name]
        if self.is_multipart:
            part = self.form().get(name)
            if part is not None and part.filename is None:
                return part.data.decode("utf-8")
            return default
        return self.json().get(name, default)

    def required(self, name: str) -> Any:
        value = self.param(name)
        if value is None or value == "":
            raise invalid(f"Missing required field: {name}")
        return value

    def int_param(self, name: str, default: int | None = None, required: bool = False) -> int | None:
        value = self.required(name) if required else self.param(name, default)
        if value is None or value == "":
            return default
        try:
            return int(value)
        except (TypeError, ValueError):
            raise invalid(f"Invalid value for {name}: {value!r} is not an integer")


# --------------------------------------------------------------------------------------------------------------
# Fault injection, rate limits, latency
# --------------------------------------------------------------------------------------------------------------

FAULT_KINDS = ("429", "500", "502", "503", "504", "reset")
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
                rule.rate = float(value)
                if not 0 <= rule.rate <= 1:
                    raise ValueError(f"rate={value} must be between 0 and 1")
            elif key in ("skip", "times"):
                number = int(value)
                if number < 0:
                    raise ValueError(f"{key}={value} must be >= 0")
                setattr(rule, key, number)
            elif key == "retry_after":
                retry_after_set = True
                rule.retry_after = None if value.lower() == "none" else int(value)
            else:
                raise ValueError(f"unknown fault rule field {key!r} (path, method, fault, rate, skip, times, retry_after)")
        if not retry_after_set and rule.fault == "429":
            rule.retry_after = 1
        rules.append(rule)
    return rules


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
    value = float(number)
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
        if not sep:
            default = float(ms)
        else:
            if not pattern.startswith(("/", "*")):
                pattern = "*/" + pattern
            rules.append((pattern, float(ms)))
    return default, rules


# --------------------------------------------------------------------------------------------------------------
# Request log
# --------------------------------------------------------------------------------------------------------------


@dataclass
class RequestRecord:
    """One served request: never headers or bodies (they can carry secrets)."""

    method: str
    path: str
    query: str
    status: int
    duration: float
    started: float
    fault: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


# --------------------------------------------------------------------------------------------------------------
# Storage: trees of directories/notebooks/files (workspace, DBFS, volumes) with blob persistence
# --------------------------------------------------------------------------------------------------------------


class Tree:
    """A file tree keyed by normalised absolute path. Nodes are dicts; `data` holds file/notebook bytes."""

    def __init__(self, roots: tuple[str, ...] = ()):
        self.nodes: dict[str, dict] = {}
        self.children: dict[str, set[str]] = {}
        self._add({"path": "/", "type": "DIRECTORY"})
        for root in roots:
            self.mkdirs(root)

    @staticmethod
    def parent(path: str) -> str:
        return posixpath.dirname(path) or "/"

    def get(self, path: str) -> dict | None:
        return self.nodes.get(path)

    def _add(self, node: dict) -> dict:
        path = node["path"]
        stamp = now_ms()
        node.setdefault("created_at", stamp)
        node.setdefault("modified_at", stamp)
        node.setdefault("object_id", _next_object_id())
        self.nodes[path] = node
        if path != "/":
            self.children.setdefault(self.parent(path), set()).add(path)
        if node["type"] == "DIRECTORY":
            self.children.setdefault(path, set())
        return node

    def mkdirs(self, path: str) -> dict:
        """mkdir -p; raise ApiError RESOURCE_ALREADY_EXISTS when a prefix is not a directory."""
        existing = self.nodes.get(path)
        if existing is not None:
            if existing["type"] != "DIRECTORY":
                raise already_exists(f"Cannot create directory {path}: a file already exists at {path}")
            return existing
        if path != "/":
            self.mkdirs(self.parent(path))
        return self._add({"path": path, "type": "DIRECTORY"})

    def put(self, path: str, node_type: str, data: bytes, **extra: Any) -> dict:
        """Create or replace a leaf at path (the caller has checked conflicts and the parent)."""
        old = self.nodes.get(path)
        node = {"path": path, "type": node_type, "data": data, **extra}
        if old is not None:
            node["object_id"] = old["object_id"] if old["type"] == node_type else _next_object_id()
            node["created_at"] = old["created_at"]
            node["modified_at"] = now_ms()
            self.nodes[path] = node
            return node
        return self._add(node)

    def list(self, path: str) -> list[dict]:
        return [self.nodes[child] for child in sorted(self.children.get(path, ()))]

    def delete(self, path: str) -> None:
        for child in list(self.children.get(path, ())):
            self.delete(child)
        self.children.pop(path, None)
        self.nodes.pop(path, None)
        if path != "/":
            self.children.get(self.parent(path), set()).discard(path)

    def move(self, source: str, destination: str) -> None:
        subtree = [p for p in self.nodes if p == source or p.startswith(source.rstrip("/") + "/")]
        moved = {p: dict(self.nodes[p]) for p in subtree}
        self.delete(source)
        self.mkdirs(self.parent(destination))
        for old_path in sorted(moved, key=len):
            node = moved[old_path]
            node["path"] = destination + old_path[len(source):]
            self._add(node)

    def is_empty_dir(self, path: str) -> bool:
        return not self.children.get(path)

    def to_state(self) -> list[dict]:
        out = []
        for path in sorted(self.nodes, key=len):
            live = self.nodes[path]
            node = {k: v for k, v in live.items() if k not in ("data", "_sha")}
            if "data" in live:
                node["sha256"] = self.sha256(live)
            out.append(node)
        return out

    @staticmethod
    def sha256(node: dict) -> str:
        """Content hash, cached on the node (a write always creates a new node, so the cache cannot go stale)."""
        if "_sha" not in node:
            node["_sha"] = hashlib.sha256(node["data"]).hexdigest()
        return node["_sha"]

    @classmethod
    def from_state(cls, nodes: list[dict], read_blob: Callable[[str], bytes]) -> "Tree":
        tree = cls()
        for node in nodes:
            if node["path"] == "/":
                continue
            node = dict(node)
            sha = node.pop("sha256", None)
            if sha is not None:
                node["data"] = read_blob(sha)
            tree._add(node)
        return tree


_object_ids = iter(range(1_000_000_000, 1 << 62))
_object_lock = threading.Lock()


def _next_object_id() -> int:
    with _object_lock:
        return next(_object_ids)


def normalise_workspace_path(path: Any) -> str:
    """`/Workspace/Users/x` and `/Users/x` are the same object; trailing slashes are ignored."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise invalid(f"Path ({path}) is not absolute. Please specify an absolute path starting with '/'.")
    path = posixpath.normpath(path)
    if path.startswith("//"):
        path = "/" + path.lstrip("/")
    if path == "/Workspace":
        return "/"
    if path.startswith("/Workspace/"):
        path = path[len("/Workspace"):]
    return path


def normalise_dbfs_path(path: Any) -> str:
    """DBFS paths may carry `dbfs:` and a trailing slash (CLI 0.18 sends both)."""
    if not isinstance(path, str) or not path:
        raise invalid("Missing required field: path")
    if path.startswith("dbfs:"):
        path = path[len("dbfs:"):]
    if not path.startswith("/"):
        raise invalid(f"Path must be absolute: {path}")
    path = posixpath.normpath(path)
    if path.startswith("//"):
        path = "/" + path.lstrip("/")
    return path


NOTEBOOK_HEADERS = {
    "PYTHON": "# Databricks notebook source",
    "SQL": "-- Databricks notebook source",
    "SCALA": "// Databricks notebook source",
    "R": "# Databricks notebook source",
}
LANGUAGE_EXTENSIONS = {"PYTHON": "py", "SQL": "sql", "SCALA": "scala", "R": "r"}
EXTENSION_LANGUAGES = {".py": "PYTHON", ".sql": "SQL", ".scala": "SCALA", ".r": "R"}
CELL_SEPARATORS = {"PYTHON": "# COMMAND ----------", "SQL": "-- COMMAND ----------", "SCALA": "// COMMAND ----------", "R": "# COMMAND ----------"}


def ipynb_to_source(content: bytes) -> str:
    """A Jupyter notebook as Databricks Python source: code cells as code, markdown cells as `# MAGIC %md`."""
    try:
        notebook = json.loads(content)
        cells = notebook["cells"]
    except (ValueError, KeyError, TypeError):
        raise invalid("The notebook content is not valid JSON in Jupyter format.")
    chunks = []
    for cell in cells:
        text = cell.get("source", "")
        text = "".join(text) if isinstance(text, list) else str(text)
        if cell.get("cell_type") == "markdown":
            text = "\n".join(["# MAGIC %md"] + [f"# MAGIC {line}" if line else "# MAGIC" for line in text.splitlines()])
        chunks.append(text.rstrip("\n"))
    return NOTEBOOK_HEADERS["PYTHON"] + "\n" + "\n\n# COMMAND ----------\n\n".join(chunks) + "\n"


def source_to_ipynb(source: str) -> bytes:
    lines = source.splitlines()
    if lines and lines[0].strip() == NOTEBOOK_HEADERS["PYTHON"]:
        lines = lines[1:]
    cells, current = [], []
    for line in lines + ["# COMMAND ----------"]:
        if line.strip() == "# COMMAND ----------":
            text = "\n".join(current).strip("\n")
            current = []
            if not text:
                continue
            if text.startswith("# MAGIC %md"):
                md = [re.sub(r"^# MAGIC ?", "", ln) for ln in text.splitlines()]
                md[0] = md[0][len("%md"):].lstrip()
                cells.append({"cell_type": "markdown", "metadata": {}, "source": "\n".join(md).strip("\n")})
            else:
                cells.append({"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [], "source": text})
        else:
            current.append(line)
    notebook = {"cells": cells, "metadata": {"language_info": {"name": "python"}}, "nbformat": 4, "nbformat_minor": 0}
    return json.dumps(notebook, indent=1).encode("utf-8")


def with_notebook_header(data: bytes, language: str) -> bytes:
    header = NOTEBOOK_HEADERS.get(language, "# Databricks notebook source").encode()
    if data.lstrip().startswith(header):
        return data
    return header + b"\n" + data


def http_date(ms: int) -> str:
    return email.utils.formatdate(ms / 1000, usegmt=True)



# --------------------------------------------------------------------------------------------------------------
# The emulated workspace: state and API handlers (no HTTP here)
# --------------------------------------------------------------------------------------------------------------

Handler = Callable[["Emulator", Request], Response]
ROUTES: dict[tuple[str, str], tuple[tuple[str, ...], Handler]] = {}


def route(method: str, service_path: str, versions: tuple[str, ...] = ("2.0",)) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        ROUTES[(method, service_path)] = (versions, handler)
        return handler

    return register


@dataclass
class ScriptedOutcome:
    """What a run of a notebook path does instead of executing it (tests use it for speed)."""

    result_state: str = "SUCCESS"
    duration_seconds: float = 0.0
    result: str | None = None
    error: str | None = None
    error_trace: str | None = None


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
# DBFS and Files API (Volumes and workspace files)
# --------------------------------------------------------------------------------------------------------------


def file_info(node: dict) -> dict:
    is_dir = node["type"] == "DIRECTORY"
    return {
        "path": node["path"],
        "is_dir": is_dir,
        "file_size": 0 if is_dir else len(node.get("data", b"")),
        "modification_time": node["modified_at"],
    }


class _Files:
    """DBFS handles and the path-to-store mapping shared by DBFS, Files API, libraries and run execution."""

    def dbfs_node(self, path: str) -> dict:
        node = self.dbfs.get(path)
        if node is None:
            raise not_found(f"No file or directory exists on path {path}.")
        return node

    def dbfs_write(self, path: str, data: bytes, overwrite: bool) -> None:
        existing = self.dbfs.get(path)
        if existing is not None and (not overwrite or existing["type"] == "DIRECTORY"):
            raise already_exists(f"A file or directory already exists at the input path {path}.")
        self.dbfs_check_parent(path)
        self.dbfs.mkdirs(Tree.parent(path))
        self.dbfs.put(path, "FILE", data)
        self.mark_dirty()

    def dbfs_check_parent(self, path: str) -> None:
        prefix = Tree.parent(path)
        while prefix != "/":
            node = self.dbfs.get(prefix)
            if node is not None and node["type"] != "DIRECTORY":
                raise already_exists(f"A file or directory already exists at the input path {prefix}.")
            prefix = Tree.parent(prefix)

    def dbfs_handle(self, request: Request) -> dict:
        handle_id = request.int_param("handle", required=True)
        handle = self.dbfs_handles.get(handle_id)
        if handle is not None and time.monotonic() - handle["used"] > self.dbfs_handle_timeout:
            self.dbfs_handles.pop(handle_id, None)
            handle = None
        if handle is None:
            raise not_found(f"Handle {handle_id} does not exist or has expired.")
        handle["used"] = time.monotonic()
        return handle

    def files_store(self, path: str) -> tuple[Tree, str]:
        """The tree and normalised path a Files API path lives in: /Volumes/... or /Workspace/..."""
        path = posixpath.normpath(path) if path.startswith("/") else path
        if path == "/Volumes" or path.startswith("/Volumes/"):
            parts = path.split("/")
            if len(parts) < 5:
                raise invalid(f"Invalid path {path}: expected /Volumes/<catalog>/<schema>/<volume>/...")
            return self.volumes, path
        if path == "/Workspace" or path.startswith("/Workspace/"):
            return self.workspace, normalise_workspace_path(path)
        raise invalid(f"Invalid path {path}: the Files API serves /Volumes/... and /Workspace/... paths.")

    def locate(self, uri: str) -> tuple[Tree, str] | None:
        """Where a library/init-script/python_file URI lives in our stores, None for external schemes."""
        if uri.startswith("dbfs:"):
            return self.dbfs, normalise_dbfs_path(uri)
        if uri.startswith("/Volumes/"):
            return self.volumes, posixpath.normpath(uri)
        if uri.startswith("/"):
            return self.workspace, normalise_workspace_path(uri)
        if uri.startswith("file:"):
            return None
        return None

    def read_uri(self, uri: str) -> bytes | None:
        located = self.locate(uri)
        if located is None:
            return None
        node = located[0].get(located[1])
        return None if node is None or node["type"] == "DIRECTORY" else node.get("data", b"")

    def write_file(self, uri: str, data: bytes) -> None:
        located = self.locate(uri)
        if located is None:
            raise ValueError(f"cannot store {uri}: use dbfs:/..., /Volumes/... or a workspace path")
        tree, path = located
        tree.mkdirs(Tree.parent(path))
        tree.put(path, "FILE", data)
        self.mark_dirty()

    def files_api(self, request: Request, service_path: str) -> Response:
        kind = service_path.split("/")[1]
        raw = "/" + service_path.split("/", 2)[2] if service_path.count("/") >= 2 else "/"
        tree, path = self.files_store(raw)
        method = request.method
        if kind == "files":
            return self.files_file(request, method, tree, path)
        return self.files_directory(request, method, tree, path)

    def files_file(self, request: Request, method: str, tree: Tree, path: str) -> Response:
        node = tree.get(path)
        if method == "PUT":
            overwrite = to_bool(request.query.get("overwrite"), default=True)
            if len(request.body) > FILES_PUT_LIMIT:
                raise ApiError(400, "INVALID_PARAMETER_VALUE", f"File size exceeds the maximum of {FILES_PUT_LIMIT} bytes.")
            if node is not None and node["type"] == "DIRECTORY":
                raise ApiError(409, "ALREADY_EXISTS", "A directory already exists at the path of the file being created.")
            if node is not None and (not overwrite or node["type"] == "NOTEBOOK"):
                raise ApiError(409, "ALREADY_EXISTS", "The file being created already exists.")
            self.files_mkdirs(tree, Tree.parent(path))
            tree.put(path, "FILE", request.body)
            self.mark_dirty()
            return no_content()
        if method == "POST" and request.query.get("action") == "initiate-upload":
            if node is not None and not to_bool(request.query.get("overwrite"), default=True):
                raise ApiError(409, "ALREADY_EXISTS", "The file being created already exists.")
            token = base64.urlsafe_b64encode(os.urandom(18)).decode("ascii")
            self.upload_sessions[token] = path
            return ok({"multipart_upload": {"session_token": token}})
        if node is None or node["type"] == "DIRECTORY":
            raise ApiError(404, "NOT_FOUND", "The file being accessed is not found.")
        if method == "DELETE":
            tree.delete(path)
            self.mark_dirty()
            return no_content()
        if method not in ("GET", "HEAD"):
            raise ApiError(404, "ENDPOINT_NOT_FOUND", f"No API found for '{method} {request.path}'")
        data = node.get("data", b"") if node["type"] == "FILE" else with_notebook_header(node.get("data", b""), node.get("language", "PYTHON"))
        headers = {"Last-Modified": http_date(node["modified_at"]), "Accept-Ranges": "bytes"}
        range_header = request.headers.get("Range")
        if method == "GET" and range_header:
            match = re.fullmatch(r"bytes=(\d*)-(\d*)", range_header.strip())
            if not match or (not match.group(1) and not match.group(2)):
                raise ApiError(416, "INVALID_PARAMETER_VALUE", f"Invalid range: {range_header}")
            size = len(data)
            if match.group(1):
                start = int(match.group(1))
                end = int(match.group(2)) if match.group(2) else size - 1
            else:
                start, end = max(0, size - int(match.group(2))), size - 1
            if start >= size and size > 0:
                raise ApiError(416, "INVALID_PARAMETER_VALUE", f"Range {range_header} is not satisfiable (size {size}).")
            end = min(end, size - 1)
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
            return Response(206, data[start:end + 1], headers, "application/octet-stream")
        if method == "HEAD":
            headers["Content-Length"] = str(len(data))
            return Response(200, b"", headers, "application/octet-stream")
        return Response(200, data, headers, "application/octet-stream")

    def files_mkdirs(self, tree: Tree, path: str) -> None:
        prefix = path
        while prefix not in ("/", ""):
            node = tree.get(prefix)
            if node is not None and node["type"] != "DIRECTORY":
                raise ApiError(409, "ALREADY_EXISTS", f"A file already exists at {prefix}.")
            prefix = Tree.parent(prefix)
        tree.mkdirs(path)

    def files_directory(self, request: Request, method: str, tree: Tree, path: str) -> Response:
        if method == "PUT":
            self.files_mkdirs(tree, path)
            self.mark_dirty()
            return no_content()
        node = tree.get(path)
        implicit_volume = tree is self.volumes and len(path.split("/")) == 5
        if (node is None and not implicit_volume) or (node is not None and node["type"] != "DIRECTORY"):
            raise ApiError(404, "NOT_FOUND", "The directory being accessed is not found.")
        if method == "HEAD":
            return Response(200, b"", {}, "")
        if method == "DELETE":
            if node is not None and not tree.is_empty_dir(path):
                raise ApiError(400, "DIRECTORY_NOT_EMPTY", "The directory being deleted is not empty.")
            if node is not None and path != "/":
                tree.delete(path)
                self.mark_dirty()
            return no_content()
        if method != "GET":
            raise ApiError(404, "ENDPOINT_NOT_FOUND", f"No API found for '{method} {request.path}'")
        page_size = request.int_param("page_size", 1000)
        if page_size is None or page_size < 1:
            page_size = 1000
        page_size = min(page_size, 1000)
        offset = _decode_page_token(request.param("page_token"))
        children = tree.list(path) if node is not None else []
        display_prefix = "/Workspace" if tree is self.workspace else ""
        entries = []
        for child in children[offset:offset + page_size]:
            entry = {"path": display_prefix + child["path"], "name": posixpath.basename(child["path"]), "is_directory": child["type"] == "DIRECTORY"}
            if child["type"] != "DIRECTORY":
                entry["file_size"] = len(child.get("data", b""))
                entry["last_modified"] = child["modified_at"]
            entries.append(entry)
        body: dict[str, Any] = {}
        if entries:
            body["contents"] = entries
        if offset + page_size < len(children):
            body["next_page_token"] = _encode_page_token(offset + page_size)
        return ok(body)


def _encode_page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode("ascii")


def _decode_page_token(token: Any) -> int:
    if not token:
        return 0
    try:
        text = base64.urlsafe_b64decode(str(token).encode("ascii")).decode()
        kind, _, value = text.partition(":")
        if kind != "offset":
            raise ValueError(text)
        return max(0, int(value))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise invalid(f"Invalid page_token: {token}")


@route("POST", "dbfs/put")
def dbfs_put(emu: Emulator, request: Request) -> Response:
    path = normalise_dbfs_path(request.required("path"))
    overwrite = to_bool(request.param("overwrite"))
    if request.is_multipart:
        form = request.form()
        part = form.get("file") or form.get("contents")
        if part is None:
            raise invalid("Missing required field: contents")
        data = part.data
        if part.filename is None:  # an inline field, not a file part: the 1 MB limit applies
            data = _b64decode(data.decode("ascii", "replace"), "contents")
            _check_block(data, "contents")
    else:
        data = _b64decode(request.param("contents", ""), "contents")
        _check_block(data, "contents")
    emu.dbfs_write(path, data, overwrite)
    return ok()


def _check_block(data: bytes, name: str) -> None:
    if len(data) > DBFS_BLOCK_LIMIT:
        raise ApiError(
            400,
            "MAX_BLOCK_SIZE_EXCEEDED",
            f"The '{name}' data cannot exceed {DBFS_BLOCK_LIMIT} bytes. Found: {len(data)} bytes. You might want to use streaming upload instead.",
        )


@route("POST", "dbfs/create")
def dbfs_create(emu: Emulator, request: Request) -> Response:
    path = normalise_dbfs_path(request.required("path"))
    existing = emu.dbfs.get(path)
    if existing is not None and (not to_bool(request.param("overwrite")) or existing["type"] == "DIRECTORY"):
        raise already_exists(f"A file or directory already exists at the input path {path}.")
    emu.dbfs_check_parent(path)
    handle = emu.new_id("handle")
    emu.dbfs_handles[handle] = {"path": path, "chunks": [], "used": time.monotonic(), "overwrite": to_bool(request.param("overwrite"))}
    return ok({"handle": handle})


@route("POST", "dbfs/add-block")
def dbfs_add_block(emu: Emulator, request: Request) -> Response:
    handle = emu.dbfs_handle(request)
    data = _b64decode(request.required("data"), "data")
    _check_block(data, "data")
    handle["chunks"].append(data)
    return ok()


@route("POST", "dbfs/close")
def dbfs_close(emu: Emulator, request: Request) -> Response:
    handle = emu.dbfs_handle(request)
    emu.dbfs_handles.pop(int(request.param("handle")), None)
    emu.dbfs_write(handle["path"], b"".join(handle["chunks"]), overwrite=True)
    return ok()


@route("GET", "dbfs/get-status")
def dbfs_get_status(emu: Emulator, request: Request) -> Response:
    return ok(file_info(emu.dbfs_node(normalise_dbfs_path(request.required("path")))))


@route("GET", "dbfs/list")
def dbfs_list(emu: Emulator, request: Request) -> Response:
    path = normalise_dbfs_path(request.required("path"))
    node = emu.dbfs_node(path)
    if node["type"] != "DIRECTORY":
        return ok({"files": [file_info(node)]})
    files = [file_info(child) for child in emu.dbfs.list(path)]
    return ok({"files": files} if files else {})


@route("POST", "dbfs/mkdirs")
def dbfs_mkdirs(emu: Emulator, request: Request) -> Response:
    path = normalise_dbfs_path(request.required("path"))
    prefix = path
    while prefix != "/":
        node = emu.dbfs.get(prefix)
        if node is not None and node["type"] != "DIRECTORY":
            raise already_exists(f"A file or directory already exists at the input path {prefix}.")
        prefix = Tree.parent(prefix)
    emu.dbfs.mkdirs(path)
    emu.mark_dirty()
    return ok()


@route("POST", "dbfs/delete")
def dbfs_delete(emu: Emulator, request: Request) -> Response:
    path = normalise_dbfs_path(request.required("path"))
    node = emu.dbfs.get(path)
    if node is None:
        if emu.dbfs_delete_missing_ok:
            return ok()
        raise not_found(f"No file or directory exists on path {path}.")
    if path == "/":
        raise invalid("Cannot delete the DBFS root.")
    if node["type"] == "DIRECTORY" and not emu.dbfs.is_empty_dir(path) and not to_bool(request.param("recursive")):
        raise ApiError(400, "IO_ERROR", f"Directory {path} is not empty. Use recursive delete or remove its contents first.")
    emu.dbfs.delete(path)
    emu.mark_dirty()
    return ok()


@route("GET", "dbfs/read")
def dbfs_read(emu: Emulator, request: Request) -> Response:
    path = normalise_dbfs_path(request.required("path"))
    offset = request.int_param("offset", 0)
    length = request.int_param("length", 512 * 1024)
    if offset < 0 or length < 0:
        raise invalid("offset and length must be non-negative")
    if length > DBFS_BLOCK_LIMIT:
        raise ApiError(400, "MAX_READ_SIZE_EXCEEDED", f"Cannot read more than {DBFS_BLOCK_LIMIT} bytes, requested {length}.")
    node = emu.dbfs_node(path)
    if node["type"] == "DIRECTORY":
        raise invalid(f"Cannot read {path}: it is a directory.")
    chunk = node["data"][offset:offset + length]
    return ok({"bytes_read": len(chunk), "data": base64.b64encode(chunk).decode("ascii")})


@route("POST", "dbfs/move")
def dbfs_move(emu: Emulator, request: Request) -> Response:
    source = normalise_dbfs_path(request.required("source_path"))
    destination = normalise_dbfs_path(request.required("destination_path"))
    emu.dbfs_node(source)
    if emu.dbfs.get(destination) is not None:
        raise already_exists(f"A file or directory already exists at the input path {destination}.")
    if destination.startswith(source.rstrip("/") + "/"):
        raise invalid(f"Cannot move {source} into itself ({destination}).")
    emu.dbfs_check_parent(destination)
    emu.dbfs.move(source, destination)
    emu.mark_dirty()
    return ok()


@route("POST", "fs/create-upload-part-urls")
@route("POST", "fs/create-resumable-upload-url")
@route("POST", "fs/create-abort-upload-url")
@route("POST", "fs/create-download-url")
def files_presigned(emu: Emulator, request: Request) -> Response:
    # No cloud storage here: clients fall back to single PUT/GET through the Files API.
    raise ApiError(501, "NOT_IMPLEMENTED", "Presigned URLs are not available on the local workspace.")


# --------------------------------------------------------------------------------------------------------------
# Clusters and Libraries
# --------------------------------------------------------------------------------------------------------------

CLUSTER_STATES = ("PENDING", "RUNNING", "RESTARTING", "RESIZING", "TERMINATING", "TERMINATED", "ERROR", "UNKNOWN")
# Fields a create/edit request sets; `edit` replaces all of them (omitted ones reset to their defaults).
EDITABLE_FIELDS = (
    "cluster_name", "spark_version", "node_type_id", "driver_node_type_id", "num_workers", "autoscale",
    "spark_conf", "spark_env_vars", "custom_tags", "init_scripts", "azure_attributes", "autotermination_minutes",
    "data_security_mode", "single_user_name", "policy_id", "runtime_engine", "enable_elastic_disk",
    "instance_pool_id", "driver_instance_pool_id", "ssh_public_keys", "cluster_log_conf", "docker_image",
    "apply_policy_default_values", "enable_local_disk_encryption", "is_single_node", "kind", "use_ml_runtime",
    "workload_type",
)
CLUSTER_DEFAULTS = {
    "spark_version": "15.4.x-scala2.12",
    "node_type_id": "Standard_DS3_v2",
    "driver_node_type_id": "Standard_DS3_v2",
    "num_workers": 1,
    "autotermination_minutes": 60,
    "spark_conf": {},
    "spark_env_vars": {},
    "custom_tags": {},
    "init_scripts": [],
    "azure_attributes": {"first_on_demand": 1, "availability": "ON_DEMAND_AZURE", "spot_bid_max_price": -1.0},
    "data_security_mode": "SINGLE_USER",
    "runtime_engine": "STANDARD",
    "enable_elastic_disk": True,
}
LIBRARY_TYPES = ("whl", "jar", "egg", "requirements", "pypi", "maven", "cran")
STATE_MESSAGES = {"PENDING": "Starting Spark", "RESTARTING": "Restarting Spark", "TERMINATING": "Terminating the cluster"}


def runtime_version(spark_version: str) -> tuple[int, int]:
    match = re.match(r"(\d+)\.(\d+)", spark_version or "")
    return (int(match.group(1)), int(match.group(2))) if match else (99, 0)


def library_key(library: dict) -> str:
    return json.dumps(library, sort_keys=True)


class _Clusters:
    """Cluster state machine and library statuses, advanced lazily from wall-clock timestamps."""

    def add_cluster(self, spec: dict) -> dict:
        cluster_id = spec.get("cluster_id") or f"0101-{self.new_id('cluster'):06d}-local{random.randrange(16**3):03x}"
        cluster = json.loads(json.dumps(CLUSTER_DEFAULTS))
        cluster.update({k: v for k, v in spec.items() if k != "state"})
        cluster["cluster_id"] = cluster_id
        cluster.setdefault("cluster_name", cluster_id)
        cluster.setdefault("driver_node_type_id", cluster.get("node_type_id"))
        if cluster.get("data_security_mode") == "SINGLE_USER":
            cluster.setdefault("single_user_name", USER_NAME)
        cluster.setdefault("cluster_source", "UI")
        cluster["creator_user_name"] = cluster.get("creator_user_name", USER_NAME)
        cluster["default_tags"] = {"Vendor": "Databricks", "Creator": USER_NAME, "ClusterName": cluster["cluster_name"], "ClusterId": cluster_id}
        cluster["start_time"] = now_ms()
        cluster["_next"] = None
        state = str(spec.get("state", "TERMINATED")).upper()
        if state not in CLUSTER_STATES:
            raise invalid(f"Unknown cluster state {state}")
        self.clusters[cluster_id] = cluster
        self.libraries.setdefault(cluster_id, [])
        self.enter_state(cluster, state, time.time())
        return cluster

    def get_cluster(self, cluster_id: Any) -> dict:
        cluster = self.clusters.get(str(cluster_id)) if cluster_id else None
        if cluster is None:
            raise invalid(f"Cluster {cluster_id} does not exist")
        self.advance_cluster(cluster)
        return cluster

    def enter_state(self, cluster: dict, state: str, at: float) -> None:
        cluster["state"] = state
        cluster["state_message"] = STATE_MESSAGES.get(state, "")
        if state == "RUNNING":
            cluster["_running_since"] = at
            cluster.pop("terminated_time", None)
            cluster.pop("termination_reason", None)
            libraries = [lib for lib in self.libraries.get(cluster["cluster_id"], []) if not lib["uninstall"]]
            for lib in libraries:  # a (re)start reinstalls everything that is not pending removal
                lib.update(final=None, messages=[], snapshot=None)
            self.libraries[cluster["cluster_id"]] = libraries
        else:
            cluster["_running_since"] = None
        if state == "TERMINATED":
            cluster["terminated_time"] = int(at * 1000)
            cluster.setdefault("termination_reason", {"code": "USER_REQUEST", "type": "SUCCESS", "parameters": {"username": USER_NAME}})
        if state == "ERROR":
            cluster["state_message"] = "Cluster entered the ERROR state (set by the local workspace)."

    def schedule(self, cluster: dict, state: str, then: str, seconds: float) -> None:
        self.enter_state(cluster, state, time.time())
        cluster["_next"] = {"state": then, "due": time.time() + seconds}
        self.mark_dirty()

    def advance_cluster(self, cluster: dict) -> None:
        pending = cluster.get("_next")
        if pending and time.time() >= pending["due"]:
            cluster["_next"] = None
            if pending["state"] == "RUNNING":
                cluster["last_restarted_time"] = int(pending["due"] * 1000)
            self.enter_state(cluster, pending["state"], pending["due"])
            self.mark_dirty()

    def force_cluster_state(self, cluster_id: str, state: str) -> None:
        cluster = self.get_cluster(cluster_id)
        if state not in CLUSTER_STATES:
            raise ValueError(f"unknown cluster state {state}")
        cluster["_next"] = None
        self.enter_state(cluster, state, time.time())
        self.mark_dirty()

    def cluster_details(self, cluster: dict) -> dict:
        self.advance_cluster(cluster)
        details = {k: v for k, v in cluster.items() if not k.startswith("_")}
        details["spec"] = {k: cluster[k] for k in EDITABLE_FIELDS if k in cluster}
        return json.loads(json.dumps(details))

    def start_cluster(self, cluster: dict) -> None:
        self.schedule(cluster, "PENDING", "RUNNING", self.scaled("cluster_start"))

    # ---- libraries ----------------------------------------------------------------------------------------

    def library_status(self, cluster: dict, lib: dict) -> str:
        if lib["uninstall"]:
            return "UNINSTALL_ON_RESTART"
        running_since = cluster.get("_running_since")
        if cluster["state"] != "RUNNING" or running_since is None:
            return "PENDING"
        if lib["final"]:
            return lib["final"]
        elapsed = time.time() - max(lib["requested"], running_since)
        duration = self.scaled("library_install")
        if elapsed < duration * 0.2:
            return "PENDING"
        if elapsed < duration * 0.5:
            return "RESOLVING"
        if elapsed < duration:
            return "INSTALLING"
        self.finish_install(cluster, lib)
        return lib["final"]

    def finish_install(self, cluster: dict, lib: dict) -> None:
        """Resolve the artifact in our own stores: missing files (and DBFS wheels on DBR >= 15.1) fail."""
        kind, value = next(iter(lib["library"].items()))
        lib["final"], lib["messages"] = "INSTALLED", []
        self.mark_dirty()
        if kind not in ("whl", "jar", "egg", "requirements"):
            return
        uri = str(value)
        cluster_id = cluster["cluster_id"]
        version = runtime_version(cluster.get("spark_version", ""))

        def fail(reason: str) -> None:
            lib["final"] = "FAILED"
            lib["messages"] = [
                f"Library installation attempted on the driver node of cluster {cluster_id} and failed. Please refer to "
                f"the following error message to fix the library or contact Databricks support. Error Code: "
                f"DRIVER_LIBRARY_INSTALLATION_FAILURE. Error Message: {reason}"
            ]

        if kind == "egg" and version >= (14, 0):
            return fail("Egg libraries are not supported on Databricks Runtime 14.0 and above.")
        if uri.startswith("dbfs:") and version >= (15, 1):
            return fail("DBFS library installations are not supported on DBR 15 or above.")
        if kind == "requirements" and uri.startswith("dbfs:"):
            return fail("Requirements files must be stored as workspace files or in Unity Catalog volumes.")
        located = self.locate(uri)
        if located is None:
            return  # external storage (abfss://, s3://...): nothing to check here
        data = self.read_uri(uri)
        if data is None:
            return fail(f"java.io.FileNotFoundException: {uri} (No such file or directory)")
        if kind == "whl":
            if not uri.endswith(".whl"):
                return fail(f"{uri} is not a valid wheel file name.")
            lib["snapshot"] = data  # identity is the spec: replacing the file later does not reload it

    def library_statuses(self, cluster_id: str) -> list[dict]:
        cluster = self.get_cluster(cluster_id)
        statuses = []
        for lib in sorted(self.libraries.get(cluster_id, []), key=lambda entry: entry["uninstall"]):
            status = {"library": lib["library"], "status": self.library_status(cluster, lib), "is_library_for_all_clusters": False}
            if status["status"] == "UNINSTALL_ON_RESTART":
                status["messages"] = ["Uninstall pending restart"]
            elif lib["messages"]:
                status["messages"] = list(lib["messages"])
            statuses.append(status)
        return statuses

    def installed_wheels(self, cluster_id: str | None) -> list[tuple[str, bytes]]:
        """(file name, bytes) of wheels INSTALLED on the cluster, as snapshotted at install time."""
        if not cluster_id or cluster_id not in self.clusters:
            return []
        cluster = self.get_cluster(cluster_id)
        wheels = []
        for lib in self.libraries.get(cluster_id, []):
            if "whl" in lib["library"] and self.library_status(cluster, lib) in ("INSTALLED", "UNINSTALL_ON_RESTART") and lib.get("snapshot"):
                wheels.append((posixpath.basename(str(lib["library"]["whl"])), lib["snapshot"]))
        return wheels


def _validate_libraries(request: Request) -> list[dict]:
    libraries = request.param("libraries")
    if not isinstance(libraries, list) or not libraries:
        raise invalid("libraries must be a non-empty list of Library objects, e.g. [{\"whl\": \"/Volumes/...\"}]")
    for library in libraries:
        if not isinstance(library, dict) or len([k for k in library if k in LIBRARY_TYPES]) != 1:
            raise invalid(f"Each library must set exactly one of {', '.join(LIBRARY_TYPES)}: {library!r}")
    return [{k: v for k, v in lib.items() if k in LIBRARY_TYPES} for lib in libraries]


CLUSTER_VERSIONS = ("2.0", "2.1")


@route("GET", "clusters/get", CLUSTER_VERSIONS)
def clusters_get(emu: Emulator, request: Request) -> Response:
    return ok(emu.cluster_details(emu.get_cluster(request.required("cluster_id"))))


@route("GET", "clusters/list", CLUSTER_VERSIONS)
def clusters_list(emu: Emulator, request: Request) -> Response:
    clusters = [emu.cluster_details(c) for c in emu.clusters.values()]
    return ok({"clusters": clusters} if clusters else {})


@route("POST", "clusters/create", CLUSTER_VERSIONS)
def clusters_create(emu: Emulator, request: Request) -> Response:
    spec = {k: v for k, v in request.json().items() if k in EDITABLE_FIELDS}
    if not spec.get("spark_version"):
        raise invalid("Missing required field: spark_version")
    cluster = emu.add_cluster({**spec, "state": "TERMINATED"})
    cluster.pop("terminated_time", None)
    cluster.pop("termination_reason", None)
    emu.start_cluster(cluster)
    return ok({"cluster_id": cluster["cluster_id"]})


@route("POST", "clusters/start", CLUSTER_VERSIONS)
def clusters_start(emu: Emulator, request: Request) -> Response:
    cluster = emu.get_cluster(request.required("cluster_id"))
    if cluster["state"] != "TERMINATED":
        raise invalid_state(f"Cluster {cluster['cluster_id']} is in unexpected state {cluster['state'].title()}.")
    emu.start_cluster(cluster)
    return ok()


@route("POST", "clusters/restart", CLUSTER_VERSIONS)
def clusters_restart(emu: Emulator, request: Request) -> Response:
    cluster = emu.get_cluster(request.required("cluster_id"))
    if cluster["state"] != "RUNNING":
        raise invalid_state(f"Cluster {cluster['cluster_id']} is in unexpected state {cluster['state'].title()}.")
    emu.schedule(cluster, "RESTARTING", "RUNNING", emu.scaled("cluster_restart"))
    return ok()


@route("POST", "clusters/delete", CLUSTER_VERSIONS)
def clusters_delete(emu: Emulator, request: Request) -> Response:
    cluster = emu.get_cluster(request.required("cluster_id"))
    if cluster["state"] in ("TERMINATED", "TERMINATING"):
        return ok()
    cluster["termination_reason"] = {"code": "USER_REQUEST", "type": "SUCCESS", "parameters": {"username": USER_NAME}}
    emu.schedule(cluster, "TERMINATING", "TERMINATED", emu.scaled("cluster_terminate"))
    return ok()


@route("POST", "clusters/edit", CLUSTER_VERSIONS)
def clusters_edit(emu: Emulator, request: Request) -> Response:
    cluster = emu.get_cluster(request.required("cluster_id"))
    request.required("spark_version")
    if cluster["state"] not in ("RUNNING", "TERMINATED"):
        raise invalid_state(f"Cluster {cluster['cluster_id']} is in unexpected state {cluster['state'].title()}.")
    body = request.json()
    for key in EDITABLE_FIELDS:  # edit replaces the whole spec
        cluster.pop(key, None)
    cluster.update(json.loads(json.dumps(CLUSTER_DEFAULTS)))
    cluster.update({k: v for k, v in body.items() if k in EDITABLE_FIELDS})
    cluster.setdefault("cluster_name", cluster["cluster_id"])
    cluster.setdefault("driver_node_type_id", cluster.get("node_type_id"))
    if "autoscale" in body:
        cluster.pop("num_workers", None)
    if cluster["state"] == "RUNNING":
        emu.schedule(cluster, "RESTARTING", "RUNNING", emu.scaled("cluster_restart"))
    emu.mark_dirty()
    return ok()


@route("POST", "libraries/install")
def libraries_install(emu: Emulator, request: Request) -> Response:
    cluster = emu.get_cluster(request.required("cluster_id"))
    libraries = _validate_libraries(request)
    entries = emu.libraries.setdefault(cluster["cluster_id"], [])
    known = {library_key(lib["library"]): lib for lib in entries}
    for library in libraries:
        existing = known.get(library_key(library))
        if existing is not None:
            existing["uninstall"] = False  # re-installing cancels a pending uninstall; otherwise a no-op
            continue
        entry = {"library": library, "requested": time.time(), "final": None, "messages": [], "uninstall": False, "snapshot": None}
        entries.append(entry)
        known[library_key(library)] = entry
    emu.mark_dirty()
    return ok()


@route("POST", "libraries/uninstall")
def libraries_uninstall(emu: Emulator, request: Request) -> Response:
    cluster = emu.get_cluster(request.required("cluster_id"))
    wanted = {library_key(lib) for lib in _validate_libraries(request)}
    for entry in emu.libraries.get(cluster["cluster_id"], []):
        if library_key(entry["library"]) in wanted:
            entry["uninstall"] = True
    emu.mark_dirty()
    return ok()


@route("GET", "libraries/cluster-status")
def libraries_cluster_status(emu: Emulator, request: Request) -> Response:
    cluster_id = str(request.required("cluster_id"))
    statuses = emu.library_statuses(cluster_id)
    body: dict[str, Any] = {"cluster_id": cluster_id}
    if statuses:
        body["library_statuses"] = statuses
    return ok(body)


@route("GET", "libraries/all-cluster-statuses")
def libraries_all_statuses(emu: Emulator, request: Request) -> Response:
    statuses = []
    for cluster_id in emu.clusters:
        library_statuses = emu.library_statuses(cluster_id)
        if library_statuses:
            statuses.append({"cluster_id": cluster_id, "library_statuses": library_statuses})
    return ok({"statuses": statuses} if statuses else {})


# --------------------------------------------------------------------------------------------------------------
# Jobs and runs
# --------------------------------------------------------------------------------------------------------------

JOB_VERSIONS = ("2.0", "2.1", "2.2")
TERMINAL_LIFE_CYCLES = ("TERMINATED", "SKIPPED", "INTERNAL_ERROR")
TASK_TYPES = (
    "notebook_task", "spark_python_task", "python_wheel_task", "spark_jar_task", "spark_submit_task", "sql_task",
    "dbt_task", "pipeline_task", "run_job_task", "condition_task", "for_each_task", "clean_rooms_notebook_task",
    "dashboard_task", "power_bi_task", "gen_ai_compute_task",
)
EXECUTABLE_TASK_TYPES = ("notebook_task", "spark_python_task", "python_wheel_task")
RUNNER = Path(__file__).resolve().with_name("local_workspace_runner.py")
TERMINATION = {
    "SUCCESS": ("SUCCESS", "SUCCESS", ""),
    "FAILED": ("RUN_EXECUTION_ERROR", "CLIENT_ERROR", "Workload failed, see run output for details"),
    "TIMEDOUT": ("RUN_EXECUTION_ERROR", "CLIENT_ERROR", "Run timed out"),
    "CANCELED": ("USER_CANCELED", "SUCCESS", "Run was cancelled"),
    "UPSTREAM_FAILED": ("SKIPPED", "CLIENT_ERROR", "Upstream task failed"),
    "UPSTREAM_CANCELED": ("SKIPPED", "CLIENT_ERROR", "Upstream task was cancelled"),
    "EXCLUDED": ("SKIPPED", "SUCCESS", "Task was excluded"),
    "INTERNAL_ERROR": ("INTERNAL_ERROR", "INTERNAL_ERROR", "Internal error"),
}


@dataclass
class Outcome:
    result_state: str
    result: str | None = None
    error: str | None = None
    error_trace: str | None = None
    logs: str | None = None
    state_message: str = ""
    life_cycle_state: str = "TERMINATED"


def _page(items: list, token: Any, size: int) -> tuple[list, str | None]:
    offset = _decode_page_token(token)
    rest = items[offset:offset + size]
    return rest, (_encode_page_token(offset + size) if offset + size < len(items) else None)


class _Jobs:
    """Jobs, runs and their execution threads."""

    # ---- records and views --------------------------------------------------------------------------------

    def get_run(self, run_id: Any) -> dict:
        try:
            run = self.runs.get(int(run_id))
        except (TypeError, ValueError):
            run = None
        if run is None:
            raise invalid(f"Run {run_id} does not exist.")
        return run

    def get_job(self, job_id: Any) -> dict:
        try:
            job = self.jobs.get(int(job_id))
        except (TypeError, ValueError):
            job = None
        if job is None:
            raise invalid(f"Job {job_id} does not exist.")
        return job

    @staticmethod
    def set_state(run: dict, life_cycle: str, result_state: str | None = None, message: str = "") -> None:
        state = {"life_cycle_state": life_cycle, "state_message": message, "user_cancelled_or_timedout": result_state in ("CANCELED", "TIMEDOUT")}
        if result_state:
            state["result_state"] = result_state
        run["state"] = state
        status_state = "TERMINATED" if life_cycle in TERMINAL_LIFE_CYCLES else life_cycle
        status: dict[str, Any] = {"state": status_state}
        if status_state == "TERMINATED":
            code, kind, text = TERMINATION.get(result_state or "INTERNAL_ERROR", TERMINATION["INTERNAL_ERROR"])
            status["termination_details"] = {"code": code, "type": kind, "message": message or text}
        run["status"] = status

    def run_view(self, run: dict, version: str = "2.1", page_token: Any = None) -> dict:
        view = {k: v for k, v in run.items() if not k.startswith("_")}
        if run.get("_task_ids"):
            tasks = [self.run_view(self.runs[t]) for t in run["_task_ids"]]
            if version == "2.2" and (len(tasks) > 100 or page_token):
                tasks, next_token = _page(tasks, page_token, 100)
                if next_token:
                    view["next_page_token"] = next_token
            view["tasks"] = tasks
        return json.loads(json.dumps(view))

    def new_run(self, spec: dict, *, run_type: str, run_name: str, job_id: int | None = None, params: dict | None = None) -> dict:
        run_id = self.new_id("run")
        run = {
            "run_id": run_id,
            "number_in_job": run_id,
            "original_attempt_run_id": run_id,
            "creator_user_name": USER_NAME,
            "run_name": run_name,
            "run_type": run_type,
            "start_time": now_ms(),
            "setup_duration": 0,
            "execution_duration": 0,
            "cleanup_duration": 0,
            "run_page_url": f"{self.base_url}/#job/{job_id or run_id}/run/{run_id}",
            "attempt_number": 0,
            "_params": params or {},
            "_timeout": spec.get("timeout_seconds") or 0,
            "_cancel": False,
        }
        if job_id is not None:
            run["job_id"] = job_id
        if spec.get("tasks") is not None:
            run["format"] = "MULTI_TASK"
            run["_task_ids"] = []
            for task in spec["tasks"]:
                task_id = self.new_id("run")
                task_run = {k: v for k, v in task.items() if k != "idempotency_token"}
                task_run.update({
                    "run_id": task_id,
                    "attempt_number": 0,
                    "start_time": 0,
                    "setup_duration": 0,
                    "execution_duration": 0,
                    "cleanup_duration": 0,
                    "run_page_url": f"{self.base_url}/#job/{job_id or run_id}/run/{task_id}",
                    "_parent": run_id,
                    "_timeout": task.get("timeout_seconds") or run["_timeout"],
                })
                self.set_state(task_run, "PENDING")
                self.runs[task_id] = task_run
                run["_task_ids"].append(task_id)
        else:
            run["format"] = "SINGLE_TASK"
            for key in TASK_TYPES + ("existing_cluster_id", "new_cluster", "libraries"):
                if key in spec:
                    run[key] = spec[key]
            run["task_key"] = run_name
        self.set_state(run, "PENDING", message="Waiting for cluster")
        self.runs[run_id] = run
        self.mark_dirty()
        thread = threading.Thread(target=self.execute_run, args=(run_id,), daemon=True, name=f"run-{run_id}")
        self.threads = [t for t in self.threads if t.is_alive()] + [thread]
        thread.start()
        return run

    def after_load(self) -> None:
        for run in self.runs.values():
            if run["state"]["life_cycle_state"] not in TERMINAL_LIFE_CYCLES:
                self.set_state(run, "INTERNAL_ERROR", "INTERNAL_ERROR", "The local workspace restarted while the run was active.")

    # ---- execution ----------------------------------------------------------------------------------------

    def wait_until(self, predicate: Callable[[], bool], deadline: float) -> bool:
        """Under self.lock: wait (condition variable, bounded by deadline) until predicate() holds."""
        while not predicate():
            remaining = deadline - time.time()
            if remaining <= 0 or self.stopping.is_set():
                return predicate()
            self.changed.wait(min(remaining, 0.05))
        return True

    def execute_run(self, run_id: int) -> None:
        try:
            self._execute_run(run_id)
        except Exception as error:  # never leave a run hanging on an emulator bug
            import traceback

            traceback.print_exc(file=sys.stderr)
            with self.lock:
                run = self.runs[run_id]
                self.set_state(run, "INTERNAL_ERROR", "INTERNAL_ERROR", f"Local workspace error: {error}")
                run["end_time"] = now_ms()
                self.mark_dirty()
        self.persist_hook()

    def _execute_run(self, run_id: int) -> None:
        with self.lock:
            parent = self.runs[run_id]
            tasks = [self.runs[t] for t in parent.get("_task_ids", [])] or [parent]
            cluster_ids = {t.get("existing_cluster_id") for t in tasks if t.get("existing_cluster_id")}
            for cluster_id in cluster_ids:
                cluster = self.clusters.get(cluster_id)
                if cluster is not None:
                    self.advance_cluster(cluster)
                    if cluster["state"] == "TERMINATED":  # runs start their cluster, as the service does
                        self.start_cluster(cluster)
            pending_until = time.time() + self.scaled("run_pending")
            cluster_deadline = pending_until + self.scaled("cluster_start") + self.scaled("cluster_restart") + 30

            def clusters_ready() -> bool:
                for cid in cluster_ids:
                    cluster = self.clusters.get(cid)
                    if cluster is None:
                        continue
                    self.advance_cluster(cluster)
                    if cluster["state"] in ("ERROR", "UNKNOWN", "TERMINATED"):
                        return True  # it will not come up by itself: stop waiting, the run fails below
                    if cluster["state"] != "RUNNING":
                        return False
                return time.time() >= pending_until or parent["_cancel"]

            self.wait_until(clusters_ready, cluster_deadline)
            setup_ms = now_ms() - parent["start_time"]
            if parent["_cancel"]:
                return self._finish(parent, tasks, "CANCELED", "Run cancelled before it started.")
            broken = [cid for cid in cluster_ids if cid in self.clusters and self.clusters[cid]["state"] != "RUNNING"]
            if broken or self.stopping.is_set():
                state = self.clusters[broken[0]]["state"].title() if broken else "Stopping"
                message = f"Cluster {broken[0]} is in unexpected state {state}." if broken else "The local workspace is stopping."
                for task in tasks:
                    if task is not parent:
                        self.set_state(task, "INTERNAL_ERROR", "INTERNAL_ERROR", message)
                self.set_state(parent, "INTERNAL_ERROR", "INTERNAL_ERROR", message)
                parent["end_time"] = now_ms()
                self.mark_dirty()
                return
            parent["setup_duration"] = setup_ms
            self.set_state(parent, "RUNNING", message="In run")
            self.mark_dirty()
        results: dict[str, str] = {}
        for task in self._ordered(tasks):
            with self.lock:
                if parent["_cancel"]:
                    self.set_state(task, "TERMINATED", "CANCELED", "Run was cancelled")
                    results[task.get("task_key", "")] = "CANCELED"
                    continue
                blocked = self._blocked(task, results)
                if blocked:
                    self.set_state(task, "TERMINATED", blocked, TERMINATION[blocked][2])
                    results[task.get("task_key", "")] = blocked
                    self.mark_dirty()
                    continue
                task["start_time"] = now_ms()
                if task.get("existing_cluster_id"):
                    task["cluster_instance"] = {"cluster_id": task["existing_cluster_id"], "spark_context_id": str(7000000000000000000 + task["run_id"])}
                self.set_state(task, "RUNNING", message="In run")
                self.mark_dirty()
            outcome = self._run_task(parent, task)
            with self.lock:
                task["end_time"] = now_ms()
                task["execution_duration"] = task["end_time"] - task["start_time"]
                task["_output"] = {"result": outcome.result, "error": outcome.error, "error_trace": outcome.error_trace, "logs": outcome.logs}
                if task is not parent:
                    self.set_state(task, outcome.life_cycle_state, outcome.result_state, outcome.state_message)
                results[task.get("task_key", "")] = outcome.result_state
                self.mark_dirty()
        with self.lock:
            states = list(results.values())
            if parent["_cancel"] or "CANCELED" in states:
                final = "CANCELED"
            elif "TIMEDOUT" in states:
                final = "TIMEDOUT"
            elif any(s != "SUCCESS" for s in states):
                final = "FAILED"
            else:
                final = "SUCCESS"
            message = ""
            if parent.get("format") == "SINGLE_TASK":
                message = (parent.get("_output") or {}).get("error") or ""
            self._finish(parent, tasks, final, message)

    def _finish(self, parent: dict, tasks: list[dict], final: str, message: str) -> None:
        """Under self.lock: TERMINATING for a moment, then TERMINATED with `final`."""
        for task in tasks:
            if task is not parent and task["state"]["life_cycle_state"] not in TERMINAL_LIFE_CYCLES:
                self.set_state(task, "TERMINATED", "CANCELED", "Run was cancelled")
        self.set_state(parent, "TERMINATING", message="Terminating")
        self.mark_dirty()
        self.wait_until(lambda: False, time.time() + self.scaled("run_terminating"))
        parent["end_time"] = now_ms()
        parent["execution_duration"] = max(0, parent["end_time"] - parent["start_time"] - parent.get("setup_duration", 0))
        parent["run_duration"] = parent["end_time"] - parent["start_time"]
        self.set_state(parent, "TERMINATED", final, message)
        self.mark_dirty()

    @staticmethod
    def _ordered(tasks: list[dict]) -> list[dict]:
        """Tasks in dependency order (submission order among ready tasks); cycles keep submission order."""
        by_key = {t.get("task_key"): t for t in tasks}
        done: set[str] = set()
        ordered: list[dict] = []
        remaining = list(tasks)
        while remaining:
            for task in remaining:
                deps = [d.get("task_key") for d in task.get("depends_on") or [] if d.get("task_key") in by_key]
                if all(d in done for d in deps):
                    break
            else:
                task = remaining[0]
            remaining.remove(task)
            done.add(task.get("task_key"))
            ordered.append(task)
        return ordered

    @staticmethod
    def _blocked(task: dict, results: dict[str, str]) -> str | None:
        deps = [results.get(d.get("task_key"), "SUCCESS") for d in task.get("depends_on") or []]
        if not deps:
            return None
        success = [d == "SUCCESS" for d in deps]
        failed = [d in ("FAILED", "TIMEDOUT", "UPSTREAM_FAILED", "INTERNAL_ERROR") for d in deps]
        run_if = task.get("run_if") or "ALL_SUCCESS"
        runs = {
            "ALL_SUCCESS": all(success),
            "ALL_DONE": True,
            "NONE_FAILED": not any(failed),
            "AT_LEAST_ONE_SUCCESS": any(success),
            "ALL_FAILED": all(failed),
            "AT_LEAST_ONE_FAILED": any(failed),
        }.get(run_if, all(success))
        if runs:
            return None
        return "UPSTREAM_CANCELED" if "CANCELED" in deps else "UPSTREAM_FAILED"

    def _task_source(self, task: dict) -> tuple[str, str, bytes] | Outcome:
        """(kind, path, source bytes) for an executable task, or a failed Outcome."""
        if "notebook_task" in task:
            notebook = task["notebook_task"] or {}
            path = str(notebook.get("notebook_path", ""))
            if (notebook.get("source") or "WORKSPACE").upper() == "GIT":
                return Outcome("FAILED", error="Notebooks from git_source are not supported by the local workspace.")
            try:
                key = normalise_workspace_path(path)
            except ApiError:
                return Outcome("FAILED", error=f"Invalid notebook path: {path}")
            node = self.workspace.get(key)
            if node is None or node["type"] != "NOTEBOOK":
                return Outcome("FAILED", error=(
                    f"Unable to access the notebook \"{path}\". Either it does not exist, or the identity used to run "
                    f"this job, {USER_NAME}, lacks the required permissions."
                ))
            if node.get("language", "PYTHON") != "PYTHON":
                return Outcome("FAILED", error=f"Only Python notebooks can be executed by the local workspace ({path} is {node['language']}).")
            return "notebook", key, node["data"]
        if "spark_python_task" in task:
            path = str((task["spark_python_task"] or {}).get("python_file", ""))
            data = self.read_uri(path) if path.startswith(("/", "dbfs:")) else None
            if data is None:
                return Outcome("FAILED", error=f"File {path} does not exist or is not accessible.")
            return "python_file", path, data
        if "python_wheel_task" in task:
            return "python_wheel", "", b""
        kind = next((t for t in TASK_TYPES if t in task), "unknown")
        return Outcome("FAILED", error=f"Task type {kind} is not supported by the local workspace.")

    def scripted_outcome(self, task: dict) -> ScriptedOutcome | None:
        path = None
        if "notebook_task" in task:
            path = str((task["notebook_task"] or {}).get("notebook_path", ""))
        elif "spark_python_task" in task:
            path = str((task["spark_python_task"] or {}).get("python_file", ""))
        if not path:
            return None
        return self.scripted.get(_script_key(path))

    def script(self, path: str, outcome: ScriptedOutcome) -> None:
        with self.lock:
            self.scripted[_script_key(path)] = outcome

    def _run_task(self, parent: dict, task: dict) -> Outcome:
        with self.lock:
            scripted = self.scripted_outcome(task)
            if scripted is not None:
                deadline = time.time() + self.scaled(scripted.duration_seconds)
                self.wait_until(lambda: parent["_cancel"], deadline)
                if parent["_cancel"]:
                    return Outcome("CANCELED", state_message="Run was cancelled")
                return Outcome(
                    scripted.result_state,
                    result=scripted.result,
                    error=scripted.error,
                    error_trace=scripted.error_trace,
                    state_message=scripted.error or "",
                )
            source = self._task_source(task)
            if isinstance(source, Outcome):
                source.state_message = source.error or ""
                return source
            kind, path, data = source
            cluster_id = task.get("existing_cluster_id")
            wheels = self.installed_wheels(cluster_id)
            for library in task.get("libraries") or []:
                if isinstance(library, dict) and "whl" in library:
                    content = self.read_uri(str(library["whl"]))
                    if content is None:
                        return Outcome("FAILED", error=f"Library {library['whl']} does not exist.", state_message="Library installation failed")
                    wheels.append((posixpath.basename(str(library["whl"])), content))
            cluster = self.clusters.get(cluster_id) if cluster_id else None
            cluster_spec = cluster or task.get("new_cluster") or {}
            params = dict((task.get("notebook_task") or {}).get("base_parameters") or {})
            params.update(parent.get("_params", {}).get("job_parameters") or {})
            params.update(parent.get("_params", {}).get("notebook_params") or {})
            timeout = float(task.get("_timeout") or parent.get("_timeout") or self.run_timeout)
            spec = {"kind": kind, "path": path, "parameters": {str(k): str(v) for k, v in params.items()}}
            if kind == "python_file":
                spec["argv"] = [str(a) for a in (task["spark_python_task"].get("parameters") or parent.get("_params", {}).get("python_params") or [])]
            if kind == "python_wheel":
                wheel_task = task["python_wheel_task"] or {}
                spec["package_name"] = str(wheel_task.get("package_name", ""))
                spec["entry_point"] = str(wheel_task.get("entry_point", ""))
                named = wheel_task.get("named_parameters") or {}
                spec["argv"] = [f"--{k}={v}" for k, v in named.items()] or [str(a) for a in wheel_task.get("parameters") or parent.get("_params", {}).get("python_params") or []]
            env_vars = dict(cluster_spec.get("spark_env_vars") or {})
            env_vars["DATABRICKS_RUNTIME_VERSION"] = ".".join(map(str, runtime_version(cluster_spec.get("spark_version", "15.4"))))
            run_dir = self.work_dir / f"run-{task['run_id']}"
        return self._spawn(parent, task, run_dir, spec, data, wheels, env_vars, timeout)

    def _spawn(self, parent: dict, task: dict, run_dir: Path, spec: dict, source: bytes, wheels: list[tuple[str, bytes]], env_vars: dict, timeout: float) -> Outcome:
        """Execute one task in a subprocess (local_workspace_runner.py) under a deadline."""
        libs = run_dir / "libs"
        libs.mkdir(parents=True, exist_ok=True)
        paths = []
        for index, (name, content) in enumerate(wheels):
            target = libs / f"{index:02d}-{name}"
            target.write_bytes(content)
            paths.append(str(target))
        # Named after the notebook/file so tracebacks in error_trace point at it, not at a temp name.
        name = posixpath.basename(spec["path"]) or "main"
        source_file = run_dir / "src" / (name if name.endswith(".py") else name + ".py")
        source_file.parent.mkdir(parents=True, exist_ok=True)
        source_file.write_bytes(source)
        result_file = run_dir / "result.json"
        spec.update({"source_file": str(source_file), "result_file": str(result_file), "wheels": paths})
        spec_file = run_dir / "spec.json"
        spec_file.write_text(json.dumps(spec), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABRICKS_", "AZURE_", "ARM_", "LOCAL_WORKSPACE_", "SYSTEM_ACCESSTOKEN"))}
        env.update({str(k): str(v) for k, v in env_vars.items()})
        env["PYTHONPATH"] = os.pathsep.join(paths)
        env["PYTHONUNBUFFERED"] = "1"
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        log_path = run_dir / "output.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [sys.executable, str(RUNNER), str(spec_file)],
                cwd=run_dir, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )
        with self.lock:
            self.processes[task["run_id"]] = process
        deadline = time.monotonic() + timeout
        outcome: Outcome | None = None
        try:
            while True:
                try:
                    process.wait(timeout=min(0.05, max(0.0, deadline - time.monotonic())))
                    break
                except subprocess.TimeoutExpired:
                    pass
                if parent["_cancel"] or self.stopping.is_set():
                    outcome = Outcome("CANCELED", state_message="Run was cancelled")
                elif time.monotonic() >= deadline:
                    outcome = Outcome("TIMEDOUT", error=f"Run timed out after {timeout:g} seconds.", state_message=f"Run timed out after {timeout:g} seconds.")
                if outcome is not None:
                    process.kill()
                    process.wait(timeout=10)
                    break
        finally:
            with self.lock:
                self.processes.pop(task["run_id"], None)
        logs = log_path.read_bytes()[-OUTPUT_LIMIT:].decode("utf-8", "replace")
        if outcome is not None:
            outcome.logs = logs
            return outcome
        try:
            result = json.loads(result_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            tail = logs[-2000:]
            return Outcome("FAILED", error=f"The Python process exited with code {process.returncode} without a result.", error_trace=tail, logs=logs, state_message="Workload failed")
        if result.get("status") == "success":
            return Outcome("SUCCESS", result=result.get("result"), logs=logs)
        return Outcome("FAILED", error=result.get("error"), error_trace=result.get("error_trace"), logs=logs, state_message=result.get("error") or "Workload failed")

    def cancel_run(self, run: dict) -> None:
        if run["state"]["life_cycle_state"] in TERMINAL_LIFE_CYCLES:
            return
        run["_cancel"] = True
        for task_id in run.get("_task_ids", []) + [run["run_id"]]:
            process = self.processes.get(task_id)
            if process is not None and process.poll() is None:
                process.kill()
        self.mark_dirty()

    def wait_run(self, run_id: int, timeout: float) -> dict:
        deadline = time.time() + timeout
        with self.lock:
            run = self.get_run(run_id)
            if not self.wait_until(lambda: run["state"]["life_cycle_state"] in TERMINAL_LIFE_CYCLES, deadline):
                raise TimeoutError(f"run {run_id} is still {run['state']['life_cycle_state']} after {timeout} s")
            return self.run_view(run)

    def shutdown_runs(self) -> None:
        with self.lock:
            for run in self.runs.values():
                if "_parent" not in run:
                    self.cancel_run(run)
            threads, self.threads = self.threads, []
        for thread in threads:
            thread.join(timeout=15)

    def shutdown(self) -> None:
        self.stopping.set()
        with self.lock:
            self.changed.notify_all()
        self.shutdown_runs()

    def summary(self) -> dict:
        return {
            "workspace_objects": len(self.workspace.nodes),
            "dbfs_objects": len(self.dbfs.nodes),
            "volume_objects": len(self.volumes.nodes),
            "clusters": {cid: self.cluster_details(c)["state"] for cid, c in self.clusters.items()},
            "jobs": len(self.jobs),
            "runs": {rid: r["state"]["life_cycle_state"] for rid, r in self.runs.items() if "_parent" not in r},
            "scripted": sorted(self.scripted),
        }


def _script_key(path: str) -> str:
    if path.startswith("dbfs:"):
        return normalise_dbfs_path(path)
    if path.startswith("/Volumes/"):
        return posixpath.normpath(path)
    try:
        return normalise_workspace_path(path)
    except ApiError:
        return path


def _validate_tasks(tasks: Any) -> None:
    if not isinstance(tasks, list) or not tasks:
        raise invalid("tasks must be a non-empty list")
    keys = set()
    for task in tasks:
        if not isinstance(task, dict):
            raise invalid("Each task must be an object")
        key = task.get("task_key")
        if not key or not isinstance(key, str):
            raise invalid("Missing required field: task_key")
        if not re.fullmatch(r"[\w\-]{1,100}", key):
            raise invalid(f"Invalid task_key {key!r}: use letters, digits, '_' and '-' (at most 100)")
        if key in keys:
            raise invalid(f"Task key {key} is duplicated")
        keys.add(key)


def _check_clusters(emu: Emulator, tasks: list[dict]) -> None:
    for task in tasks:
        cluster_id = task.get("existing_cluster_id")
        if cluster_id and str(cluster_id) not in emu.clusters:
            raise invalid(f"Cluster {cluster_id} does not exist")
        notebook = task.get("notebook_task") or {}
        if len(json.dumps(notebook.get("base_parameters") or {})) > MB:
            raise invalid("base_parameters cannot exceed 1 MB once serialised to JSON.")


def _idempotent(emu: Emulator, request: Request) -> tuple[str | None, int | None]:
    token = request.param("idempotency_token")
    if token is None:
        return None, None
    token = str(token)
    if len(token) > 64:
        raise invalid("idempotency_token must be at most 64 characters long.")
    return token, emu.idempotency.get(token)


@route("POST", "jobs/runs/submit", JOB_VERSIONS)
def runs_submit(emu: Emulator, request: Request) -> Response:
    body = request.json()
    token, existing = _idempotent(emu, request)
    if existing is not None and existing in emu.runs:
        return ok({"run_id": existing})
    if body.get("tasks") is not None:
        _validate_tasks(body["tasks"])
        _check_clusters(emu, body["tasks"])
    elif any(kind in body for kind in TASK_TYPES):
        _check_clusters(emu, [body])
    else:
        raise invalid("A run must define tasks (or, in the single-task form, a task such as notebook_task).")
    run = emu.new_run(body, run_type="SUBMIT_RUN", run_name=str(body.get("run_name") or "Untitled"))
    if token is not None:
        emu.idempotency[token] = run["run_id"]
    return ok({"run_id": run["run_id"]})


@route("GET", "jobs/runs/get", JOB_VERSIONS)
def runs_get(emu: Emulator, request: Request) -> Response:
    run = emu.get_run(request.required("run_id"))
    return ok(emu.run_view(run, request.version, request.param("page_token")))


@route("GET", "jobs/runs/get-output", JOB_VERSIONS)
def runs_get_output(emu: Emulator, request: Request) -> Response:
    run = emu.get_run(request.required("run_id"))
    if run.get("_task_ids"):
        raise invalid(
            "Retrieving the output of runs with multiple tasks is not supported. Please retrieve the output of each "
            "individual task run instead."
        )
    body: dict[str, Any] = {"metadata": emu.run_view(run)}
    output = run.get("_output") or {}
    result_state = run["state"].get("result_state")
    if output.get("error"):
        body["error"] = output["error"]
        if output.get("error_trace"):
            body["error_trace"] = output["error_trace"]
    is_notebook = "notebook_task" in run
    if is_notebook and result_state == "SUCCESS":
        result = output.get("result")
        notebook_output: dict[str, Any] = {}
        if result is not None:
            encoded = result.encode("utf-8")
            notebook_output["result"] = encoded[:OUTPUT_LIMIT].decode("utf-8", "ignore")
            notebook_output["truncated"] = len(encoded) > OUTPUT_LIMIT
        body["notebook_output"] = notebook_output
    if not is_notebook and output.get("logs") is not None:
        logs = output["logs"]
        body["logs"] = logs
        body["logs_truncated"] = False
    return ok(body)


@route("POST", "jobs/runs/cancel", JOB_VERSIONS)
def runs_cancel(emu: Emulator, request: Request) -> Response:
    run = emu.get_run(request.required("run_id"))
    if "_parent" in run:
        run = emu.runs[run["_parent"]]
    emu.cancel_run(run)
    return ok()


@route("POST", "jobs/runs/delete", JOB_VERSIONS)
def runs_delete(emu: Emulator, request: Request) -> Response:
    run = emu.get_run(request.required("run_id"))
    if run["state"]["life_cycle_state"] not in TERMINAL_LIFE_CYCLES:
        raise invalid_state(f"Run {run['run_id']} is still active and cannot be deleted.")
    for task_id in run.get("_task_ids", []):
        emu.runs.pop(task_id, None)
    emu.runs.pop(run["run_id"], None)
    emu.mark_dirty()
    return ok()


@route("GET", "jobs/runs/list", JOB_VERSIONS)
def runs_list(emu: Emulator, request: Request) -> Response:
    limit = request.int_param("limit", 25)
    if limit is None or not 0 <= limit <= 25:
        raise invalid(f"limit must be between 1 and 25, got {limit}")
    limit = limit or 25
    runs = [r for r in emu.runs.values() if "_parent" not in r]
    job_id = request.param("job_id")
    if job_id not in (None, ""):
        runs = [r for r in runs if str(r.get("job_id")) == str(job_id)]
    if to_bool(request.param("active_only")):
        runs = [r for r in runs if r["state"]["life_cycle_state"] not in TERMINAL_LIFE_CYCLES]
    if to_bool(request.param("completed_only")):
        runs = [r for r in runs if r["state"]["life_cycle_state"] in TERMINAL_LIFE_CYCLES]
    run_type = request.param("run_type")
    if run_type:
        runs = [r for r in runs if r.get("run_type") == run_type]
    runs.sort(key=lambda r: r["run_id"], reverse=True)
    offset = request.int_param("offset", 0) or 0
    token = request.param("page_token")
    start = _decode_page_token(token) if token else offset
    page = runs[start:start + limit]
    expand = to_bool(request.param("expand_tasks"))
    views = []
    for run in page:
        view = emu.run_view(run)
        if not expand:
            view.pop("tasks", None)
        views.append(view)
    body: dict[str, Any] = {"has_more": start + limit < len(runs)}
    if views:
        body["runs"] = views
    if body["has_more"]:
        body["next_page_token"] = _encode_page_token(start + limit)
    if start > 0:
        body["prev_page_token"] = _encode_page_token(max(0, start - limit))
    return ok(body)


def _job_settings(settings: Any) -> dict:
    if not isinstance(settings, dict):
        raise invalid("Job settings must be an object.")
    settings = json.loads(json.dumps(settings))
    settings.pop("job_id", None)
    if settings.get("tasks") is not None:
        _validate_tasks(settings["tasks"])
    settings.setdefault("name", "Untitled")
    settings.setdefault("email_notifications", {})
    settings.setdefault("max_concurrent_runs", 1)
    settings.setdefault("timeout_seconds", 0)
    settings["format"] = "MULTI_TASK" if settings.get("tasks") is not None or not any(k in settings for k in TASK_TYPES) else "SINGLE_TASK"
    return settings


def _job_view(job: dict, version: str, page_token: Any = None, expand_tasks: bool = True) -> dict:
    view = json.loads(json.dumps(job))
    settings = view["settings"]
    if not expand_tasks:
        settings.pop("tasks", None)
        settings.pop("job_clusters", None)
    elif version == "2.2":
        for key in ("tasks", "job_clusters"):
            items = settings.get(key)
            if items is not None and (len(items) > 100 or page_token):
                settings[key], next_token = _page(items, page_token, 100)
                if next_token:
                    view["next_page_token"] = next_token
    return view


@route("POST", "jobs/create", JOB_VERSIONS)
def jobs_create(emu: Emulator, request: Request) -> Response:
    body = dict(request.json())
    body.pop("access_control_list", None)
    settings = _job_settings(body)
    job_id = emu.new_id("job")
    emu.jobs[job_id] = {
        "job_id": job_id,
        "creator_user_name": USER_NAME,
        "run_as_user_name": USER_NAME,
        "created_time": now_ms(),
        "settings": settings,
    }
    emu.mark_dirty()
    return ok({"job_id": job_id})


@route("GET", "jobs/get", JOB_VERSIONS)
def jobs_get(emu: Emulator, request: Request) -> Response:
    job = emu.get_job(request.required("job_id"))
    return ok(_job_view(job, request.version, request.param("page_token")))


@route("POST", "jobs/reset", JOB_VERSIONS)
def jobs_reset(emu: Emulator, request: Request) -> Response:
    job = emu.get_job(request.required("job_id"))
    job["settings"] = _job_settings(request.required("new_settings"))
    emu.mark_dirty()
    return ok()


@route("POST", "jobs/update", JOB_VERSIONS)
def jobs_update(emu: Emulator, request: Request) -> Response:
    job = emu.get_job(request.required("job_id"))
    settings = json.loads(json.dumps(job["settings"]))
    new = request.param("new_settings") or {}
    if not isinstance(new, dict):
        raise invalid("new_settings must be an object.")
    for field_name in request.param("fields_to_remove") or []:
        top, _, key = str(field_name).partition("/")
        if key and isinstance(settings.get(top), list):
            id_key = "task_key" if top == "tasks" else "job_cluster_key"
            settings[top] = [item for item in settings[top] if item.get(id_key) != key]
        elif not key:
            settings.pop(top, None)
    for key, value in new.items():
        if key in ("tasks", "job_clusters") and isinstance(value, list) and isinstance(settings.get(key), list):
            id_key = "task_key" if key == "tasks" else "job_cluster_key"
            merged = {item.get(id_key): item for item in settings[key]}
            for item in value:
                merged[item.get(id_key)] = item
            settings[key] = list(merged.values())
        else:
            settings[key] = value
    job["settings"] = _job_settings(settings)
    emu.mark_dirty()
    return ok()


@route("POST", "jobs/delete", JOB_VERSIONS)
def jobs_delete(emu: Emulator, request: Request) -> Response:
    job = emu.get_job(request.required("job_id"))
    emu.jobs.pop(job["job_id"], None)
    emu.mark_dirty()
    return ok()


@route("GET", "jobs/list", JOB_VERSIONS)
def jobs_list(emu: Emulator, request: Request) -> Response:
    limit = request.int_param("limit", 20)
    if limit is None or not 1 <= limit <= 100:
        raise invalid(f"The limit must be between 1 and 100, got {limit}.")
    jobs = sorted(emu.jobs.values(), key=lambda j: j["job_id"])
    name = request.param("name")
    if name:
        jobs = [j for j in jobs if str(j["settings"].get("name", "")).lower() == str(name).lower()]
    token = request.param("page_token")
    start = _decode_page_token(token) if token else (request.int_param("offset", 0) or 0)
    page = jobs[start:start + limit]
    expand = to_bool(request.param("expand_tasks"))
    has_more = start + limit < len(jobs)
    body: dict[str, Any] = {"has_more": has_more}
    if page:
        body["jobs"] = [_job_view(job, request.version, expand_tasks=expand) for job in page]
    if has_more:
        body["next_page_token"] = _encode_page_token(start + limit)
    if start > 0:
        body["prev_page_token"] = _encode_page_token(max(0, start - limit))
    return ok(body)


@route("POST", "jobs/run-now", JOB_VERSIONS)
def jobs_run_now(emu: Emulator, request: Request) -> Response:
    job = emu.get_job(request.required("job_id"))
    token, existing = _idempotent(emu, request)
    if existing is not None and existing in emu.runs:
        return ok({"run_id": existing, "number_in_job": existing})
    settings = job["settings"]
    defaults = {p["name"]: p.get("default") for p in settings.get("parameters") or [] if isinstance(p, dict) and "name" in p}
    defaults.update(request.param("job_parameters") or {})
    params = {
        "notebook_params": request.param("notebook_params") or {},
        "python_params": request.param("python_params") or [],
        "job_parameters": defaults,
    }
    tasks = settings.get("tasks")
    if tasks is not None:
        _check_clusters(emu, tasks)
    spec = {k: v for k, v in settings.items() if k in TASK_TYPES + ("tasks", "existing_cluster_id", "new_cluster", "libraries", "timeout_seconds")}
    run = emu.new_run(spec, run_type="JOB_RUN", run_name=str(settings.get("name", "Untitled")), job_id=job["job_id"], params=params)
    if token is not None:
        emu.idempotency[token] = run["run_id"]
    return ok({"run_id": run["run_id"], "number_in_job": run["number_in_job"]})


class Emulator(_Persistence, _Files, _Clusters, _Jobs):
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
            raise ApiError(404, "ENDPOINT_NOT_FOUND", f"No API found for '{request.method} {request.path}'")
        version, service_path = match.groups()
        request.version = version
        if service_path.startswith(("fs/files/", "fs/directories/")) or service_path in ("fs/files", "fs/directories"):
            if version != "2.0":
                raise ApiError(404, "ENDPOINT_NOT_FOUND", f"No API found for '{request.method} {request.path}'")
            with self.lock:
                return self.files_api(request, service_path)
        entry = ROUTES.get((request.method, service_path))
        if entry is None or version not in entry[0]:
            if request.method == "HEAD" and (("GET", service_path) in ROUTES):
                entry = ROUTES[("GET", service_path)]
            else:
                raise ApiError(404, "ENDPOINT_NOT_FOUND", f"No API found for '{request.method} /{service_path}'")
        with self.lock:
            return entry[1](self, request)

    # ---- Workspace API ----------------------------------------------------------------------------------------

    def object_info(self, node: dict) -> dict:
        info = {"object_type": node["type"], "path": node["path"], "object_id": node["object_id"], "resource_id": str(node["object_id"])}
        if node["type"] == "NOTEBOOK":
            info["language"] = node.get("language", "PYTHON")
        if node["type"] in ("NOTEBOOK", "FILE"):
            info["created_at"] = node["created_at"]
            info["modified_at"] = node["modified_at"]
        if node["type"] == "FILE":
            info["size"] = len(node.get("data", b""))
        return info

    def workspace_node(self, path: str) -> dict:
        node = self.workspace.get(path)
        if node is None:
            raise not_found(f"Path ({path}) doesn't exist.")
        return node

    def import_object(self, path: str, content: bytes, fmt: str, language: str | None, overwrite: bool) -> dict:
        fmt = (fmt or "SOURCE").upper()
        language = language.upper() if language else None
        if fmt in ("DBC", "HTML", "R_MARKDOWN"):
            raise invalid(f"Import format {fmt} is not supported by the local workspace.")
        if fmt not in ("SOURCE", "AUTO", "JUPYTER", "RAW"):
            raise invalid(f"Invalid import format: {fmt}")
        if language is not None and language not in NOTEBOOK_HEADERS:
            raise invalid(f"Invalid language: {language}")
        node_type, target = "FILE", path
        if fmt == "SOURCE":
            if language is None:
                raise invalid("The language field is required when importing a notebook in SOURCE format.")
            node_type = "NOTEBOOK"
        elif fmt == "JUPYTER":
            node_type, language = "NOTEBOOK", "PYTHON"
            content = ipynb_to_source(content).encode("utf-8")
        elif fmt == "AUTO":
            stem, ext = posixpath.splitext(path)
            if ext.lower() == ".ipynb":
                node_type, language, target = "NOTEBOOK", "PYTHON", stem
                content = ipynb_to_source(content).encode("utf-8")
            elif ext.lower() in EXTENSION_LANGUAGES:
                detected = EXTENSION_LANGUAGES[ext.lower()]
                if content.lstrip().startswith(NOTEBOOK_HEADERS[detected].encode()):
                    node_type, language, target = "NOTEBOOK", detected, stem
        if len(content) > WORKSPACE_IMPORT_LIMIT:
            if node_type == "FILE":
                message = f"File size imported is ({len(content)} bytes), exceeded max size ({WORKSPACE_IMPORT_LIMIT} bytes)"
            else:
                message = f"Notebook size imported is ({len(content)} bytes), exceeded max size ({WORKSPACE_IMPORT_LIMIT} bytes)"
            raise ApiError(400, "MAX_NOTEBOOK_SIZE_EXCEEDED", message)
        if target == "/":
            raise already_exists("Path (/) already exists.")
        parent = self.workspace.get(Tree.parent(target))
        if parent is None or parent["type"] != "DIRECTORY":
            raise not_found(f"The parent folder ({Tree.parent(target)}) does not exist.")
        existing = self.workspace.get(target)
        if existing is not None:
            if not overwrite:
                raise already_exists(f"Path ({target}) already exists.")
            if existing["type"] != node_type:
                raise already_exists(f"An item with path {target} already exists with a different object type ({existing['type']}).")
        extra = {"language": language} if node_type == "NOTEBOOK" else {}
        node = self.workspace.put(target, node_type, content, **extra)
        self.mark_dirty()
        return node

    def export_object(self, node: dict, fmt: str) -> tuple[bytes, str]:
        fmt = (fmt or "SOURCE").upper()
        if node["type"] == "DIRECTORY":
            raise invalid(f"Exporting directories ({node['path']}) is not supported by the local workspace.")
        data = node.get("data", b"")
        if node["type"] == "FILE":
            if fmt not in ("SOURCE", "AUTO", "RAW"):
                raise invalid(f"Export format {fmt} is not supported for files.")
            return data, posixpath.splitext(node["path"])[1].lstrip(".")
        language = node.get("language", "PYTHON")
        if fmt in ("SOURCE", "AUTO"):
            return with_notebook_header(data, language), LANGUAGE_EXTENSIONS[language]
        if fmt == "JUPYTER":
            if language != "PYTHON":
                raise invalid("Only Python notebooks can be exported in JUPYTER format by the local workspace.")
            return source_to_ipynb(data.decode("utf-8", "replace")), "ipynb"
        raise invalid(f"Export format {fmt} is not supported by the local workspace.")

    def read_workspace_file(self, path: str) -> bytes | None:
        node = self.workspace.get(path)
        return None if node is None or node["type"] == "DIRECTORY" else node.get("data", b"")


@route("POST", "workspace/import")
def workspace_import(emu: Emulator, request: Request) -> Response:
    path = normalise_workspace_path(request.required("path"))
    if request.is_multipart:
        part = request.form().get("content")
        if part is None:
            raise invalid("Missing required field: content")
        content = part.data  # multipart content is the raw file, with or without a filename
    else:
        encoded = request.param("content")
        if encoded is None:
            content = b""
        else:
            content = _b64decode(encoded, "content")
    emu.import_object(path, content, request.param("format", "SOURCE"), request.param("language"), to_bool(request.param("overwrite")))
    return ok()


def _b64decode(value: Any, name: str) -> bytes:
    if not isinstance(value, str):
        raise invalid(f"Invalid value for {name}: expected a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise invalid(f"The {name} field is not valid base64.")


@route("GET", "workspace/export")
def workspace_export(emu: Emulator, request: Request) -> Response:
    path = normalise_workspace_path(request.required("path"))
    node = emu.workspace_node(path)
    data, file_type = emu.export_object(node, request.param("format", "SOURCE"))
    if to_bool(request.param("direct_download")):
        return Response(200, data, {}, "application/octet-stream")
    if len(data) > WORKSPACE_IMPORT_LIMIT:
        raise ApiError(400, "MAX_NOTEBOOK_SIZE_EXCEEDED", f"Exported content is ({len(data)} bytes), exceeded max size ({WORKSPACE_IMPORT_LIMIT} bytes)")
    return ok({"content": base64.b64encode(data).decode("ascii"), "file_type": file_type})


@route("POST", "workspace/mkdirs")
def workspace_mkdirs(emu: Emulator, request: Request) -> Response:
    path = normalise_workspace_path(request.required("path"))
    prefix = path
    while prefix != "/":
        node = emu.workspace.get(prefix)
        if node is not None and node["type"] != "DIRECTORY":
            raise already_exists(f"Cannot create directory {path} because {prefix} is an existing {node['type'].lower()}.")
        prefix = Tree.parent(prefix)
    emu.workspace.mkdirs(path)
    emu.mark_dirty()
    return ok()


@route("GET", "workspace/list")
def workspace_list(emu: Emulator, request: Request) -> Response:
    path = normalise_workspace_path(request.required("path"))
    node = emu.workspace_node(path)
    if node["type"] != "DIRECTORY":
        return ok({"objects": [emu.object_info(node)]})
    objects = [emu.object_info(child) for child in emu.workspace.list(path)]
    return ok({"objects": objects} if objects else {})


@route("GET", "workspace/get-status")
def workspace_get_status(emu: Emulator, request: Request) -> Response:
    path = normalise_workspace_path(request.required("path"))
    return ok(emu.object_info(emu.workspace_node(path)))


@route("POST", "workspace/delete")
def workspace_delete(emu: Emulator, request: Request) -> Response:
    path = normalise_workspace_path(request.required("path"))
    node = emu.workspace_node(path)
    if path == "/":
        raise invalid("Cannot delete the workspace root.")
    if node["type"] == "DIRECTORY" and not emu.workspace.is_empty_dir(path) and not to_bool(request.param("recursive")):
        raise ApiError(400, "DIRECTORY_NOT_EMPTY", f"Folder ({path}) is not empty")
    emu.workspace.delete(path)
    emu.mark_dirty()
    return ok()


# ---- identity -------------------------------------------------------------------------------------------------


@route("GET", "preview/scim/v2/Me")
def scim_me(emu: Emulator, request: Request) -> Response:
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


class LocalWorkspace:
    """The emulator as a context manager: ``with LocalWorkspace(...) as ws: ws.url``.

    Arguments: token (the valid PAT), host/port (0 = free port), latency_ms (ms for every endpoint, or
    {glob: ms}, or ['GLOB=ms', ...]), rate_limits (['GLOB=N/s', ...]), faults (a SPEC string, see the module
    docstring), seed (for random faults), state_dir (persistence), time_scale (multiplies emulated
    durations), clusters (seed cluster dicts or a JSON file path; None = the two SEED_CLUSTERS, [] = none),
    run_timeout (deadline of run subprocesses without timeout_seconds), dbfs_handle_timeout (seconds a DBFS
    streaming handle lives idle), dbfs_delete_missing_ok (200 instead of 404 for deleting a missing DBFS path),
    tcp_nodelay (default True; benchmarks turn it off to compare with http.server's default).
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
    ):
        self.token = token
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
        header = request.headers.get("Authorization") or ""
        scheme, _, credential = header.partition(" ")
        if scheme.lower() != "bearer" or not credential.strip():
            raise ApiError(401, 401, "Credential was not sent or was of an unsupported type for this API.")
        if credential.strip() not in self.tokens:
            raise ApiError(403, 403, "Invalid access token.", {"X-Databricks-Reason-Phrase": "Invalid access token."})

    def _serve(self, handler: _RequestHandler) -> None:
        started_wall, started = time.time(), time.perf_counter()
        method = handler.command
        body = handler._read_body()
        request = Request(method, handler.path, handler.headers, body)
        path = request.path
        fault_name: str | None = None
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
                raise ApiError(404, "ENDPOINT_NOT_FOUND", f"No API found for '{method} {path}'")
        except ConnectionResetFault:
            handler.reset_connection()
            self._record(method, request, 0, started, started_wall, "reset")
            return
        except ApiError as error:
            if method == "HEAD":
                error.empty_body = True
            response = error.response()
        except Exception as error:  # a bug in the emulator: answer 500 like the service would, keep serving
            import traceback

            traceback.print_exc(file=sys.stderr)
            response = ApiError(500, "INTERNAL_ERROR", f"Local workspace error: {type(error).__name__}: {error}").response()
        # Logged before the reply leaves: a client that got its answer always finds the request in the log.
        if not path.startswith(ADMIN_PREFIX):
            self._record(method, request, response.status, started, started_wall, fault_name)
        handler.send_reply(response, head_only=(method == "HEAD"))

    def _record(self, method: str, request: Request, status: int, started: float, started_wall: float, fault: str | None) -> None:
        query = "&".join(f"{key}={value}" for key, value in request.query.items())
        record = RequestRecord(method, request.path, query, status, time.perf_counter() - started, started_wall, fault)
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


# --------------------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    import cli  # imported here so in-process users (tests) do not need the scripts folder on sys.path first
    from errors import InputError, UsageError

    @cli.entry
    def run(argv: list[str] | None) -> int:
        parser = cli.parser("local_workspace.py", __doc__)
        parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
        parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one (default 0)")
        parser.add_argument("--token", default=None, help="valid PAT (default $LOCAL_WORKSPACE_TOKEN, else dapi-local-token); for throwaway local tokens only")
        parser.add_argument("--latency-ms", action="append", default=[], metavar="[GLOB=]MS", help="added latency for every /api/ endpoint, or for those matching GLOB; repeatable")
        parser.add_argument("--rate-limit", action="append", default=[], metavar="GLOB=N/s", help="token-bucket rate limit (N/s or N/min) answering 429 + Retry-After; repeatable")
        parser.add_argument("--faults", default=None, metavar="SPEC", help="fault injection rules (syntax above)")
        parser.add_argument("--seed", type=int, default=None, help="random seed for probabilistic faults")
        parser.add_argument("--state-dir", default=None, help="persist the workspace in this folder (default: in memory)")
        parser.add_argument("--time-scale", type=float, default=1.0, help="multiply emulated durations (0.01 = 100x faster; default 1)")
        parser.add_argument("--clusters", default=None, metavar="SEED.json", help="seed clusters from a JSON list (default: two local clusters)")
        parser.add_argument("--run-timeout", type=float, default=600.0, help="deadline (s) of run subprocesses without timeout_seconds (default 600)")
        args = parser.parse_args(argv)
        if args.port < 0 or args.port > 65535:
            raise UsageError(f"--port {args.port} is not a valid port")
        if args.time_scale < 0:
            raise UsageError("--time-scale must be >= 0")
        try:
            parse_faults(args.faults)
            for text in args.rate_limit:
                parse_rate_limit(text)
            parse_latency(args.latency_ms)
        except ValueError as error:
            raise UsageError(str(error))
        clusters: Any = None
        if args.clusters:
            try:
                clusters = load_cluster_seed(Path(args.clusters))
            except (OSError, ValueError) as error:
                raise InputError(f"cannot read cluster seed {args.clusters}: {error}", hint="pass a JSON list of cluster objects")
        token = args.token or os.environ.get("LOCAL_WORKSPACE_TOKEN") or DEFAULT_TOKEN
        try:
            workspace = LocalWorkspace(
                token=token, port=args.port, host=args.host, latency_ms=args.latency_ms, rate_limits=args.rate_limit,
                faults=args.faults, seed=args.seed, state_dir=args.state_dir, time_scale=args.time_scale,
                clusters=clusters, run_timeout=args.run_timeout,
            )
        except (OSError, ValueError) as error:
            raise InputError(f"cannot load state from {args.state_dir}: {error}")
        try:
            workspace.start()
        except OSError as error:
            raise InputError(f"cannot listen on {args.host}:{args.port}: {error.strerror or error}", hint="pick another --port")
        print(workspace.url, flush=True)
        workspace.serve_forever()
        return 0

    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
