"""Reading built wheels and stamping a new version into one.

Owns: what a wheel file says about itself (distribution, version, top-level packages, digest), the one
parser of wheel file names (`parse_name`, which every module reading a wheel's name uses) and `restamp`, which
rewrites a wheel for a new version after the build. It does not build anything (`packages.py` does) and does
not know about Databricks.

A wheel file name is ``{distribution}-{version}(-{build tag})?-{python tag}-{abi tag}-{platform tag}.whl``
(https://packaging.python.org/en/latest/specifications/binary-distribution-format/#file-name-convention);
`packaging.utils.parse_wheel_filename` checks it.

Why stamp after the build: every PEP 517 backend (setuptools with setup.py, setup.cfg or pyproject, hatch,
flit, poetry...) declares its version differently (static field, attribute, SCM tag), but every wheel stores
it the same way: in the file name, the ``.dist-info``/``.data`` folder names, ``METADATA`` and ``RECORD``.
Rewriting those gives the unique file name and installed version Databricks clusters need (a re-deployed
wheel must never reuse the previous file name), for any package. What it does not change is a version
string inside the code (``__version__``); ``importlib.metadata.version()`` reports the stamped one.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

# InvalidWheelFilename is part of this module's interface: callers of `parse_name` catch wheels.InvalidWheelFilename.
from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from .errors import InputError


@dataclass(frozen=True)
class WheelInfo:
    """Facts about one wheel file, as shown in build summaries and artifact manifests."""

    path: Path
    distribution: str
    version: str
    size: int
    sha256: str
    top_level: tuple[str, ...]  # importable top-level names (packages and modules)


@dataclass(frozen=True)
class WheelName:
    """The fields of a wheel file name: as written (`escaped_name`, `version_text`, `tags`) and as packaging reads
    them (`distribution` normalised, ``My_Pkg`` → ``my-pkg``; `version` normalised)."""

    file_name: str
    escaped_name: str
    version_text: str
    tags: tuple[str, ...]  # the build tag (if any), then the python, abi and platform tags
    distribution: str
    version: str


def parse_name(file_name: str) -> WheelName:
    """Parse a wheel's file name (no folder); `InvalidWheelFilename` (packaging's, its own message) if it is not one."""
    distribution, version, _build, _tags = parse_wheel_filename(file_name)
    parts = file_name[: -len(".whl")].split("-")  # parse_wheel_filename checked the suffix and the 5 or 6 parts
    return WheelName(file_name, parts[0], parts[1], tuple(parts[2:]), str(distribution), str(version))


def sha256_of(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def top_level_names(names: list[str]) -> tuple[str, ...]:
    """Top-level import names of a wheel's members (``pkg/__init__.py`` → ``pkg``, ``mod.py`` → ``mod``)."""
    found = set()
    for name in names:
        first = name.split("/", 1)[0]
        if first.endswith((".dist-info", ".data")):
            continue
        if "/" in name:
            found.add(first)
        elif first.endswith(".py"):
            found.add(first[:-3])
        elif first.endswith((".so", ".pyd")):
            found.add(first.split(".", 1)[0])
    return tuple(sorted(found))


def inspect(path: str | os.PathLike[str]) -> WheelInfo:
    """Read a wheel's name, version, size, digest and top-level packages; `InputError` if it is not a wheel."""
    path = Path(path)
    try:
        name = parse_name(path.name)
        with zipfile.ZipFile(path) as archive:
            members = archive.namelist()
    except (InvalidWheelFilename, InvalidVersion, zipfile.BadZipFile, OSError) as error:
        raise InputError(f"{path} is not a readable wheel: {error}") from None
    return WheelInfo(
        path, name.distribution, name.version, path.stat().st_size, sha256_of(path), top_level_names(members)
    )


def stamped_version(version: str, suffix: str) -> str:
    """`version` + `suffix` as a normalised PEP 440 version; `InputError` if the result is not one."""
    combined = f"{version}{suffix}"
    try:
        return str(Version(combined))
    except InvalidVersion:
        raise InputError(
            f"version {version!r} with suffix {suffix!r} gives {combined!r}, which is not a valid PEP 440 version",
            hint="use e.g. '.dev123' (pre-release), '.post123' or '+abc1234' (local); a version may have one local part",
        ) from None


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode("ascii")
    return f"sha256={digest}"


def restamp(wheel: str | os.PathLike[str], suffix: str, out_dir: str | os.PathLike[str]) -> Path:
    """Write a copy of `wheel` whose version is its version + `suffix` into `out_dir`; return its path.

    File name, ``.dist-info`` and ``.data`` folder names, ``METADATA`` ``Version:`` and ``RECORD`` (hashes
    and sizes recomputed) are rewritten; member order and timestamps are kept, so the result is as
    reproducible as the input. Signatures (``RECORD.jws``/``RECORD.p7s``) are dropped: they no longer match.
    """
    wheel = Path(wheel)
    try:
        name = parse_name(wheel.name)
    except InvalidWheelFilename:
        raise InputError(f"{wheel.name} is not a wheel file name") from None
    escaped_name, old_version = name.escaped_name, name.version_text
    new_version = stamped_version(old_version, suffix)
    old_prefixes = (f"{escaped_name}-{old_version}.dist-info/", f"{escaped_name}-{old_version}.data/")
    new_prefixes = (f"{escaped_name}-{new_version}.dist-info/", f"{escaped_name}-{new_version}.data/")

    def renamed(member: str) -> str:
        for old, new in zip(old_prefixes, new_prefixes):
            if member.startswith(old):
                return new + member[len(old) :]
        return member

    record_name = new_prefixes[0] + "RECORD"
    target = Path(out_dir) / ("-".join([escaped_name, new_version, *name.tags]) + ".whl")
    records: list[tuple[str, str, str]] = []
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as result:
        members = source.infolist()
        if not any(info.filename.startswith(old_prefixes[0]) for info in members):
            raise InputError(f"{wheel.name} has no {old_prefixes[0]} folder")
        record_info = None
        for info in members:
            name = renamed(info.filename)
            if name == record_name:
                record_info = info
                continue
            if name.endswith(("/RECORD.jws", "/RECORD.p7s")) and name.startswith(new_prefixes[0]):
                continue
            data = source.read(info)
            if name == new_prefixes[0] + "METADATA":
                data = _set_metadata_version(data, new_version)
            copy = zipfile.ZipInfo(name, date_time=info.date_time)
            copy.external_attr = info.external_attr
            copy.compress_type = zipfile.ZIP_DEFLATED
            result.writestr(copy, data)
            if not name.endswith("/"):
                records.append((name, _record_hash(data), str(len(data))))
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerows(records)
        writer.writerow((record_name, "", ""))
        record = zipfile.ZipInfo(record_name, date_time=record_info.date_time if record_info else (1980, 1, 1, 0, 0, 0))
        record.external_attr = record_info.external_attr if record_info else 0o644 << 16
        record.compress_type = zipfile.ZIP_DEFLATED
        result.writestr(record, buffer.getvalue().encode("utf-8"))
    return target


def _set_metadata_version(data: bytes, version: str) -> bytes:
    lines = data.decode("utf-8").split("\n")
    for index, line in enumerate(lines):
        if line == "":
            break  # end of the headers; the rest is the description
        if line.startswith("Version:"):
            lines[index] = f"Version: {version}"
            return "\n".join(lines).encode("utf-8")
    raise InputError("the wheel's METADATA has no Version header")
