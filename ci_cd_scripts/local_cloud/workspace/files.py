"""Local workspace: the DBFS 2.0 and Files 2.0 APIs (DBFS, Unity Catalog volumes, workspace files by path), and the
mapping of a path or URI to the store it lives in, which libraries and runs use too.

`_Files` is mixed into the emulator (emulator.py); the route functions below register themselves with
wire.route. Shapes, limits and messages follow the public Databricks REST API reference
(https://docs.databricks.com/api/azure/workspace/dbfs and .../workspace/files); what is not modelled is listed
in emulator.py and README, "Local workspace" → Not supported.
"""

from __future__ import annotations

import base64
import os
import posixpath
import re
import time
from typing import Any

from .state import EmulatorProtocol, Tree
from .wire import (
    DBFS_BLOCK_LIMIT,
    FILES_PUT_LIMIT,
    ApiError,
    Request,
    Response,
    UnknownEndpoint,
    already_exists,
    b64decode_field,
    decode_page_token,
    encode_page_token,
    http_date,
    invalid,
    no_content,
    normalise_dbfs_path,
    normalise_workspace_path,
    not_found,
    ok,
    route,
    to_bool,
    with_notebook_header,
)


def file_info(node: dict) -> dict:
    is_dir = node["type"] == "DIRECTORY"
    return {
        "path": node["path"],
        "is_dir": is_dir,
        "file_size": 0 if is_dir else len(node.get("data", b"")),
        "modification_time": node["modified_at"],
    }


class _Files(EmulatorProtocol):
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
        prefix = self.dbfs.blocking_prefix(Tree.parent(path))
        if prefix is not None:
            raise already_exists(f"A file or directory already exists at the input path {prefix}.")

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
                raise ApiError(
                    400, "INVALID_PARAMETER_VALUE", f"File size exceeds the maximum of {FILES_PUT_LIMIT} bytes."
                )
            if node is not None and node["type"] == "DIRECTORY":
                raise ApiError(
                    409, "ALREADY_EXISTS", "A directory already exists at the path of the file being created."
                )
            if node is not None and (not overwrite or node["type"] == "NOTEBOOK"):
                raise ApiError(409, "ALREADY_EXISTS", "The file being created already exists.")
            self.files_mkdirs(tree, Tree.parent(path))
            tree.put(path, "FILE", request.body)
            self.mark_dirty()
            return no_content()
        if method == "POST":
            return self.files_upload_action(request, node, path)
        if node is None or node["type"] == "DIRECTORY":
            raise ApiError(404, "NOT_FOUND", "The file being accessed is not found.")
        if method == "DELETE":
            tree.delete(path)
            self.mark_dirty()
            return no_content()
        if method not in ("GET", "HEAD"):
            raise UnknownEndpoint(method, request.path)
        data = (
            node.get("data", b"")
            if node["type"] == "FILE"
            else with_notebook_header(node.get("data", b""), node.get("language", "PYTHON"))
        )
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
                raise ApiError(
                    416, "INVALID_PARAMETER_VALUE", f"Range {range_header} is not satisfiable (size {size})."
                )
            end = min(end, size - 1)
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
            return Response(206, data[start : end + 1], headers, "application/octet-stream")
        if method == "HEAD":
            headers["Content-Length"] = str(len(data))
            return Response(200, b"", headers, "application/octet-stream")
        return Response(200, data, headers, "application/octet-stream")

    def files_upload_action(self, request: Request, node: dict | None, path: str) -> Response:
        """`POST fs/files{path}?action=...`: a multipart upload session opens (initiate-upload) and, once the presigned
        part URLs answer 501, is aborted (abort-upload) before the client falls back to one PUT. complete-upload
        cannot follow (no part is ever uploaded), so it and other actions are unknown here."""
        action = request.query.get("action")
        if action == "initiate-upload":
            if node is not None and not to_bool(request.query.get("overwrite"), default=True):
                raise ApiError(409, "ALREADY_EXISTS", "The file being created already exists.")
            token = base64.urlsafe_b64encode(os.urandom(18)).decode("ascii")
            self.upload_sessions[token] = path
            return ok({"multipart_upload": {"session_token": token}})
        if action == "abort-upload":
            token = request.query.get("session_token", "")
            if self.upload_sessions.get(token) != path:  # the service's answer to a foreign token: not verified
                raise ApiError(404, "NOT_FOUND", "The upload session being aborted is not found.")
            del self.upload_sessions[token]
            return ok()
        raise UnknownEndpoint(request.method, request.path)

    def files_mkdirs(self, tree: Tree, path: str) -> None:
        prefix = tree.blocking_prefix(path)
        if prefix is not None:
            raise ApiError(409, "ALREADY_EXISTS", f"A file already exists at {prefix}.")
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
            raise UnknownEndpoint(method, request.path)
        page_size = request.int_param("page_size", 1000)
        if page_size is None or page_size < 1:
            page_size = 1000
        page_size = min(page_size, 1000)
        offset = decode_page_token(request.param("page_token"))
        children = tree.list(path) if node is not None else []
        display_prefix = "/Workspace" if tree is self.workspace else ""
        entries = []
        for child in children[offset : offset + page_size]:
            entry = {
                "path": display_prefix + child["path"],
                "name": posixpath.basename(child["path"]),
                "is_directory": child["type"] == "DIRECTORY",
            }
            if child["type"] != "DIRECTORY":
                entry["file_size"] = len(child.get("data", b""))
                entry["last_modified"] = child["modified_at"]
            entries.append(entry)
        body: dict[str, Any] = {}
        if entries:
            body["contents"] = entries
        if offset + page_size < len(children):
            body["next_page_token"] = encode_page_token(offset + page_size)
        return ok(body)


