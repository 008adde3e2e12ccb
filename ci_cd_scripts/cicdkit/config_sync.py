"""``sync``: which local files a deployment uploads (shared/reference/config-semantics.md, section 8).

Part of the config loader (see `config`). Patterns use .gitignore syntax (via `pathspec`) against paths
relative to the sync root. Selection = files under ``paths`` not ignored by .gitignore rules, plus files
anywhere under the sync root matching ``include``, minus files matching ``exclude``. ``.git`` and
``.databricks`` are always ignored; symlinks and other non-regular files are skipped.
"""
from __future__ import annotations

import os
import posixpath
from pathlib import Path

import pathspec

ALWAYS_IGNORED = (".git", ".databricks")


def clean_pattern(pattern: str, prefix: str = "") -> str:
    """Make a pattern relative to the bundle root: prefix the defining file's folder, path-clean it."""
    negate = pattern.startswith("!")
    body = pattern[1:] if negate else pattern
    cleaned = posixpath.normpath(posixpath.join(prefix, body) if prefix else body)
    return ("!" if negate else "") + cleaned


def infer_root(bundle_root: Path, paths: list[str]) -> tuple[Path, list[str], str]:
    """The deepest common folder of the bundle root and every path; paths rebased onto it; the root's offset."""
    root = os.path.normpath(os.path.abspath(bundle_root))
    absolute = [os.path.normpath(os.path.join(root, path)) for path in paths]
    common = os.path.commonpath([root, *absolute])
    rebased = [Path(os.path.relpath(path, common)).as_posix() for path in absolute]
    offset = Path(os.path.relpath(root, common)).as_posix()
    return Path(common), rebased, "" if offset == "." else offset


def _all_files(top: Path) -> list[str]:
    """Every regular file under `top` (relative to it) whatever .gitignore says; ``include`` looks here."""
    found: list[str] = []

    def visit(folder: str, relative: str) -> None:
        with os.scandir(folder) as entries:
            for entry in entries:
                path = f"{relative}/{entry.name}" if relative else entry.name
                if entry.is_dir(follow_symlinks=False):
                    if entry.name not in ALWAYS_IGNORED:
                        visit(entry.path, path)
                elif entry.is_file(follow_symlinks=False):
                    found.append(path)

    visit(str(top), "")
    return found


def _repository_root(start: Path) -> Path:
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return start


def _ignore_spec(path: str) -> pathspec.GitIgnoreSpec | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return pathspec.GitIgnoreSpec.from_lines(handle.read().splitlines())
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None


Rules = list  # [(folder relative to the repository root, its GitIgnoreSpec)], shallowest first


def _is_ignored(relative: str, rules: Rules) -> bool:
    """Whether a path relative to the repository root (folders end in '/') is ignored; deeper files win."""
    verdict = None
    for base, spec in rules:
        result = spec.check_file(relative[len(base) + 1:] if base else relative)
        if result.include is not None:
            verdict = result.include
    return bool(verdict)


def _not_ignored(repository: Path, start: Path) -> list[str]:
    """Files under `start` that .gitignore rules keep, relative to `repository`; ignored folders are pruned."""
    rules: Rules = []
    info = _ignore_spec(str(repository / ".git" / "info" / "exclude"))
    if info is not None:
        rules.append(("", info))
    # The .gitignore files of the folders from the repository root down to `start`.
    parts = start.relative_to(repository).parts
    for depth in range(len(parts) + 1):
        base = "/".join(parts[:depth])
        spec = _ignore_spec(str(repository.joinpath(*parts[:depth], ".gitignore")))
        if spec is not None:
            rules.append((base, spec))
        if depth < len(parts):
            is_last = depth == len(parts) - 1
            child = "/".join(parts[: depth + 1]) + ("" if is_last and start.is_file() else "/")
            if parts[depth] in ALWAYS_IGNORED or _is_ignored(child, rules):
                return []
    if start.is_file():
        return ["/".join(parts)]
    found: list[str] = []

    def visit(folder: str, relative: str, rules: Rules) -> None:
        with os.scandir(folder) as entries:
            for entry in sorted(entries, key=lambda item: item.name):
                path = f"{relative}/{entry.name}" if relative else entry.name
                if entry.is_dir(follow_symlinks=False):
                    if entry.name in ALWAYS_IGNORED or _is_ignored(path + "/", rules):
                        continue
                    spec = _ignore_spec(os.path.join(entry.path, ".gitignore"))
                    visit(entry.path, path, rules if spec is None else [*rules, (path, spec)])
                elif entry.is_file(follow_symlinks=False) and not _is_ignored(path, rules):
                    found.append(path)

    visit(str(start), "/".join(parts), rules)
    return found


def select_files(sync_root: Path, paths: list[str], include: list[str], exclude: list[str]) -> list[str]:
    """The sorted files (relative to the sync root) a deployment would upload."""
    sync_root = Path(os.path.abspath(sync_root))
    repository = _repository_root(sync_root)
    offset = sync_root.relative_to(repository).as_posix()
    prefix = "" if offset == "." else offset + "/"
    selected: set[str] = set()
    for path in paths:
        start = Path(os.path.normpath(sync_root / path))
        if start.exists() and (start == sync_root or sync_root in start.parents):
            selected.update(name[len(prefix):] for name in _not_ignored(repository, start))
    if include:
        spec = pathspec.GitIgnoreSpec.from_lines(include)
        selected.update(name for name in _all_files(sync_root) if spec.match_file(name))
    if exclude:
        spec = pathspec.GitIgnoreSpec.from_lines(exclude)
        selected = {name for name in selected if not spec.match_file(name)}
    return sorted(selected)


def check(sync_root: Path, paths: list[str], include: list[str], exclude: list[str]) -> tuple[list[str], list[str]]:
    """The selected files and the warnings ``validate`` gives (unmatched patterns, nothing to sync)."""
    files = select_files(sync_root, paths, include, exclude)
    top = Path(os.path.abspath(sync_root))
    everything = _all_files(top) if include or exclude else []
    warnings = []
    for pattern in [*include, *exclude]:
        spec = pathspec.GitIgnoreSpec.from_lines([pattern.lstrip("!")])
        if not any(spec.match_file(name) for name in everything):
            warnings.append(f"Pattern {pattern} does not match any files")
    if paths and not files:
        extra = " and sync.exclude configuration" if exclude else ""
        warnings.append(f"There are no files to sync, please check your .gitignore{extra}")
    return files, warnings
