"""Copy every package's notebooks/ folder into DEST/<package>/, keeping sub-folders, for the artifact.

Packages are the folders under ROOT holding pyproject.toml or setup.py (same discovery and pruning as
find_files.py); <package> is the package folder's name (package1, 'gamma pkg'...). Copied from each
<package>/notebooks/**: Databricks source notebooks (.py, .sql, .scala, .r starting with the
'Databricks notebook source' header), Jupyter notebooks (.ipynb) and plain .py/.sql/.scala/.r files
(deployed as workspace files, e.g. helper modules). Other files are skipped and listed, unless --all-files.
Paths ignored by .gitignore, caches and .ipynb_checkpoints are never copied.

Each DEST/<package> folder is replaced as a whole (built in a temporary folder inside DEST first), so a
notebook deleted from the repo does not survive from an earlier run and a failure leaves DEST as it was.
Refused (exit 2): a symlink under notebooks/ that points outside its package, dangles or loops (the shared
rule of every step reading a source tree, discovery.resolve_in_root; a linked file inside the package is copied
as a plain file, linked folders are not entered), two packages with the same
folder name, two notebooks that would become the same workspace notebook (a.py and a.sql), anything that
would land outside DEST, and a DEST inside a package folder or inside a notebooks/ folder being copied (the
next run would copy the last run's copy again, nesting deeper each time) or whose DEST/<package> would
replace a package folder itself.

Example:
  python ci_cd_scripts/copy_notebooks.py "$(Build.SourcesDirectory)" "$(Build.ArtifactStagingDirectory)/notebooks"
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from cicdkit import ado, cli, discovery, workspace_sync
from cicdkit.errors import InputError

SUPPORTED = (".py", ".sql", ".scala", ".r", ".ipynb")


@dataclass(frozen=True)
class NotebookCopy:
    """One file to copy: from where, to which path below DEST, and what the workspace will make of it."""

    source: Path
    relative_target: str  # "<package>/<path below notebooks/>", '/'-separated
    kind: str  # "notebook" or "file"
    language: str  # PYTHON, SQL, SCALA, R (for .ipynb: the kernel language) or "" for other files


def jupyter_language(path: Path) -> str:
    """The language a Jupyter notebook declares (language_info, then kernelspec); PYTHON if it says nothing."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        metadata = document.get("metadata") or {}
        name = (metadata.get("language_info") or {}).get("name") or (metadata.get("kernelspec") or {}).get("language")
    except (OSError, ValueError, AttributeError):
        raise InputError(f"{path} is not a readable Jupyter notebook (invalid JSON)") from None
    return str(name or "python").upper()


def describe(path: Path) -> tuple[str, str]:
    """("notebook" | "file", language) for a file below notebooks/, by extension and header."""
    extension = path.suffix.lower()
    if extension == ".ipynb":
        return "notebook", jupyter_language(path)
    with open(path, "rb") as handle:
        first_line = handle.readline(200).decode("utf-8", errors="replace")
    _name, object_type, _format, language = workspace_sync.classify(path.name, first_line)
    if object_type == workspace_sync.NOTEBOOK:
        return "notebook", language or ""
    source_language = workspace_sync.NOTEBOOK_SOURCES.get(extension, ("", ""))[0]
    return "file", source_language


def plan_copies(
    root: Path, all_files: bool, dest: Path | None = None
) -> tuple[list[NotebookCopy], list[Path], list[Path]]:
    """What to copy, which files are skipped, and which packages have no notebooks/ folder (DEST checked if given)."""
    packages = discovery.find_packages(root)
    if dest is not None:
        check_destination(root, dest, packages)
    names = Counter(folder.name for folder in packages)
    clashing = sorted(name for name, count in names.items() if count > 1)
    if clashing:
        raise InputError(
            f"several packages are named {', '.join(clashing)}: their notebooks would land in the same DEST folder",
            hint="give package folders unique names",
        )
    copies: list[NotebookCopy] = []
    skipped: list[Path] = []
    without: list[Path] = []
    for package in packages:
        notebooks = package / "notebooks"
        if notebooks.is_symlink():
            discovery.resolve_in_root(notebooks, package)  # a linked notebooks/ folder is checked, not entered
        if not notebooks.is_dir() or notebooks.is_symlink():
            without.append(package)
            continue
        for relative, absolute in sorted(discovery.walk_files(notebooks, ignore_root=root, symlinks_within=package)):
            source = Path(absolute)
            if not all_files and source.suffix.lower() not in SUPPORTED:
                skipped.append(source)
                continue
            kind, language = describe(source) if source.suffix.lower() in SUPPORTED else ("file", "")
            copies.append(NotebookCopy(source, f"{package.name}/{relative}", kind, language))
    _check_workspace_names(copies)
    return copies, skipped, without


