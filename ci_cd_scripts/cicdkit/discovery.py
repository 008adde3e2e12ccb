"""Finding files and packages in a repository: one pruned directory walk that every CI step shares.

Owns: which directories are never entered (`.git`, virtualenvs, `node_modules`, build output, caches and
anything ignored by the repo's ``.gitignore`` files), gitignore-style matching of the caller's patterns,
and what counts as a Python package (`find_packages`). It does not install, build or copy anything.
It is the one gitignore-aware walker: the bundle sync selection (`config_sync`) walks with it too, through
`walk_repository` and the `pruned_dirs`/`linked_files` options (README "Configuration", **Sync**).

Also owns the one symlink rule of every step that reads a source tree (`resolve_in_root`: deploy_notebooks,
upload_files, package_artifact, copy_notebooks, build_packages): a symlink is used only when it resolves inside
the step's source root; one that points outside, dangles or loops is an `InputError` naming the link.

Speed comes from pruning: a pruned directory is never listed, so a ``.venv`` or ``node_modules`` with
hundreds of thousands of files costs one ``stat``. The walk uses ``os.scandir`` and does not follow
symlinked directories (no loops, no escaping the root); a symlink that does not resolve (dangling, loop) is
skipped, or refused when the caller asks for `resolve_in_root` checks (``symlinks_within``).

Patterns use ``.gitignore`` syntax (pathspec's `GitIgnoreSpec`), matched against paths relative to the root:
``*/requirements/*.txt`` (a slash inside anchors it to the root: one folder deep), ``**/setup.py`` (any
depth), ``setup.py`` (no slash: any depth), ``!pattern`` excludes again.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError

# Directory names never entered: VCS metadata, virtualenvs, JS dependencies, build output, caches.
PRUNED_DIR_NAMES = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        ".bzr",
        ".venv",
        "venv",
        "env",
        ".env",
        ".conda",
        "site-packages",
        "node_modules",
        "bower_components",
        "build",
        "dist",
        ".eggs",
        "__pycache__",
        ".tox",
        ".nox",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".hypothesis",
        ".ipynb_checkpoints",
    }
)
PRUNED_DIR_SUFFIXES = (".egg-info", ".dist-info")
# A directory holding this file is a virtualenv, whatever its name (PEP 405).
VENV_MARKER = "pyvenv.cfg"
PACKAGE_MARKERS = ("pyproject.toml", "setup.py")
_BUILD_TABLE = re.compile(r"^\s*\[\s*(project|build-system)\s*\]", re.MULTILINE)


def is_pruned_dir(name: str, path: str | os.PathLike[str]) -> bool:
    """True for a directory the walk never enters (by name, suffix, or because it is a virtualenv)."""
    if name in PRUNED_DIR_NAMES or name.endswith(PRUNED_DIR_SUFFIXES):
        return True
    return os.path.isfile(os.path.join(path, VENV_MARKER))


def _within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _loop_chain(link: Path) -> str:
    """``SRC/a -> b -> a``: `link`, then each link's target as written, until one repeats (at most 5 steps)."""
    chain, seen, current = [str(link)], {os.path.abspath(link)}, str(link)
    while len(chain) < 6 and os.path.islink(current):
        target = os.readlink(current)
        chain.append(target)
        current = os.path.abspath(os.path.join(os.path.dirname(current), target))
        if current in seen:
            break
        seen.add(current)
    return " -> ".join(chain)


