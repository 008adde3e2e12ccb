"""Uploading local files to a volume, a workspace folder or legacy DBFS, skipping files that are already there.

Owns the decisions of `upload_files.py`: which destination API a folder needs, which local files are valid,
and whether a remote file already holds the same bytes; plus the streamed transfers (the client comes from
the script; this module never imports `databricks`).

Same-content check (no API returns a content hash): a file is skipped when the remote file has the local
file's size AND its bytes hash to the local SHA-256. The remote bytes are streamed through the hash (Files
API: one streamed GET; DBFS: `dbfs/read` in 1 MB blocks), so memory stays constant, and the read happens only
when the sizes match (a changed wheel almost always changes size). No sidecar manifest: it could go stale
when someone else writes the folder, and reading is cheaper than writing. Uploads stream from disk too:
Files API PUT of the open file; DBFS create/add-block (1 MB blocks)/close, then a size check.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import discovery
from .errors import InputError, NotFound, OperationFailed
from .workspace_sync import HASH_CHUNK, check_workspace_dir, hash_file

DBFS_BLOCK = 1024 * 1024


@dataclass(frozen=True)
class Destination:
    """Where files go: ``kind`` is ``files`` (Files API: /Volumes or /Workspace) or ``dbfs``; ``path`` as the API takes it."""

    kind: str
    path: str
    display: str

    def remote(self, name: str) -> str:
        return f"{self.path.rstrip('/')}/{name}"

    def shown(self, name: str) -> str:
        return f"{self.display.rstrip('/')}/{name}"


@dataclass(frozen=True)
class LocalFile:
    source: Path
    name: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Outcome:
    file: LocalFile
    remote: str
    action: str  # "upload" or "skip"
    reason: str


def _check_segments(text: str, segments: list[str]) -> None:
    if any(part in ("", ".", "..") for part in segments) or "\\" in text or "\x00" in text:
        raise InputError(
            f"destination {text!r} contains an empty, '.' or '..' segment", hint="give a plain absolute folder"
        )


def parse_destination(text: str) -> Destination:
    """Classify DEST_DIR; raise InputError for anything outside /Volumes/<c>/<s>/<v>, /Workspace/... or dbfs:/..."""
    value = (text or "").strip()
    roots = "use /Volumes/<catalog>/<schema>/<volume>/..., /Workspace/<folder>/... or dbfs:/<folder>/..."
    if value.startswith("dbfs:/"):
        body = value[len("dbfs:") :].rstrip("/")
        segments = body.split("/")[1:]
        _check_segments(value, segments)
        if not body:
            raise InputError(f"destination {value!r} is the DBFS root; upload into a folder", hint=roots)
        return Destination("dbfs", body, "dbfs:" + body)
    if value.startswith("/Volumes/"):
        body = value.rstrip("/")
        segments = body.split("/")[1:]
        _check_segments(value, segments)
        if len(segments) < 4:
            raise InputError(f"destination {value!r} is not inside a volume", hint=roots)
        return Destination("files", body, body)
    if value.startswith("/Workspace/"):
        _check_segments(value, value.rstrip("/").split("/")[1:])
        body = check_workspace_dir(value)
        return Destination("files", body, body)
    raise InputError(f"destination {value!r} is outside the allowed roots", hint=roots)


def check_files(paths: list[str]) -> list[LocalFile]:
    """Every FILE must be a readable regular file; two files may not share a name. Hashes them (streamed).

    A FILE that is a symlink must resolve inside the folder it is in (`discovery.resolve_in_root` with the
    file's own folder as the source root): ``dist/*.whl`` may hold a link to a sibling, but a checked-in link
    to ``/etc/passwd`` or ``~/.ssh/id_rsa`` is refused. To upload a file that lives elsewhere, name it directly.
    """
    files: list[LocalFile] = []
    seen: dict[str, Path] = {}
    for text in paths:
        source = Path(text)
        if source.is_symlink():
            discovery.resolve_in_root(source, source.parent)
        if not source.is_file():
            what = "is a folder" if source.is_dir() else "does not exist"
            raise InputError(f"file {text!r} {what}", hint="pass existing files, e.g. dist/*.whl")
        try:
            sha256, size = hash_file(source)
        except OSError as error:
            raise InputError(f"cannot read {text}: {error.strerror or error}") from None
        name = source.name
        if name in seen:
            raise InputError(
                f"{seen[name]} and {source} have the same name {name!r}", hint="upload them to different folders"
            )
        seen[name] = source
        files.append(LocalFile(source, name, size, sha256))
    return files


class _HashSink:
    """A write-only file object that hashes what is written (for streamed downloads)."""

    def __init__(self) -> None:
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return len(data)


def remote_state(client: Any, destination: Destination, item: LocalFile) -> tuple[str, str]:
    """("skip"|"upload", reason): is the remote file byte-identical to the local one?"""
    remote = destination.remote(item.name)
    if destination.kind == "files":
        meta = client.files.head(remote)
        if meta is None:
            return "upload", "new"
        if meta.size is not None and meta.size != item.size:
            return "upload", f"size differs ({meta.size} -> {item.size} bytes)"
        sink = _HashSink()
        client.files.download(remote, sink, chunk_size=HASH_CHUNK)
        if sink.size == item.size and sink.digest.hexdigest() == item.sha256:
            return "skip", "same SHA-256"
        return "upload", "content differs"
    try:
        status = client.dbfs.get_status(remote)
    except NotFound:
        return "upload", "new"
    if status.get("is_dir"):
        raise OperationFailed(
            f"{destination.shown(item.name)} is a folder in DBFS, not a file",
            hint="remove it or choose another destination",
        )
    remote_size = int(status.get("file_size") or 0)
    if remote_size != item.size:
        return "upload", f"size differs ({remote_size} -> {item.size} bytes)"
    digest = hashlib.sha256()
    offset = 0
    while offset < remote_size:
        block = client.dbfs.read(remote, offset=offset, length=DBFS_BLOCK)
        if not block:
            break
        digest.update(block)
        offset += len(block)
    if offset == item.size and digest.hexdigest() == item.sha256:
        return "skip", "same SHA-256"
    return "upload", "content differs"


def plan(client: Any, destination: Destination, files: list[LocalFile]) -> list[Outcome]:
    """Read-only: what to upload and what to skip."""
    outcomes = []
    for item in files:
        action, reason = remote_state(client, destination, item)
        outcomes.append(Outcome(item, destination.shown(item.name), action, reason))
    return outcomes


def ensure_folder(client: Any, destination: Destination) -> None:
    if destination.kind == "files":
        client.files.mkdirs(destination.path)
    else:
        client.dbfs.mkdirs(destination.path)


def upload(client: Any, destination: Destination, item: LocalFile) -> None:
    """Stream one file from disk to the destination (overwriting)."""
    remote = destination.remote(item.name)
    try:
        handle = open(item.source, "rb")
    except OSError as error:
        raise InputError(f"cannot read {item.source}: {error.strerror or error}") from None
    with handle:
        if destination.kind == "files":
            client.files.upload(remote, handle, overwrite=True)
            return
        sent = client.dbfs.upload(remote, handle, overwrite=True, block_size=DBFS_BLOCK)
    status = client.dbfs.get_status(remote)
    if int(status.get("file_size") or 0) != item.size or sent != item.size:
        raise OperationFailed(
            f"{destination.shown(item.name)} has {status.get('file_size')} bytes after the upload, expected {item.size}",
            hint="the local file changed during the upload, or the transfer was cut; run the step again",
        )