@route("POST", "dbfs/put")
def dbfs_put(emu: _Files, request: Request) -> Response:
    path = normalise_dbfs_path(request.required("path"))
    overwrite = to_bool(request.param("overwrite"))
    if request.is_multipart:
        form = request.form()
        part = form.get("file") or form.get("contents")
        if part is None:
            raise invalid("Missing required field: contents")
        data = part.data
        if part.filename is None:  # an inline field, not a file part: the 1 MB limit applies
            data = b64decode_field(data.decode("ascii", "replace"), "contents")
            _check_block(data, "contents")
    else:
        data = b64decode_field(request.param("contents", ""), "contents")
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
def dbfs_create(emu: _Files, request: Request) -> Response:
    path = normalise_dbfs_path(request.required("path"))
    existing = emu.dbfs.get(path)
    if existing is not None and (not to_bool(request.param("overwrite")) or existing["type"] == "DIRECTORY"):
        raise already_exists(f"A file or directory already exists at the input path {path}.")
    emu.dbfs_check_parent(path)
    handle = emu.new_id("handle")
    emu.dbfs_handles[handle] = {
        "path": path,
        "chunks": [],
        "used": time.monotonic(),
        "overwrite": to_bool(request.param("overwrite")),
    }
    return ok({"handle": handle})


@route("POST", "dbfs/add-block")
def dbfs_add_block(emu: _Files, request: Request) -> Response:
    handle = emu.dbfs_handle(request)
    data = b64decode_field(request.required("data"), "data")
    _check_block(data, "data")
    handle["chunks"].append(data)
    return ok()


@route("POST", "dbfs/close")
def dbfs_close(emu: _Files, request: Request) -> Response:
    handle = emu.dbfs_handle(request)
    emu.dbfs_handles.pop(int(request.param("handle")), None)
    emu.dbfs_write(handle["path"], b"".join(handle["chunks"]), overwrite=True)
    return ok()


@route("GET", "dbfs/get-status")
def dbfs_get_status(emu: _Files, request: Request) -> Response:
    return ok(file_info(emu.dbfs_node(normalise_dbfs_path(request.required("path")))))