def resolve_in_root(
    path: str | os.PathLike[str],
    root: str | os.PathLike[str],
    *,
    entered: Iterable[str | os.PathLike[str]] = (),
) -> Path:
    """The real path of `path` (a file or folder below `root`), or `InputError` when a symlink makes it unsafe.

    The one symlink rule of every step that reads a source tree: a symlink is used only when it resolves inside
    `root` (a linked file is then read through the link). Refused, naming the link as the user wrote it:
    a link whose target is outside `root` (checked on the whole path, so a linked folder on the way counts),
    a dangling link, a loop of links, and a link to a folder that contains the link itself or any folder in
    `entered` (the real folders a walk that follows folder links is inside: following it would never end).
    `root` may itself be a symlink or lie below one: the user named it, so its real path is the boundary.
    """
    path, root = Path(path), Path(root)
    root_real = Path(os.path.realpath(root))
    real = Path(os.path.realpath(path))
    if not _within(real, root_real):
        link = _link_leaving(path, root, root_real)
        if link is None:
            raise InputError(f"{path} resolves to {real}, outside {root}", hint=f"keep the files of {root} inside it")
        raise InputError(
            f"{link} is a symlink to {os.path.realpath(link)}, outside {root}",
            hint=f"replace the link with the file, or move its target inside {root}",
        )
    if not os.path.islink(path):
        return real
    try:
        os.stat(path)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise InputError(
                f"{path} is a symlink loop ({_loop_chain(path)})", hint="replace the link with the file, or remove it"
            ) from None
        if error.errno in (errno.ENOENT, errno.ENOTDIR):
            raise InputError(
                f"{path} is a symlink to {real}, which does not exist", hint="fix the link or remove it"
            ) from None
        raise InputError(f"cannot read {path}: {error.strerror or error}") from None
    if real.is_dir():
        for folder in (Path(os.path.realpath(path.parent)), *map(Path, entered)):
            if _within(folder, real):
                raise InputError(
                    f"{path} is a symlink to {real}, a folder that contains the link (a loop)",
                    hint="replace the link with the folder's files, or remove it",
                )
    return real


def _link_leaving(path: Path, root: Path, root_real: Path) -> Path | None:
    """The first symlink on the way from `root` to `path` whose target is outside `root_real` (None: no symlink)."""
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        parts = ()
    current = root
    for part in parts:
        current = current / part
        if os.path.islink(current) and not _within(Path(os.path.realpath(current)), root_real):
            return current
    return path if os.path.islink(path) else None


# The regex group pathspec's gitignore patterns use to mark a match through a parent folder (``build/`` matching
# ``build/x.txt``): the same name in pathspec 0.12 and 1.x (requirements.txt bounds the major for that reason).
_DIR_MARK = "ps_d"


class Patterns:
    """Compiled gitignore-style patterns answering "does the last matching pattern include this path?".

    Parsing is pathspec's (`GitIgnoreSpec`); matching calls each pattern's compiled regex directly, last
    pattern first, which is several times faster than `GitIgnoreSpec.check_file` per path and gives its answer:
    a pattern that matches the path itself outranks one that only matches a folder above it (``*.md`` then
    ``!docs/`` still ignores ``docs/a.md``, as git does); without a direct match the last folder match counts.
    """

    def __init__(self, lines: Iterable[str]) -> None:
        # Imported on first use: pathspec (with the typing_extensions/asyncio it pulls in) is about half of a
        # CLI's start-up, and --help, usage errors and a bad ROOT do not need it.
        import pathspec

        self.spec = pathspec.GitIgnoreSpec.from_lines(list(lines))
        # pathspec matches with re.search (some regexes, e.g. of ``*/``, are not anchored); for one that starts
        # with ^ re.match is the same and cheaper.
        self._rules = [
            (
                pattern.regex.match if pattern.regex.pattern.startswith("^") else pattern.regex.search,
                bool(pattern.include),
                _DIR_MARK in pattern.regex.groupindex,
            )
            for pattern in reversed(self.spec.patterns)
            if pattern.include is not None and getattr(pattern, "regex", None) is not None
        ]
        self._direct = all(
            getattr(pattern, "regex", None) is not None for pattern in self.spec.patterns if pattern.include is not None
        )

    def __len__(self) -> int:
        return len(self._rules)

    def verdict(self, path: str) -> bool | None:
        """True (a pattern includes it), False (a ``!`` pattern excludes it) or None (no pattern matches)."""
        if not self._direct:
            return self.spec.check_file(path).include
        through_folder = None
        for match, include, has_mark in self._rules:
            found = match(path)
            if found is None:
                continue
            if has_mark and found.group(_DIR_MARK):
                if through_folder is None:
                    through_folder = include  # the last folder match, unless a direct match comes up
                continue
            return include
        return through_folder


