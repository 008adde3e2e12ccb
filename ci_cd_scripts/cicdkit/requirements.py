"""Reading pip requirement files and merging several into one file a cluster init script can install.

Owns: the requirement-file line grammar we accept (comments, continuations, `-r` includes, the options that
may travel to a cluster), de-duplication, and conflict detection between pins of the same distribution.
Does not own: finding the files (`discovery.py`) or installing anything (`install_requirements.py`, the init
script written by `create_init_script.py`).

What happens to each kind of line (pip's requirements-file format):

* comments (`#` at the start or after whitespace), blank lines: dropped; `\\` continuations are joined.
* ``-r FILE`` / ``--requirement FILE``: the file is read in place, relative to the including file's folder;
  a file already read is not read twice (so include cycles are harmless).
* kept, because they mean the same on a cluster and pip accepts them in a requirements file:
  ``-i/--index-url`` (at most one distinct value), ``--extra-index-url``, ``--trusted-host``, ``--pre``,
  ``--prefer-binary``, ``--only-binary``, ``--no-binary``. Index URLs must not carry literal credentials
  (use pip's ``${ENV_VAR}`` expansion); the merged file is published and copied to the workspace.
* dropped with a warning: ``-f/--find-links`` and ``--no-index`` (they point at agent-local folders that do
  not exist on a cluster), per-requirement ``--hash=...`` (a merged file mixing hashed and unhashed lines
  would switch pip into hash-checking mode and fail on the cluster).
* refused: ``-e/--editable`` and local paths (build them as wheels instead), ``-c/--constraint`` (the
  constraint file would not be deployed; pin in the requirement file), unnamed URLs (write ``name @ URL``),
  any other option.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import Specifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from .errors import InputError

_COMMENT = re.compile(r"(^|\s+)#.*$")
_INCLUDE = ("-r", "--requirement")
_REFUSED = {
    "-e": "editable installs cannot go onto a cluster; build the package as a wheel (build_packages.py)",
    "--editable": "editable installs cannot go onto a cluster; build the package as a wheel (build_packages.py)",
    "-c": "constraint files are not deployed with the merged requirements; pin the version in the requirement file",
    "--constraint": "constraint files are not deployed with the merged requirements; pin the version in the requirement file",
}
# Options written to the merged file. Value-taking ones first; flags have no value.
_KEPT_WITH_VALUE = {
    "-i": "--index-url",
    "--index-url": "--index-url",
    "--extra-index-url": "--extra-index-url",
    "--trusted-host": "--trusted-host",
    "--only-binary": "--only-binary",
    "--no-binary": "--no-binary",
}
_KEPT_FLAGS = {"--pre", "--prefer-binary"}
_DROPPED_WITH_VALUE = {"-f": "--find-links", "--find-links": "--find-links"}
_DROPPED_FLAGS = {"--no-index"}
_URL_CREDENTIALS = re.compile(r"^[a-z][a-z0-9+.-]*://([^/@]+)@", re.IGNORECASE)


@dataclass(frozen=True)
class Origin:
    """Where a line came from: the file as the user named it (or as included) and the 1-based line number."""

    path: Path
    line: int

    def __str__(self) -> str:
        return f"{_display(self.path)}:{self.line}"


@dataclass(frozen=True)
class Entry:
    """One requirement line: the parsed requirement and where it was written."""

    requirement: Requirement
    origin: Origin

    @property
    def key(self) -> str:
        return canonicalize_name(self.requirement.name)


@dataclass(frozen=True)
class Option:
    """A pip option kept for the merged file, e.g. ``--extra-index-url https://...``."""

    name: str
    value: str | None
    origin: Origin

    def line(self) -> str:
        return self.name if self.value is None else f"{self.name} {self.value}"


@dataclass
class Parsed:
    """Everything read from a set of requirement files, in reading order."""

    entries: list[Entry] = field(default_factory=list)
    options: list[Option] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


