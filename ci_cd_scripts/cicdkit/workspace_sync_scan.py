"""The local side of a notebook deploy: which files of the source folder become which workspace objects.

This module owns the scan of SRC_DIR for `deploy_notebooks.py` (README "Deploying notebooks and files (CD)"):
which files become notebooks (the Databricks source header, ``.ipynb``) and which stay files, their hashes,
the paths they land on below WORKSPACE_DIR, and the check that WORKSPACE_DIR is a safe target. It is pure
apart from reading the source tree: what the workspace holds and what to change is `workspace_sync_plan`,
the calls that change it `workspace_sync`.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
from dataclasses import dataclass
from pathlib import Path

from . import discovery
from .errors import InputError

HASH_CHUNK = 1024 * 1024
# Workspace import refuses more than 10 MB of content (notebooks and files alike).
MAX_IMPORT_BYTES = 10 * 1024 * 1024

NOTEBOOK = "NOTEBOOK"
FILE = "FILE"
DIRECTORY = "DIRECTORY"

# extension -> (language, header line that makes a source file a notebook)
NOTEBOOK_SOURCES: dict[str, tuple[str, str]] = {
    ".py": ("PYTHON", "# Databricks notebook source"),
    ".sql": ("SQL", "-- Databricks notebook source"),
    ".scala": ("SCALA", "// Databricks notebook source"),
    ".r": ("R", "# Databricks notebook source"),
}
SKIPPED_NAMES = frozenset({"__pycache__"})


# --- records ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalObject:
    """One deployable file: where it lands (relative to WORKSPACE_DIR, '/'-separated) and how it is imported."""

    relative_path: str
    source: Path
    object_type: str  # NOTEBOOK or FILE
    format: str  # SOURCE (notebook source), JUPYTER (.ipynb) or RAW (plain file)
    language: str | None
    sha256: str
    size: int


@dataclass(frozen=True)
class LocalTree:
    """The scanned source folder: objects by relative workspace path, and the folders that hold them."""

    objects: dict[str, LocalObject]
    folders: frozenset[str]  # relative folder paths holding objects, with their ancestors; never ""


# --- paths --------------------------------------------------------------------------------------------------


def check_workspace_dir(path: str) -> str:
    """Return WORKSPACE_DIR normalised (no trailing '/'), or raise InputError if it is not a safe target.

    Allowed: a folder below ``/Shared/``, ``/Users/<user>/`` or ``/Workspace/<root>/`` (``/Workspace/Users/<user>/``
    for user homes). Refused: relative paths, ``.``/``..``/empty segments, the roots themselves, and Repos
    (Git folders are managed by Git, not by deployments).
    """
    text = (path or "").strip()
    fix = "use a folder such as /Workspace/Shared/<project>/notebooks or /Users/<you>/<project>"
    if not text.startswith("/"):
        raise InputError(f"workspace folder {path!r} is not an absolute path", hint=fix)
    if "${" in text:
        raise InputError(
            f"workspace folder {path!r} holds an unresolved ${{...}} reference",
            hint="set the variable (--var NAME=VALUE) or give the folder explicitly",
        )
    parts = text.rstrip("/").split("/")[1:]
    if any(part in ("", ".", "..") for part in parts):
        raise InputError(f"workspace folder {path!r} contains an empty, '.' or '..' segment", hint=fix)
    inner = parts[1:] if parts and parts[0] == "Workspace" else parts
    if inner and inner[0] == "Repos":
        raise InputError(f"workspace folder {path!r} is inside Repos, which Git manages", hint=fix)
    minimum = {"Shared": 2, "Users": 3}
    if not parts or parts[0] not in ("Workspace", "Shared", "Users"):
        raise InputError(f"workspace folder {path!r} is outside /Workspace, /Users and /Shared", hint=fix)
    if not inner or len(inner) < minimum.get(inner[0], 2):
        raise InputError(f"workspace folder {path!r} is a root folder; deploy into a folder below it", hint=fix)
    return "/" + "/".join(parts)


def join(workspace_dir: str, relative_path: str) -> str:
    return f"{workspace_dir}/{relative_path}" if relative_path else workspace_dir


def parent_of(relative_path: str) -> str:
    return posixpath.dirname(relative_path)


def ancestors(relative_path: str) -> list[str]:
    """Relative folders above a path, nearest last: 'a/b/c' -> ['a', 'a/b']."""
    parts = relative_path.split("/")[:-1]
    return ["/".join(parts[: index + 1]) for index in range(len(parts))]


def depth(relative_path: str) -> int:
    return 0 if not relative_path else relative_path.count("/") + 1


# --- local scan ---------------------------------------------------------------------------------------------


def hash_file(path: Path) -> tuple[str, int]:
    """SHA-256 hex digest and size of a file, read in blocks (memory does not grow with the file)."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while block := handle.read(HASH_CHUNK):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def classify(name: str, first_line: str) -> tuple[str, str, str, str | None]:
    """(workspace name, object type, import format, language) for a file name and its first line.

    Source files that start with the Databricks header become notebooks named without the extension;
    ``.ipynb`` files become Jupyter notebooks named without ``.ipynb``; everything else is a workspace file
    that keeps its name (a ``.py`` module without the header stays ``x.py``).
    """
    stem, extension = os.path.splitext(name)
    extension = extension.lower()
    if extension == ".ipynb" and stem:
        return stem, NOTEBOOK, "JUPYTER", None
    if extension in NOTEBOOK_SOURCES and stem:
        language, header = NOTEBOOK_SOURCES[extension]
        if first_line.lstrip("\ufeff").strip() == header:
            return stem, NOTEBOOK, "SOURCE", language
    return name, FILE, "RAW", None