def check_destination(root: Path, dest: Path, packages: list[Path]) -> None:
    """DEST must not be inside what is copied: inside a package (other than ROOT itself when ROOT is the
    package) or any notebooks/ folder, and DEST/<package> must not be a package folder or hold one."""
    root_real, dest_real = root.resolve(), dest.resolve()
    for package in packages:
        package_real = package.resolve()
        if _inside(dest_real, package_real / "notebooks") or (
            package_real != root_real and _inside(dest_real, package_real)
        ):
            raise InputError(
                f"DEST {dest} is inside package folder {package}: each run would copy the previous copy again",
                hint="write the notebooks outside the packages, e.g. to a staging or build folder",
            )
        if _inside(package_real, dest_real / package.name):
            raise InputError(
                f"DEST {dest} would replace package folder {package} with its notebooks",
                hint="write the notebooks to a separate folder, e.g. a staging or build folder",
            )


def _check_workspace_names(copies: list[NotebookCopy]) -> None:
    """Notebooks lose their extension in the workspace: a.py and a.sql notebooks would collide."""
    seen: dict[str, Path] = {}
    for copy in copies:
        name = copy.relative_target.rsplit(".", 1)[0] if copy.kind == "notebook" else copy.relative_target
        if name in seen:
            raise InputError(
                f"{seen[name]} and {copy.source} would both become the workspace notebook {name}", hint="rename one"
            )
        seen[name] = copy.source


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def copy_all(copies: list[NotebookCopy], dest: Path) -> list[str]:
    """Copy into a temporary folder inside DEST, then swap each DEST/<package> in; return the packages written."""
    dest.mkdir(parents=True, exist_ok=True)
    dest_real = dest.resolve()
    packages = sorted({copy.relative_target.split("/", 1)[0] for copy in copies})
    with tempfile.TemporaryDirectory(prefix=".notebooks-", dir=dest_real) as staging:
        staging = Path(staging)
        for copy in copies:
            target = staging / copy.relative_target
            if not _inside(target.resolve(), staging.resolve()) or ".." in Path(copy.relative_target).parts:
                raise InputError(f"{copy.source} would be written outside {dest}")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(copy.source, target)
        for package in packages:
            final = dest_real / package
            if not _inside(final, dest_real) or final == dest_real:
                raise InputError(f"package {package!r} would be written outside {dest}")
            if final.is_symlink() or final.is_file():
                final.unlink()
            elif final.is_dir():
                shutil.rmtree(final)
            os.replace(staging / package, final)
    return packages


@cli.entry
def main(argv: list[str] | None = None) -> int:
    parser = cli.parser("copy_notebooks.py", __doc__)
    parser.add_argument("root", metavar="ROOT", help="repository folder holding the packages")
    parser.add_argument("dest", metavar="DEST", help="folder receiving <package>/<notebook paths>")
    parser.add_argument(
        "--all-files", action="store_true", help="copy every file under notebooks/, not only notebook types"
    )
    args = parser.parse_args(argv)
    root, dest = Path(args.root), Path(args.dest)
    if not root.is_dir():
        raise InputError(f"ROOT {args.root!r} is not a folder")
    if dest.exists() and not dest.is_dir():
        raise InputError(f"DEST {args.dest!r} exists and is not a folder")

    copies, skipped, without = plan_copies(root, args.all_files, dest)
    packages = copy_all(copies, dest) if copies else []
    for copy in copies:
        ado.relay(f"{copy.kind:8} {copy.language or '-':7} {copy.relative_target}")
    for path in skipped:
        ado.relay(f"skipped  {path} (not a notebook type; --all-files copies it)")
    notebooks = sum(copy.kind == "notebook" for copy in copies)
    ado.relay(
        f"copied {notebooks} notebook(s) and {len(copies) - notebooks} file(s) of {len(packages)} package(s) into {dest}"
        f"; {len(skipped)} skipped; packages without notebooks/: {', '.join(p.name for p in without) or 'none'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