@route("GET", "dbfs/list")
def dbfs_list(emu: _Files, request: Request) -> Response:
    path = normalise_dbfs_path(request.required("path"))
    node = emu.dbfs_node(path)
    if node["type"] != "DIRECTORY":
        return ok({"files": [file_info(node)]})
    files = [file_info(child) for child in emu.dbfs.list(path)]
    return ok({"files": files} if files else {})


@route("POST", "dbfs/mkdirs")
def dbfs_mkdirs(emu: _Files, request: Request) -> Response:
    path = normalise_dbfs_path(request.required("path"))
    prefix = emu.dbfs.blocking_prefix(path)
    if prefix is not None:
        raise already_exists(f"A file or directory already exists at the input path {prefix}.")
    emu.dbfs.mkdirs(path)
    emu.mark_dirty()
    return ok()


@route("POST", "dbfs/delete")
def dbfs_delete(emu: _Files, request: Request) -> Response:
    path = normalise_dbfs_path(request.required("path"))
    node = emu.dbfs.get(path)
    if node is None:
        if emu.dbfs_delete_missing_ok:
            return ok()
        raise not_found(f"No file or directory exists on path {path}.")
    if path == "/":
        raise invalid("Cannot delete the DBFS root.")
    if node["type"] == "DIRECTORY" and not emu.dbfs.is_empty_dir(path) and not to_bool(request.param("recursive")):
        raise ApiError(
            400, "IO_ERROR", f"Directory {path} is not empty. Use recursive delete or remove its contents first."
        )
    emu.dbfs.delete(path)
    emu.mark_dirty()
    return ok()


@route("GET", "dbfs/read")
def dbfs_read(emu: _Files, request: Request) -> Response:
    path = normalise_dbfs_path(request.required("path"))
    offset = request.int_param("offset", 0)
    length = request.int_param("length", 512 * 1024)
    if offset < 0 or length < 0:
        raise invalid("offset and length must be non-negative")
    if length > DBFS_BLOCK_LIMIT:
        raise ApiError(
            400, "MAX_READ_SIZE_EXCEEDED", f"Cannot read more than {DBFS_BLOCK_LIMIT} bytes, requested {length}."
        )
    node = emu.dbfs_node(path)
    if node["type"] == "DIRECTORY":
        raise invalid(f"Cannot read {path}: it is a directory.")
    chunk = node["data"][offset : offset + length]
    return ok({"bytes_read": len(chunk), "data": base64.b64encode(chunk).decode("ascii")})


@route("POST", "dbfs/move")
def dbfs_move(emu: _Files, request: Request) -> Response:
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


@route("GET", "fs/endpoints")
def files_endpoints(emu: _Files, request: Request) -> Response:
    """Where file transfers go, best first (databricks-sdk >= 0.167 asks before its first upload or download): presigned
    URLs coordinated by the workspace (IO_OFFLOAD, multipart), then Files API 2.0 on the workspace host (one PUT). That
    is the order the SDK assumes for a workspace that does not answer; the entry fields are those the SDK reads. The
    host is the one the client reached (its Host header), as a service names itself."""
    host = request.headers.get("Host") or emu.base_url.split("://", 1)[-1]
    return ok(
        {
            "endpoints": [
                {"api": "IO_OFFLOAD", "scheme": "http", "hostname": host, "multipart_upload_supported": True},
                {
                    "api": "FILES_API",
                    "api_version": "2.0",
                    "scheme": "http",
                    "hostname": host,
                    "multipart_upload_supported": False,
                },
            ]
        }
    )


@route("POST", "fs/create-upload-part-urls")
@route("POST", "fs/create-resumable-upload-url")
@route("POST", "fs/create-abort-upload-url")
@route("POST", "fs/create-download-url")
def files_presigned(emu: _Files, request: Request) -> Response:
    # No cloud storage here: clients fall back to single PUT/GET through the Files API.
    raise ApiError(501, "NOT_IMPLEMENTED", "Presigned URLs are not available on the local workspace.")