def _first_line(path: Path) -> str:
    with open(path, "rb") as handle:
        return handle.readline(200).decode("utf-8", errors="replace")


def scan(src_dir: Path) -> LocalTree:
    """Walk SRC_DIR (skipping dot files/folders and __pycache__) and classify every file.

    Raises InputError for a missing folder, an unreadable file, a file above the 10 MB import limit, two
    files that would land on the same workspace path (``a.py`` and ``a.sql`` notebooks, a notebook and a folder),
    or a symlink that `discovery.resolve_in_root` refuses (outside SRC_DIR, dangling, a loop). A linked file
    inside SRC_DIR is deployed with the target's content under the link's name; linked folders are not entered.
    """
    root = Path(src_dir)
    if not root.is_dir():
        raise InputError(f"source folder {str(src_dir)!r} does not exist or is not a folder")
    objects: dict[str, LocalObject] = {}
    origins: dict[str, Path] = {}

    def fail_walk(error: OSError) -> None:
        raise InputError(f"cannot read {error.filename}: {error.strerror}")

    for folder, dirnames, filenames in os.walk(root, onerror=fail_walk):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in SKIPPED_NAMES)
        for dirname in dirnames:
            if os.path.islink(os.path.join(folder, dirname)):
                discovery.resolve_in_root(Path(folder) / dirname, root)  # checked; os.walk does not enter it
        relative_folder = Path(folder).relative_to(root).as_posix()
        relative_folder = "" if relative_folder == "." else relative_folder
        for filename in sorted(filenames):
            if filename.startswith(".") or filename.endswith(".pyc"):
                continue
            source = Path(folder) / filename
            if os.path.islink(source):
                discovery.resolve_in_root(source, root)  # before anything reads through the link
            if not source.is_file():
                continue
            try:
                name, object_type, import_format, language = classify(filename, _first_line(source))
                sha256, size = hash_file(source)
            except OSError as error:
                raise InputError(f"cannot read {source}: {error.strerror or error}") from None
            if size > MAX_IMPORT_BYTES:
                raise InputError(
                    f"{source} is {size} bytes; workspace import takes at most {MAX_IMPORT_BYTES} bytes",
                    hint="put large files in a volume with upload_files.py",
                )
            relative_path = f"{relative_folder}/{name}" if relative_folder else name
            if relative_path in origins:
                raise InputError(
                    f"{origins[relative_path]} and {source} would both be deployed as {relative_path!r}",
                    hint="rename one of them",
                )
            origins[relative_path] = source
            objects[relative_path] = LocalObject(
                relative_path, source, object_type, import_format, language, sha256, size
            )
    folders = {folder for path in objects for folder in ancestors(path)}
    for folder in folders:
        if folder in objects:
            raise InputError(
                f"{origins[folder]} would be deployed as {folder!r}, which is also a folder", hint="rename one of them"
            )
    return LocalTree(objects=objects, folders=frozenset(folders))
