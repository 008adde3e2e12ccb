"""``sync``: which local files a deployment uploads (README "Configuration", **Sync**).

Part of the config loader (see `config`). Patterns use .gitignore syntax (via `pathspec`) against paths
relative to the sync root. Selection = files under ``paths`` not ignored by .gitignore rules, plus files
anywhere under the sync root matching ``include``, minus files matching ``exclude``. ``.git`` and
``.databricks`` are always ignored; symlinks and other non-regular files are skipped. The reference is the
Databricks CLI (databricks/cli ``bundle/config/mutator/sync_infer_root.go`` for the sync root,
``libs/git/fileset.go`` for the .gitignore-aware file set).

Owns the sync root, the pattern rebasing and the include/exclude arithmetic; the walk itself and the
.gitignore/.git/info/exclude rules are `discovery`'s (`walk_repository`, `walk_files`), shared with every
CI step that looks for files.
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path

import pathspec

from . import discovery

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
    walk = discovery.walk_files(top, respect_gitignore=False, pruned_dirs=ALWAYS_IGNORED, linked_files=False)
    return [relative for relative, _ in walk]


def _repository_root(start: Path) -> Path:
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return start


def _not_ignored(repository: Path, start: Path) -> list[str]:
    """Files under `start` that .gitignore rules keep, relative to `repository`; ignored folders are pruned."""
    walk = discovery.walk_repository(start, repository, pruned_dirs=ALWAYS_IGNORED, linked_files=False)
    return [relative for relative, _ in walk]


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
            selected.update(name[len(prefix) :] for name in _not_ignored(repository, start))
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