@dataclass(frozen=True)
class _IgnoreFile:
    """The patterns of one ``.gitignore``; `prefix` is its folder relative to the walk root ("" or "a/b/")."""

    prefix: str
    patterns: Patterns

    def verdict(self, relative: str) -> bool | None:
        """True (ignored), False (re-included by ``!``) or None (no pattern of this file says anything)."""
        if not relative.startswith(self.prefix):
            return None
        return self.patterns.verdict(relative[len(self.prefix) :])


@dataclass(frozen=True)
class _Rebased(_IgnoreFile):
    """An ancestor's ``.gitignore``: `prefix` is prepended to root-relative paths instead of stripped."""

    def verdict(self, relative: str) -> bool | None:
        return self.patterns.verdict(self.prefix + relative)


def _read_ignore_file(path: str, prefix: str) -> _IgnoreFile | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return None
    patterns = Patterns(lines)
    return _IgnoreFile(prefix, patterns) if len(patterns) else None


def _is_ignored(relative: str, ignore_files: tuple[_IgnoreFile, ...]) -> bool:
    # The deepest .gitignore that has an opinion wins, as in git.
    for ignore_file in reversed(ignore_files):
        verdict = ignore_file.verdict(relative)
        if verdict is not None:
            return verdict
    return False


def _ancestor_ignore_files(root: Path, ignore_root: Path | None) -> tuple[_IgnoreFile, ...]:
    """``.gitignore`` files of the folders from `ignore_root` down to (not including) `root`, as seen from `root`.

    Patterns of an ancestor's file are re-based: they apply to `root`'s entries with the path between them
    as a prefix, which we express by matching `root`-relative paths prefixed with that path.
    """
    if ignore_root is None or ignore_root == root or ignore_root not in root.parents:
        return ()
    found: list[_IgnoreFile] = []
    folder = root.parent
    chain = []
    while True:
        chain.append(folder)
        if folder == ignore_root:
            break
        folder = folder.parent
    for folder in reversed(chain):
        between = root.relative_to(folder).as_posix() + "/"
        ignore_file = _read_ignore_file(str(folder / ".gitignore"), "")
        if ignore_file:
            found.append(_Rebased(between, ignore_file.patterns))
    return tuple(found)


def _pruned(name: str, path: str | os.PathLike[str], pruned_dirs: Collection[str] | None) -> bool:
    return is_pruned_dir(name, path) if pruned_dirs is None else name in pruned_dirs


def walk_files(
    root: str | os.PathLike[str],
    *,
    respect_gitignore: bool = True,
    ignore_root: str | os.PathLike[str] | None = None,
    want: Callable[[str], object] | None = None,
    symlinks_within: str | os.PathLike[str] | None = None,
    pruned_dirs: Collection[str] | None = None,
    linked_files: bool = True,
) -> Iterator[tuple[str, str]]:
    """Yield ``(relative_posix_path, absolute_path)`` for every file under `root` that is not pruned.

    `ignore_root`: an ancestor folder (e.g. the repository root) whose ``.gitignore`` files, from there down
    to `root`, apply too. `want`: only files whose relative path it accepts (tested before the cheaper-to-skip
    .gitignore check). Files are yielded in no particular order; callers sort.

    `pruned_dirs`: the folder names never entered, instead of the default rule (`is_pruned_dir`: the names,
    suffixes and virtualenvs above); the sync selection of a bundle prunes only ``.git`` and ``.databricks``.

    Linked files are yielded (read through the link), linked folders are never entered, links that do not
    resolve are skipped. `linked_files=False` skips every symlink (regular files only). `symlinks_within`: the
    caller's source root; every link the walk meets and does not prune or ignore must pass `resolve_in_root`
    against it (outside, dangling, looping: `InputError`).
    """
    root_path = Path(root).resolve()
    if not root_path.is_dir():
        raise InputError(f"{root} is not a folder", hint="pass the repository (or package) folder to search")
    inherited = (
        _ancestor_ignore_files(root_path, Path(ignore_root).resolve() if ignore_root else None)
        if respect_gitignore
        else ()
    )
    if respect_gitignore:
        exclude = root_path / ".git" / "info" / "exclude"
        if exclude.is_file():
            extra = _read_ignore_file(str(exclude), "")
            inherited = ((extra,) if extra else ()) + inherited  # lowest precedence, as in git
    yield from _walk(
        str(root_path),
        "",
        inherited,
        respect_gitignore=respect_gitignore,
        want=want,
        symlinks_within=symlinks_within,
        pruned_dirs=pruned_dirs,
        linked_files=linked_files,
    )