@dataclass
class Merged:
    """The merged result: the lines to write (options first, then requirements) and what was noticed."""

    options: list[str]
    requirements: list[str]
    warnings: list[str]
    files: list[Path]

    def text(self, header: Sequence[str] = ()) -> str:
        lines = [f"# {line}" for line in header] + self.options + self.requirements
        return "".join(f"{line}\n" for line in lines)


def _display(path: Path) -> str:
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return str(path)
    return str(path) if relative.startswith("..") else relative


def logical_lines(text: str) -> Iterable[tuple[int, str]]:
    """Yield (first physical line number, content) with continuations joined and comments removed."""
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not pending:
            start = number
        line = raw
        if line.endswith("\\") and not _COMMENT.search(line):
            pending.append(line[:-1])
            continue
        pending.append(line)
        joined = _COMMENT.sub("", "".join(pending)).strip()
        pending = []
        if joined:
            yield start, joined
    if pending:
        joined = _COMMENT.sub("", "".join(pending)).strip()
        if joined:
            yield start, joined


def _split_option(line: str) -> tuple[str, str | None]:
    """``--opt=value``, ``--opt value``, ``-ivalue``, ``-i value`` → (option, value or None)."""
    if line.startswith("--"):
        match = re.match(r"^(--[A-Za-z0-9-]+)(?:\s*=\s*|\s+)?(.*)$", line)
        return match.group(1), match.group(2).strip() or None
    return line[:2], line[2:].strip() or None


def redact(text: str) -> str:
    """`text` with any ``scheme://user:password@`` credentials replaced by ``***`` (for messages)."""
    return re.sub(r"([a-z][a-z0-9+.-]*://)[^/@\s]+@", r"\1***@", text, flags=re.IGNORECASE)


def _check_url(url: str, origin: Origin) -> None:
    match = _URL_CREDENTIALS.match(url)
    if match and not re.fullmatch(r"(\$\{[A-Za-z_][A-Za-z0-9_]*\}:?)+", match.group(1)):
        raise InputError(
            f"{origin}: the URL carries literal credentials",
            hint="use pip's ${ENV_VAR} expansion, e.g. https://${PIP_TOKEN}@host/simple, and set the variable on the cluster",
        )


def parse_requirement(text: str, origin: Origin) -> tuple[Requirement, bool]:
    """Parse one requirement line; return it and whether a ``--hash`` option was stripped from it."""
    stripped_hash = False
    match = re.search(r"(^|\s)--", text)
    if match:
        tokens = text[match.start() :].split()
        text = text[: match.start()].strip()
        skip_next = False
        for token in tokens:
            if skip_next:
                skip_next = False
            elif token.startswith("--hash"):
                stripped_hash = True
                skip_next = token == "--hash"
            else:
                raise InputError(
                    f"{origin}: per-requirement option {token.split('=')[0]} is not supported in merged requirements",
                    hint="remove it from the requirement line",
                )
    name_part = text.split(";")[0].split("@")[0]
    if "://" not in text and (text.startswith((".", "/", "~")) or "/" in name_part or "\\" in name_part):
        raise InputError(
            f"{origin}: local path requirement {redact(text)!r} cannot be installed on a cluster",
            hint="build the package as a wheel with build_packages.py",
        )
    if re.match(r"^[a-z][a-z0-9+.-]*://", text, re.IGNORECASE):
        raise InputError(f"{origin}: unnamed URL requirement {redact(text)!r}", hint="write it as 'name @ URL'")
    try:
        requirement = Requirement(text)
    except InvalidRequirement as error:
        raise InputError(f"{origin}: invalid requirement {redact(text)!r}: {redact(str(error))}") from None
    if requirement.url:
        _check_url(requirement.url, origin)
        if requirement.url.startswith("file:"):
            raise InputError(
                f"{origin}: file: URL {redact(requirement.url)!r} points at the build agent, not the cluster",
                hint="build the package as a wheel with build_packages.py",
            )
    return requirement, stripped_hash


