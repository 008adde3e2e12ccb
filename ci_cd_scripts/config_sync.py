"""``sync``: which local files a deployment uploads (shared/reference/config-semantics.md, section 8).

Part of the config loader (see `config`). Patterns use .gitignore syntax (via `pathspec`) against paths
relative to the sync root. Selection = files under ``paths`` not ignored by .gitignore rules, plus files
anywhere under the sync root matching ``include``, minus files matching ``exclude``. ``.git`` and
``.databricks`` are always ignored; symlinks and other non-regular files are skipped.
"""
from __future__ import annotations

import os
import posixpath
from functools import lru_cache
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


def _regular_files(start: Path, top: Path, skip_dir=None):
    """Regular files under `start` as paths relative to `top`; `skip_dir(abs_dir)` prunes folders."""
    if start.is_file() and not start.is_symlink():
        yield start.relative_to(top).as_posix()
        return
    for folder, dirs, files in os.walk(start):
        dirs[:] = sorted(
            name for name in dirs
            if name not in ALWAYS_IGNORED
            and not os.path.islink(os.path.join(folder, name))
            and not (skip_dir and skip_dir(Path(folder, name)))
        )
        for name in sorted(files):
            full = Path(folder, name)
            if full.is_symlink() or not full.is_file():
                continue
            yield full.relative_to(top).as_posix()


def _repository_root(start: Path) -> Path:
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return start


class _IgnoreRules:
    """.gitignore files from the repository root down, plus .git/info/exclude."""

    def __init__(self, repository: Path) -> None:
        self.repository = repository
        self.spec_for = lru_cache(maxsize=None)(self._load)
        exclude = repository / ".git" / "info" / "exclude"
        self.info = pathspec.GitIgnoreSpec.from_lines(exclude.read_text(errors="replace").splitlines()) if exclude.is_file() else None

    @staticmethod
    def _load(folder: Path):
        ignore = folder / ".gitignore"
        if not ignore.is_file():
            return None
        return pathspec.GitIgnoreSpec.from_lines(ignore.read_text(errors="replace").splitlines())

    def ignored(self, path: Path, is_dir: bool) -> bool:
        verdict = None
        suffix = "/" if is_dir else ""
        if self.info is not None:
            result = self.info.check_file(path.relative_to(self.repository).as_posix() + suffix)
            verdict = result.include if result.include is not None else verdict
        folders = [folder for folder in reversed(path.parents) if folder == self.repository or self.repository in folder.parents]
        for folder in folders:
            spec = self.spec_for(folder)
            if spec is None:
                continue
            result = spec.check_file(path.relative_to(folder).as_posix() + suffix)
            if result.include is not None:
                verdict = result.include
        return bool(verdict)


def select_files(sync_root: Path, paths: list[str], include: list[str], exclude: list[str]) -> list[str]:
    """The sorted files (relative to the sync root) a deployment would upload."""
    sync_root = Path(os.path.abspath(sync_root))
    rules = _IgnoreRules(_repository_root(sync_root))
    selected: set[str] = set()
    for path in paths:
        start = Path(os.path.normpath(sync_root / path))
        if not start.exists():
            continue
        for relative in _regular_files(start, sync_root, skip_dir=lambda folder: rules.ignored(folder, True)):
            if not rules.ignored(sync_root / relative, False):
                selected.add(relative)
    if include:
        spec = pathspec.GitIgnoreSpec.from_lines(include)
        selected.update(name for name in _regular_files(sync_root, sync_root) if spec.match_file(name))
    if exclude:
        spec = pathspec.GitIgnoreSpec.from_lines(exclude)
        selected = {name for name in selected if not spec.match_file(name)}
    return sorted(selected)


def check(sync_root: Path, paths: list[str], include: list[str], exclude: list[str]) -> tuple[list[str], list[str]]:
    """The selected files and the warnings ``validate`` gives (unmatched patterns, nothing to sync)."""
    files = select_files(sync_root, paths, include, exclude)
    top = Path(os.path.abspath(sync_root))
    everything = list(_regular_files(top, top)) if include or exclude else []
    warnings = []
    for pattern in [*include, *exclude]:
        spec = pathspec.GitIgnoreSpec.from_lines([pattern.lstrip("!")])
        if not any(spec.match_file(name) for name in everything):
            warnings.append(f"Pattern {pattern} does not match any files")
    if paths and not files:
        extra = " and sync.exclude configuration" if exclude else ""
        warnings.append(f"There are no files to sync, please check your .gitignore{extra}")
    return files, warnings