def walk_repository(
    path: str | os.PathLike[str],
    repository: str | os.PathLike[str],
    *,
    pruned_dirs: Collection[str] | None = None,
    linked_files: bool = True,
) -> Iterator[tuple[str, str]]:
    """Yield ``(path relative to repository, absolute_path)`` for the files under `path` that git keeps.

    `path` is a folder or one file inside `repository`, taken as written (made absolute, links not resolved).
    The ignore rules are the whole repository's, as git reads them: its ``.git/info/exclude`` (lowest
    precedence), then every ``.gitignore`` from `repository` down. Unlike `walk_files` with `ignore_root`,
    when `path` itself or a folder between `repository` and it is pruned or ignored nothing is yielded (git does
    not look inside an ignored folder); a `path` that is a file is yielded unless that applies to it.
    `pruned_dirs` and `linked_files` as in `walk_files`; the walk below `path` is `walk_files`' own.
    """
    repository = Path(os.path.abspath(repository))
    path = Path(os.path.abspath(path))
    parts = path.relative_to(repository).parts
    info_exclude = _read_ignore_file(str(repository / ".git" / "info" / "exclude"), "")
    ignore_files: tuple[_IgnoreFile, ...] = (info_exclude,) if info_exclude else ()
    is_file = path.is_file()
    for depth, name in enumerate(parts):
        above = "/".join(parts[:depth])
        local = _read_ignore_file(str(repository.joinpath(*parts[:depth], ".gitignore")), above + "/" if above else "")
        if local:
            ignore_files = ignore_files + (local,)
        relative = "/".join(parts[: depth + 1])
        as_folder = "" if depth == len(parts) - 1 and is_file else "/"
        if _pruned(name, repository.joinpath(*parts[: depth + 1]), pruned_dirs) or (
            ignore_files and _is_ignored(relative + as_folder, ignore_files)
        ):
            return
    if is_file:
        yield "/".join(parts), str(path)
        return
    yield from _walk(
        str(path),
        "/".join(parts) + "/" if parts else "",
        ignore_files,
        respect_gitignore=True,
        want=None,
        symlinks_within=None,
        pruned_dirs=pruned_dirs,
        linked_files=linked_files,
    )


def _walk(
    top: str,
    top_prefix: str,
    inherited: tuple[_IgnoreFile, ...],
    *,
    respect_gitignore: bool,
    want: Callable[[str], object] | None,
    symlinks_within: str | os.PathLike[str] | None,
    pruned_dirs: Collection[str] | None,
    linked_files: bool,
) -> Iterator[tuple[str, str]]:
    """The walk of `walk_files` below `top`, whose entries are named `top_prefix` + their path below it."""
    stack: list[tuple[str, str, tuple[_IgnoreFile, ...]]] = [(top, top_prefix, inherited)]
    while stack:
        folder, prefix, ignore_files = stack.pop()
        try:
            with os.scandir(folder) as listing:
                entries = list(listing)
        except OSError:
            continue  # unreadable folder: nothing we could use in it
        if respect_gitignore and any(entry.name == ".gitignore" for entry in entries):
            local = _read_ignore_file(os.path.join(folder, ".gitignore"), prefix)
            if local:
                ignore_files = ignore_files + (local,)
        for entry in entries:
            relative = prefix + entry.name
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                continue
            if is_dir:
                if _pruned(entry.name, entry.path, pruned_dirs):
                    continue
                if ignore_files and _is_ignored(relative + "/", ignore_files):
                    continue
                stack.append((entry.path, relative + "/", ignore_files))
            elif not linked_files and entry.is_symlink():
                continue
            else:
                try:
                    is_file = entry.is_file()  # follows a link; a loop of links raises here
                except OSError:
                    is_file = False
                if is_file:
                    if want is not None and not want(relative):
                        continue
                    if ignore_files and _is_ignored(relative, ignore_files):
                        continue
                    if symlinks_within is not None and entry.is_symlink():
                        resolve_in_root(entry.path, symlinks_within)
                    yield relative, entry.path
                elif symlinks_within is not None and entry.is_symlink():
                    # A linked folder (never entered) or a link that does not resolve: checked, never yielded.
                    if _pruned(entry.name, entry.path, pruned_dirs):
                        continue
                    if ignore_files and (
                        _is_ignored(relative, ignore_files) or _is_ignored(relative + "/", ignore_files)
                    ):
                        continue
                    resolve_in_root(entry.path, symlinks_within)