def read_files(files: Sequence[str | os.PathLike[str]]) -> Parsed:
    """Read the files (and their ``-r`` includes) in order; raise `InputError` naming file and line."""
    parsed = Parsed()
    seen: set[Path] = set()

    def read(path: Path, included_from: Origin | None) -> None:
        resolved = path.resolve()
        if resolved in seen:
            return
        seen.add(resolved)
        try:
            text = path.read_text(encoding="utf-8-sig")  # editors on Windows like to add a BOM
        except FileNotFoundError:
            where = f"{included_from}: included file " if included_from else "requirement file "
            raise InputError(f"{where}{_display(path)} does not exist") from None
        except (OSError, UnicodeDecodeError) as error:
            raise InputError(f"cannot read requirement file {_display(path)}: {error}") from None
        parsed.files.append(path)
        hashes_dropped = False
        for number, line in logical_lines(text):
            origin = Origin(path, number)
            if line.startswith("-"):
                name, value = _split_option(line)
                if name in _INCLUDE:
                    if not value:
                        raise InputError(f"{origin}: {name} needs a file name")
                    read(path.parent / value, origin)
                elif name in _REFUSED:
                    raise InputError(f"{origin}: {redact(line)!r}: {_REFUSED[name]}")
                elif name in _KEPT_WITH_VALUE:
                    if not value:
                        raise InputError(f"{origin}: {name} needs a value")
                    if name in ("-i", "--index-url", "--extra-index-url"):
                        _check_url(value, origin)
                    parsed.options.append(Option(_KEPT_WITH_VALUE[name], value, origin))
                elif name in _KEPT_FLAGS:
                    parsed.options.append(Option(name, None, origin))
                elif name in _DROPPED_WITH_VALUE or name in _DROPPED_FLAGS:
                    parsed.warnings.append(
                        f"{origin}: dropped {name}: agent-local package sources do not exist on a cluster"
                    )
                else:
                    raise InputError(
                        f"{origin}: option {name} is not supported in merged requirements",
                        hint="remove it, or install that requirement another way",
                    )
                continue
            requirement, stripped = parse_requirement(line, origin)
            hashes_dropped |= stripped
            parsed.entries.append(Entry(requirement, origin))
        if hashes_dropped:
            parsed.warnings.append(
                f"{_display(path)}: dropped --hash options (a merged file cannot mix hashed and unhashed requirements)"
            )

    for file in files:
        read(Path(file), None)
    return parsed


# --- conflicts -----------------------------------------------------------------------------------------------


def _release_bump(version: Version, parts: int) -> Version:
    """The first version after the prefix of `parts` release segments: 1.4.* → 1.5, ~=1.4.2 → 1.5."""
    release = list(version.release[:parts]) or [0]
    release[-1] += 1
    prefix = f"{version.epoch}!" if version.epoch else ""
    return Version(prefix + ".".join(map(str, release)))


def _interval(specifier: Specifier) -> tuple[Version | None, bool, Version | None, bool] | None:
    """(low, low_inclusive, high, high_inclusive) the specifier allows, or None when it is not an interval."""
    operator, text = specifier.operator, specifier.version
    try:
        if operator in ("==", "!=") and text.endswith(".*"):
            if operator == "!=":
                return None
            base = Version(text[:-2])
            return base, True, _release_bump(base, len(base.release)), False
        if operator == "===":
            return None
        version = Version(text)
    except InvalidVersion:
        return None
    return {
        "==": (version, True, version, True),
        ">=": (version, True, None, False),
        ">": (version, False, None, False),
        "<=": (None, False, version, True),
        "<": (None, False, version, False),
        "~=": (version, True, _release_bump(version, max(len(version.release) - 1, 1)), False),
    }.get(operator)


