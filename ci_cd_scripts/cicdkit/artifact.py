"""The deployment artifact: what goes into the zip, how it is written reproducibly, and how CD checks it.

Owns the layout (the contract between CI and CD)::

    wheels/<name>.whl            one wheel per package (build_packages.py)
    init/init.sh                 the cluster init script (create_init_script.py), mode 0755
    requirements.txt             merged common requirements (merge_requirements.py)
    config.json                  the root config, plus its `include` files at their paths relative to it
    ci_cd_scripts/**             the scripts the CD stages run, with ci_cd_scripts/requirements.txt
    notebooks/<package>/...      notebooks (copy_notebooks.py)
    MANIFEST.json                {"format": 1, "files": [{"path", "size", "sha256"}, ...]} for every other entry

Reproducible: entries sorted by path, timestamps 1980-01-01 00:00:00, permissions 0644 (0755 for
``init/init.sh``), Unix attributes, deflate level 6, no extra fields → the same inputs give a byte-identical
zip. Written to a temp file next to the target, verified, then renamed over it.

Does not build, merge or copy anything itself; it packages a staging folder the earlier steps filled.
Every file read must pass `discovery.resolve_in_root` against its source root (the staging folder, the
scripts folder, the bundle root): a symlink pointing outside it, dangling or looping stops the packaging
before anything is written, so a linked ``/etc/passwd`` never ends up in the zip.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from . import atomic, discovery
from .errors import InputError

MANIFEST = "MANIFEST.json"
MANIFEST_FORMAT = 1
FIXED_TIME = (1980, 1, 1, 0, 0, 0)
EXECUTABLE = frozenset({"init/init.sh"})
_SKIPPED_SCRIPT_PARTS = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"}
_SKIPPED_SCRIPT_SUFFIXES = (".pyc", ".pyo")
# The local stand-ins of the cloud and their entry scripts: the CD stages never run them.
_LOCAL_ONLY = ("local_cloud/", "local_workspace.py", "run_pipeline_locally.py")


@dataclass(frozen=True)
class ArtifactFile:
    """A file to package: its path inside the zip (POSIX) and where it is read from."""

    path: str
    source: Path


@dataclass(frozen=True)
class ManifestEntry:
    path: str
    size: int
    sha256: str


# --- what goes in ------------------------------------------------------------------------------------------------


def check_entry_path(path: str) -> str:
    """`path` if it is a safe relative POSIX path inside the artifact; `InputError` otherwise."""
    pure = PurePosixPath(path)
    if not path or pure.is_absolute() or "\\" in path or any(part in ("", ".", "..") for part in path.split("/")):
        raise InputError(f"artifact path {path!r} is not a plain relative path")
    return path


def _files_under(folder: Path, prefix: str, root: Path, skip=lambda relative: False) -> list[ArtifactFile]:
    """The files below `folder` (itself below the source `root`); linked folders are checked, not entered."""
    discovery.resolve_in_root(folder, root)
    found = []
    for directory, subdirs, names in os.walk(folder):
        subdirs[:] = sorted(d for d in subdirs if d not in _SKIPPED_SCRIPT_PARTS)
        for name in subdirs:
            if os.path.islink(os.path.join(directory, name)):
                discovery.resolve_in_root(Path(directory) / name, root)
        for name in names:
            source = Path(directory) / name
            relative = source.relative_to(folder).as_posix()
            if skip(relative):
                continue
            discovery.resolve_in_root(source, root)
            if source.is_file():
                found.append(ArtifactFile(f"{prefix}/{relative}", source))
    return found


def _staged(path: Path, staging: Path) -> Path:
    """`path` once `discovery.resolve_in_root` accepts it inside the staging folder."""
    discovery.resolve_in_root(path, staging)
    return path


def staging_files(staging: Path) -> tuple[list[ArtifactFile], list[str]]:
    """The files of a staging folder (wheels/, init/init.sh, requirements.txt, notebooks/) and warnings.

    Required: at least one wheel, ``init/init.sh`` and ``requirements.txt``. Anything else at the top of
    the staging folder is left out with a warning; anything unexpected inside ``wheels/`` or ``init/`` is
    an error (it would be deployed by mistake or silently lost).
    """
    if not staging.is_dir():
        raise InputError(f"SRC_DIR {staging} is not a folder", hint="fill it with the earlier CI steps first")
    files: list[ArtifactFile] = []
    wheels_dir = _staged(staging / "wheels", staging)
    wheels = sorted(_staged(wheel, staging) for wheel in wheels_dir.glob("*.whl")) if wheels_dir.is_dir() else []
    if not wheels:
        raise InputError(
            f"no wheels in {wheels_dir}", hint="build them with build_packages.py --out-dir SRC_DIR/wheels"
        )
    others = sorted(p.name for p in wheels_dir.iterdir() if not (p.suffix == ".whl" and p.is_file()))
    if others:
        raise InputError(
            f"{wheels_dir} holds more than wheels: {', '.join(others)}", hint="keep only the built .whl files there"
        )
    files += [ArtifactFile(f"wheels/{wheel.name}", wheel) for wheel in wheels]

    init = _staged(staging / "init" / "init.sh", staging)
    if not init.is_file():
        raise InputError(
            f"{init} does not exist", hint="write it with create_init_script.py --out SRC_DIR/init/init.sh"
        )
    extra_init = sorted(p.name for p in init.parent.iterdir() if p.name != "init.sh")
    if extra_init:
        raise InputError(f"{init.parent} holds more than init.sh: {', '.join(extra_init)}")
    files.append(ArtifactFile("init/init.sh", init))

    merged = _staged(staging / "requirements.txt", staging)
    if not merged.is_file():
        raise InputError(
            f"{merged} does not exist", hint="write it with merge_requirements.py --out SRC_DIR/requirements.txt"
        )
    files.append(ArtifactFile("requirements.txt", merged))

    notebooks = _staged(staging / "notebooks", staging)
    if notebooks.is_dir():
        files += _files_under(notebooks, "notebooks", staging)

    known = {"wheels", "init", "requirements.txt", "notebooks"}
    warnings = [
        f"{staging / name} is not part of the artifact layout: left out"
        for name in sorted(os.listdir(staging))
        if name not in known
    ]
    return files, warnings


def config_files(loaded_files: Iterable[Path], root: Path) -> list[ArtifactFile]:
    """The loaded config files (root file first, then includes) at their paths relative to the bundle root.

    `loaded_files` and `root` come from `config.load` (``Config.files``, ``Config.root``): the config module is
    the one place that knows how ``include`` expands.
    """
    base = Path(root).resolve()
    files: list[ArtifactFile] = []
    for path in loaded_files:
        if os.path.islink(path):
            discovery.resolve_in_root(path, root)
        relative = os.path.relpath(Path(path).resolve(), base).replace(os.sep, "/")
        if relative.startswith("../"):
            raise InputError(
                f"config file {path} is outside the bundle root {base}",
                hint="keep included config files next to or below the root config",
            )
        if relative not in {f.path for f in files}:
            files.append(ArtifactFile(check_entry_path(relative), Path(path)))
    return files


def _not_shipped(relative: str) -> bool:
    return relative.endswith(_SKIPPED_SCRIPT_SUFFIXES) or relative.startswith(_LOCAL_ONLY)


def script_files(scripts_dir: Path, scripts_requirements: Path | None = None) -> list[ArtifactFile]:
    """``ci_cd_scripts/**`` without caches and the local stand-ins, plus ``ci_cd_scripts/requirements.txt``.

    The scripts' requirements are `scripts_requirements`, else ``<scripts_dir>/requirements.txt``, else the
    repository's ``requirements.txt`` next to the scripts folder (where this repo keeps them).
    """
    if not scripts_dir.is_dir():
        raise InputError(f"scripts folder {scripts_dir} does not exist", hint="pass --scripts-dir")
    files = _files_under(scripts_dir, "ci_cd_scripts", scripts_dir, skip=_not_shipped)
    requirements = scripts_requirements or next(
        (p for p in (scripts_dir / "requirements.txt", scripts_dir.parent / "requirements.txt") if p.is_file()), None
    )
    if requirements is not None and requirements.is_symlink():
        discovery.resolve_in_root(requirements, requirements.parent)  # one file: its own folder is the root
    if requirements is None or not requirements.is_file():
        raise InputError(f"no requirements file for {scripts_dir}", hint="pass --scripts-requirements FILE")
    files = [f for f in files if f.path != "ci_cd_scripts/requirements.txt"]
    files.append(ArtifactFile("ci_cd_scripts/requirements.txt", requirements))
    return files


def check_unique(files: Iterable[ArtifactFile]) -> list[ArtifactFile]:
    """Files sorted by path; `InputError` when two sources claim the same path or one claims MANIFEST.json."""
    by_path: dict[str, ArtifactFile] = {}
    for file in files:
        check_entry_path(file.path)
        if file.path == MANIFEST:
            raise InputError(f"{file.source} would overwrite the artifact's {MANIFEST}")
        if file.path in by_path:
            raise InputError(f"two files for artifact path {file.path}: {by_path[file.path].source} and {file.source}")
        by_path[file.path] = file
    return [by_path[path] for path in sorted(by_path)]


# --- writing -----------------------------------------------------------------------------------------------------


def _zip_info(path: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(path, date_time=FIXED_TIME)
    info.create_system = 3  # Unix, whatever machine builds it
    info.external_attr = ((0o100755 if path in EXECUTABLE else 0o100644) & 0xFFFF) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def manifest_text(entries: Iterable[ManifestEntry]) -> str:
    files = [{"path": e.path, "size": e.size, "sha256": e.sha256} for e in sorted(entries, key=lambda e: e.path)]
    return json.dumps({"format": MANIFEST_FORMAT, "files": files}, indent=2, sort_keys=True) + "\n"


def zip_bytes(files: Iterable[ArtifactFile]) -> tuple[bytes, list[ManifestEntry]]:
    """The reproducible zip of `files` plus MANIFEST.json, and the manifest entries."""
    ordered = check_unique(files)
    contents: dict[str, bytes] = {}
    for file in ordered:
        try:
            contents[file.path] = file.source.read_bytes()
        except OSError as error:
            raise InputError(f"cannot read {file.source}: {error.strerror or error}") from None
    entries = [ManifestEntry(path, len(data), hashlib.sha256(data).hexdigest()) for path, data in contents.items()]
    contents[MANIFEST] = manifest_text(entries).encode("utf-8")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(contents):
            archive.writestr(_zip_info(path), contents[path], compress_type=zipfile.ZIP_DEFLATED, compresslevel=6)
    return buffer.getvalue(), entries


def write_artifact(files: Iterable[ArtifactFile], out: str | os.PathLike[str]) -> list[ManifestEntry]:
    """Write the zip atomically, after checking the bytes about to land verify against their manifest."""
    data, entries = zip_bytes(files)
    problems = verify_zip(io.BytesIO(data))
    if problems:  # a bug, not a user error: never publish an artifact that fails its own check
        raise AssertionError("artifact failed its own verification: " + "; ".join(problems))
    atomic.write_bytes(out, data)
    return entries


# --- checking (used by CD before it deploys anything) ----------------------------------------------------------


def read_manifest(archive: zipfile.ZipFile) -> list[ManifestEntry]:
    try:
        document = json.loads(archive.read(MANIFEST).decode("utf-8"))
        if document.get("format") != MANIFEST_FORMAT:
            raise ValueError(f"unknown manifest format {document.get('format')!r}")
        return [ManifestEntry(str(f["path"]), int(f["size"]), str(f["sha256"])) for f in document["files"]]
    except KeyError:
        raise InputError(f"artifact has no {MANIFEST}") from None
    except (ValueError, TypeError, AttributeError) as error:
        raise InputError(f"artifact {MANIFEST} is malformed: {error}") from None


def verify_zip(source: str | os.PathLike[str] | io.BytesIO) -> list[str]:
    """Problems found when comparing the zip's content with its MANIFEST.json; empty when they match.

    Checks: the zip opens and its CRCs hold, every entry path is a plain relative path, every manifest
    entry exists with the listed size and sha256, and no file is present that the manifest does not list.
    """
    try:
        archive = zipfile.ZipFile(source)
    except (OSError, zipfile.BadZipFile) as error:
        return [f"not a readable zip: {error}"]
    problems: list[str] = []
    with archive:
        names = archive.namelist()
        if len(names) != len(set(names)):
            problems.append("duplicate entries in the zip")
        for name in names:
            try:
                check_entry_path(name.rstrip("/") if name.endswith("/") else name)
            except InputError as error:
                problems.append(error.message)
        try:
            manifest = read_manifest(archive)
        except InputError as error:
            return problems + [error.message]
        listed = {entry.path: entry for entry in manifest}
        for entry in manifest:
            if entry.path not in names:
                problems.append(f"{entry.path}: listed in {MANIFEST} but missing")
                continue
            try:
                data = archive.read(entry.path)
            except (zipfile.BadZipFile, OSError) as error:
                problems.append(f"{entry.path}: unreadable ({error})")
                continue
            if len(data) != entry.size:
                problems.append(f"{entry.path}: size {len(data)} != manifest {entry.size}")
            elif hashlib.sha256(data).hexdigest() != entry.sha256:
                problems.append(f"{entry.path}: sha256 differs from {MANIFEST}")
        for name in names:
            if name != MANIFEST and not name.endswith("/") and name not in listed:
                problems.append(f"{name}: present but not listed in {MANIFEST}")
    return problems
