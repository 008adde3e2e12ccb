"""Local workspace core: wire conventions shared by every emulated API family (errors, requests, paths, trees).

Owns the error shape (`ApiError` → `{"error_code", "message"}`), request parsing the way real clients send
(query string, JSON under any content type, opaque multipart parts, four boolean spellings), path
normalisation (`/Workspace` prefix, `dbfs:` scheme, trailing slashes), the in-memory file `Tree`, page
tokens and the route registry the family modules (local_workspace_files/_compute/_jobs) register into.
No HTTP and no state here: local_workspace.py owns both.
"""
from __future__ import annotations

import base64
import binascii
import email.utils
import hashlib
import json
import posixpath
import re
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from cicdkit.dbclient import LOCAL_WORKSPACE_TOKEN

if TYPE_CHECKING:
    from .server import Emulator

DEFAULT_TOKEN = LOCAL_WORKSPACE_TOKEN  # one value: the client names it in its hints
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
        body = b"" if self.empty_body else json_bytes({"error_code": self.error_code, "message": self.message})
        return Response(self.status, body, dict(self.headers), "application/json")


class UnknownEndpoint(ApiError):
    """A method and path the emulator has no API for, answered as the service answers one (404 ENDPOINT_NOT_FOUND).

    The request log flags these (`RequestRecord.unknown_endpoint`): when a client such as a new databricks-sdk
    sends a request the emulator does not serve, the fidelity tests name it instead of passing on a fallback.
    """

    def __init__(self, method: str, path: str):
        super().__init__(404, "ENDPOINT_NOT_FOUND", f"No API found for '{method} {path}'")


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


def json_bytes(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


def ok(value: Any = None, status: int = 200) -> Response:
    return Response(status, json_bytes({} if value is None else value))


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
        self.principal = ""  # set by authentication: the user name or a service principal's application id
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

    def blocking_prefix(self, path: str) -> str | None:
        """The nearest of `path` and its ancestors that exists and is not a directory, else None.

        Every API refuses to create a folder (or a file) below a file; each words the error its own way.
        """
        prefix = path
        while prefix not in ("/", ""):
            node = self.nodes.get(prefix)
            if node is not None and node["type"] != "DIRECTORY":
                return prefix
            prefix = self.parent(prefix)
        return None

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



def encode_page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode("ascii")


def decode_page_token(token: Any) -> int:
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


def b64decode_field(value: Any, name: str) -> bytes:
    if not isinstance(value, str):
        raise invalid(f"Invalid value for {name}: expected a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise invalid(f"The {name} field is not valid base64.")


# --------------------------------------------------------------------------------------------------------------
# Route registry (each family module registers its handlers) and scripted run outcomes
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