def compile_patterns(patterns: Iterable[str]) -> Patterns:
    """Compile gitignore-style patterns; raise `InputError` when there is none or one is malformed."""
    patterns = [pattern for pattern in patterns if pattern and pattern.strip()]
    if not patterns:
        raise InputError("no pattern given", hint="e.g. '*/requirements/*.txt' or '**/setup.py'")
    try:
        return Patterns(patterns)
    except Exception as error:  # pathspec raises several types for a bad pattern
        raise InputError(f"invalid pattern: {error}", hint="patterns use .gitignore syntax") from None


def find_files(
    root: str | os.PathLike[str],
    patterns: Iterable[str],
    *,
    respect_gitignore: bool = True,
    ignore_root: str | os.PathLike[str] | None = None,
) -> list[Path]:
    """Absolute paths of the files under `root` matching the gitignore-style `patterns`, sorted."""
    wanted = compile_patterns(patterns)
    matches = [
        absolute
        for _relative, absolute in walk_files(
            root, respect_gitignore=respect_gitignore, ignore_root=ignore_root, want=wanted.verdict
        )
    ]
    return [Path(path) for path in sorted(matches)]


def is_package_dir(folder: str | os.PathLike[str]) -> bool:
    """A folder is a package when it has a ``setup.py``, or a ``pyproject.toml`` that declares a build.

    A ``pyproject.toml`` holding only tool settings (ruff, black...) does not make a package.
    """
    folder = Path(folder)
    if (folder / "setup.py").is_file():
        return True
    pyproject = folder / "pyproject.toml"
    if not pyproject.is_file():
        return False
    try:
        return bool(_BUILD_TABLE.search(pyproject.read_text(encoding="utf-8", errors="replace")))
    except OSError:
        return False


def find_packages(root: str | os.PathLike[str], *, respect_gitignore: bool = True) -> list[Path]:
    """Folders under `root` (root included) holding a package (see `is_package_dir`), sorted, none pruned."""
    markers = find_files(root, PACKAGE_MARKERS, respect_gitignore=respect_gitignore)
    folders = sorted({marker.parent for marker in markers})
    return [folder for folder in folders if is_package_dir(folder)]


_NAME_WORDS = re.compile(r"[^A-Za-z0-9_]+")
_BUILD_FILES = {"setup.py", "setup.cfg", "pyproject.toml"}


def default_variable_name(patterns: Iterable[str]) -> str:
    """The pipeline variable a list of matches goes into, named like the seed did.

    ``*/requirements/*.txt`` → ``requirements_files``; ``**/setup.py`` or ``**/pyproject.toml`` →
    ``setup_files``; ``dist/*.whl`` → ``dist_files``; ``*.whl`` → ``whl_files``; ``config.json`` →
    ``json_files``; anything else → ``files``.
    """
    patterns = [pattern.strip().rstrip("/") for pattern in patterns if pattern.strip()]
    if not patterns:
        return "files"
    if all(pattern.split("/")[-1] in _BUILD_FILES for pattern in patterns):
        return "setup_files"
    parts = patterns[0].lstrip("!/").split("/")
    last = parts[-1]
    if any(char in last for char in "*?[") and len(parts) > 1 and not any(c in parts[-2] for c in "*?["):
        stem = parts[-2]  # requirements/*.txt, dist/*.whl: the folder says what they are
    elif "." in last and not any(char in last.rsplit(".", 1)[1] for char in "*?["):
        stem = last.rsplit(".", 1)[1]  # *.whl → whl_files, config.json → json_files (as the seed did)
    else:
        stem = ""
    stem = _NAME_WORDS.sub("_", stem).strip("_").lower()
    return f"{stem}_files" if stem else "files"