def specifiers_conflict(first: SpecifierSet, second: SpecifierSet) -> bool:
    """True when no version can satisfy both sets (exact pins, ``!=`` against a pin, and disjoint ranges)."""
    combined = list(first) + list(second)
    exact = {s.version for s in combined if s.operator == "==="}
    if len(exact) > 1:
        return True
    low: tuple[Version, bool] | None = None
    high: tuple[Version, bool] | None = None
    for specifier in combined:
        interval = _interval(specifier)
        if interval is None:
            continue
        lo, lo_inclusive, hi, hi_inclusive = interval
        if lo is not None and (low is None or lo > low[0] or (lo == low[0] and not lo_inclusive)):
            low = (lo, lo_inclusive)
        if hi is not None and (high is None or hi < high[0] or (hi == high[0] and not hi_inclusive)):
            high = (hi, hi_inclusive)
    if low and high:
        if low[0] > high[0] or (low[0] == high[0] and not (low[1] and high[1])):
            return True
        if low[0] == high[0]:  # a single version: check it against every specifier, != included
            return not SpecifierSet(",".join(map(str, combined))).contains(low[0], prereleases=True)
    return False


def _applies_together(first: Entry, second: Entry) -> bool:
    """Entries are compared when they can apply in the same environment: same marker, or one without any."""
    a, b = first.requirement.marker, second.requirement.marker
    return a is None or b is None or str(a) == str(b)


def _conflict(first: Entry, second: Entry) -> str | None:
    a, b = first.requirement, second.requirement
    if a.url or b.url:
        if a.url != b.url or a.specifier or b.specifier:
            return "a direct URL cannot be combined with another URL or a version"
        return None
    if specifiers_conflict(a.specifier, b.specifier):
        return "no version satisfies both"
    return None


def _combine(entries: list[Entry]) -> Requirement:
    """One requirement for entries of a distribution with the same marker: extras united, specifiers intersected."""
    first = entries[0].requirement
    extras = sorted(set().union(*(e.requirement.extras for e in entries)))
    specifiers = SpecifierSet(",".join(str(e.requirement.specifier) for e in entries if e.requirement.specifier))
    text = first.name + (f"[{','.join(extras)}]" if extras else "")
    if first.url:
        text += f" @ {first.url}"
        if first.marker:
            text += " "
    else:
        text += ",".join(sorted(str(s) for s in specifiers))
    if first.marker:
        text += f"; {first.marker}"
    return Requirement(text)


def merge(parsed: Parsed) -> Merged:
    """De-duplicate and combine `parsed`; raise `InputError` naming both lines on a conflict."""
    by_name: dict[str, list[Entry]] = {}
    for entry in parsed.entries:
        for other in by_name.get(entry.key, []):
            if _applies_together(other, entry):
                reason = _conflict(other, entry)
                if reason:
                    raise InputError(
                        f"conflicting requirements for {entry.requirement.name!r}: "
                        f"'{other.requirement}' ({other.origin}) vs '{entry.requirement}' ({entry.origin}): {reason}",
                        hint="pin one version in every package's requirement file",
                    )
        by_name.setdefault(entry.key, []).append(entry)

    requirements: list[str] = []
    for key in sorted(by_name):
        by_marker: dict[str, list[Entry]] = {}
        for entry in by_name[key]:
            by_marker.setdefault(str(entry.requirement.marker or ""), []).append(entry)
        for marker in sorted(by_marker):
            requirements.append(str(_combine(by_marker[marker])))

    index_urls = [o for o in parsed.options if o.name == "--index-url"]
    for option in index_urls[1:]:
        if option.value != index_urls[0].value:
            raise InputError(
                f"conflicting --index-url: {index_urls[0].value!r} ({index_urls[0].origin}) vs {option.value!r} ({option.origin})",
                hint="keep one --index-url and use --extra-index-url for the others",
            )
    options: list[str] = []
    for option in parsed.options:
        if option.line() not in options:
            options.append(option.line())
    return Merged(options=options, requirements=requirements, warnings=list(parsed.warnings), files=list(parsed.files))


def merge_files(files: Sequence[str | os.PathLike[str]]) -> Merged:
    """Read and merge requirement files (the whole operation `merge_requirements.py` performs)."""
    return merge(read_files(files))
