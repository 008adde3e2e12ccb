"""Local workspace: the Workspace API 2.0 (notebooks, workspace files, folders) and the workspace-files endpoints
of the new Databricks CLI.

`_Workspace` is mixed into the emulator (emulator.py); the route functions below register themselves with
wire.route. Import/export formats are SOURCE, AUTO, JUPYTER and RAW. Shapes, limits and messages follow the
public Databricks REST API reference (https://docs.databricks.com/api/azure/workspace/workspace); what is not
modelled is listed in emulator.py and README, "Local workspace" → Not supported.
"""

from __future__ import annotations

import base64
import posixpath

from .state import EmulatorProtocol, Tree
from .wire import (
    EXTENSION_LANGUAGES,
    LANGUAGE_EXTENSIONS,
    NOTEBOOK_HEADERS,
    WORKSPACE_IMPORT_LIMIT,
    ApiError,
    Request,
    Response,
    UnknownEndpoint,
    already_exists,
    b64decode_field,
    invalid,
    ipynb_to_source,
    normalise_workspace_path,
    not_found,
    ok,
    route,
    source_to_ipynb,
    to_bool,
    with_notebook_header,
)


class _Workspace(EmulatorProtocol):
    """Workspace objects (notebooks, files, directories) in `self.workspace`."""

    def object_info(self, node: dict) -> dict:
        info = {
            "object_type": node["type"],
            "path": node["path"],
            "object_id": node["object_id"],
            "resource_id": str(node["object_id"]),
        }
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
                message = (
                    f"File size imported is ({len(content)} bytes), exceeded max size ({WORKSPACE_IMPORT_LIMIT} bytes)"
                )
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
                raise already_exists(
                    f"An item with path {target} already exists with a different object type ({existing['type']})."
                )
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

    def workspace_files_api(self, request: Request, rest: str) -> Response:
        """`POST workspace-files/import-file/<path>?overwrite=` (raw body, AUTO detection, no parent creation)
        and `GET workspace-files/<path>` (raw content), as the new Databricks CLI and bundles use them."""
        if request.method == "POST" and rest.startswith("import-file/"):
            path = normalise_workspace_path("/" + rest[len("import-file/") :].lstrip("/"))
            self.import_object(path, request.body, "AUTO", None, to_bool(request.query.get("overwrite")))
            return ok()
        if request.method in ("GET", "HEAD"):
            node = self.workspace_node(normalise_workspace_path("/" + rest.lstrip("/")))
            if node["type"] == "DIRECTORY":
                raise invalid(f"Path ({node['path']}) is a directory.")
            data, _ = self.export_object(node, "SOURCE")
            return Response(200, data, {}, "application/octet-stream")
        raise UnknownEndpoint(request.method, request.path)

    def read_workspace_file(self, path: str) -> bytes | None:
        node = self.workspace.get(path)
        return None if node is None or node["type"] == "DIRECTORY" else node.get("data", b"")


@route("POST", "workspace/import")
def workspace_import(emu: _Workspace, request: Request) -> Response:
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
            content = b64decode_field(encoded, "content")
    emu.import_object(
        path, content, request.param("format", "SOURCE"), request.param("language"), to_bool(request.param("overwrite"))
    )
    return ok()


@route("GET", "workspace/export")
def workspace_export(emu: _Workspace, request: Request) -> Response:
    path = normalise_workspace_path(request.required("path"))
    node = emu.workspace_node(path)
    data, file_type = emu.export_object(node, request.param("format", "SOURCE"))
    if to_bool(request.param("direct_download")):
        return Response(200, data, {}, "application/octet-stream")
    if len(data) > WORKSPACE_IMPORT_LIMIT:
        raise ApiError(
            400,
            "MAX_NOTEBOOK_SIZE_EXCEEDED",
            f"Exported content is ({len(data)} bytes), exceeded max size ({WORKSPACE_IMPORT_LIMIT} bytes)",
        )
    return ok({"content": base64.b64encode(data).decode("ascii"), "file_type": file_type})


@route("POST", "workspace/mkdirs")
def workspace_mkdirs(emu: _Workspace, request: Request) -> Response:
    path = normalise_workspace_path(request.required("path"))
    prefix = emu.workspace.blocking_prefix(path)
    if prefix is not None:
        kind = emu.workspace.get(prefix)["type"].lower()
        raise already_exists(f"Cannot create directory {path} because {prefix} is an existing {kind}.")
    emu.workspace.mkdirs(path)
    emu.mark_dirty()
    return ok()


@route("GET", "workspace/list")
def workspace_list(emu: _Workspace, request: Request) -> Response:
    path = normalise_workspace_path(request.required("path"))
    node = emu.workspace_node(path)
    if node["type"] != "DIRECTORY":
        return ok({"objects": [emu.object_info(node)]})
    objects = [emu.object_info(child) for child in emu.workspace.list(path)]
    return ok({"objects": objects} if objects else {})


@route("GET", "workspace/get-status")
def workspace_get_status(emu: _Workspace, request: Request) -> Response:
    path = normalise_workspace_path(request.required("path"))
    return ok(emu.object_info(emu.workspace_node(path)))


@route("POST", "workspace/delete")
def workspace_delete(emu: _Workspace, request: Request) -> Response:
    path = normalise_workspace_path(request.required("path"))
    node = emu.workspace_node(path)
    if path == "/":
        raise invalid("Cannot delete the workspace root.")
    if node["type"] == "DIRECTORY" and not emu.workspace.is_empty_dir(path) and not to_bool(request.param("recursive")):
        raise ApiError(400, "DIRECTORY_NOT_EMPTY", f"Folder ({path}) is not empty")
    emu.workspace.delete(path)
    emu.mark_dirty()
    return ok()
