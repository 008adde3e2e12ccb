"""Local workspace wire conventions: what every emulated API family answers and reads the way the service does.

Owns the error shape (`ApiError` → `{"error_code", "message"}`), request parsing the way real clients send
(query string, JSON under any content type, opaque multipart parts, four boolean spellings), path
normalisation (`/Workspace` prefix, `dbfs:` scheme, trailing slashes), notebook formats (SOURCE, JUPYTER),
page tokens, the service's size limits, and the route registry the family modules register their handlers
into. No HTTP and no state here: server.py serves, state.py stores.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import json
import posixpath
import re
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cicdkit.dbclient import LOCAL_WORKSPACE_TOKEN

DEFAULT_TOKEN = LOCAL_WORKSPACE_TOKEN  # one value: the client names it in its hints
USER_NAME = "local-user@example.com"
USER_ID = "7001000000000001"
ORG_ID = "1234567890123456"
MB = 1024 * 1024
WORKSPACE_IMPORT_LIMIT = 10 * MB  # 10,485,760 bytes
DBFS_BLOCK_LIMIT = MB  # put `contents`, add-block `data`, read `length`
FILES_PUT_LIMIT = 5 * 1024 * MB
OUTPUT_LIMIT = 5 * MB  # notebook_output.result, logs
API_PREFIX = re.compile(r"^/api/(2\.\d)/(.*)$")
ADMIN_PREFIX = "/__local__/"


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

    def response(self) -> Response:
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
            if (
                self.is_multipart
                or self.content_type.lower().startswith("application/octet-stream")
                or not self.body.strip()
            ):
                self._json = {}
            else:
                try:
                    value = json.loads(self.body)
                except (ValueError, UnicodeDecodeError):
                    raise ApiError(
                        400, "MALFORMED_REQUEST", "Invalid JSON given in the body of the request - expected a map"
                    ) from None
                if not isinstance(value, dict):
                    raise ApiError(
                        400, "MALFORMED_REQUEST", "Invalid JSON given in the body of the request - expected a map"
                    ) from None
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
            raise invalid(f"Invalid value for {name}: {value!r} is not an integer") from None


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
        path = path[len("/Workspace") :]
    return path


def normalise_dbfs_path(path: Any) -> str:
    """DBFS paths may carry `dbfs:` and a trailing slash (CLI 0.18 sends both)."""
    if not isinstance(path, str) or not path:
        raise invalid("Missing required field: path")
    if path.startswith("dbfs:"):
        path = path[len("dbfs:") :]
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
CELL_SEPARATORS = {
    "PYTHON": "# COMMAND ----------",
    "SQL": "-- COMMAND ----------",
    "SCALA": "// COMMAND ----------",
    "R": "# COMMAND ----------",
}


def ipynb_to_source(content: bytes) -> str:
    """A Jupyter notebook as Databricks Python source: code cells as code, markdown cells as `# MAGIC %md`."""
    try:
        notebook = json.loads(content)
        cells = notebook["cells"]
    except (ValueError, KeyError, TypeError):
        raise invalid("The notebook content is not valid JSON in Jupyter format.") from None
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
                md[0] = md[0][len("%md") :].lstrip()
                cells.append({"cell_type": "markdown", "metadata": {}, "source": "\n".join(md).strip("\n")})
            else:
                cells.append(
                    {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [], "source": text}
                )
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
        raise invalid(f"Invalid page_token: {token}") from None


def paginate(items: list, token: Any, size: int) -> tuple[list, str | None]:
    """One page of `items` from a page token (None = the start) and the next page's token (None = last page)."""
    offset = decode_page_token(token)
    rest = items[offset : offset + size]
    return rest, (encode_page_token(offset + size) if offset + size < len(items) else None)


def b64decode_field(value: Any, name: str) -> bytes:
    if not isinstance(value, str):
        raise invalid(f"Invalid value for {name}: expected a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise invalid(f"The {name} field is not valid base64.") from None


# --------------------------------------------------------------------------------------------------------------
# Route registry: each family module registers its handlers, the emulator dispatches to them
# --------------------------------------------------------------------------------------------------------------

# A handler's first argument is the emulator, which is every family's mixin at once (emulator.Emulator); each
# family annotates it with its own mixin class.
Handler = Callable[[Any, Request], Response]
ROUTES: dict[tuple[str, str], tuple[tuple[str, ...], Handler]] = {}


def route(method: str, service_path: str, versions: tuple[str, ...] = ("2.0",)) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        ROUTES[(method, service_path)] = (versions, handler)
        return handler

    return register
