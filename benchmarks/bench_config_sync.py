"""Benchmark: sync file selection (config_sync.select_files, pathspec) against `git ls-files` on the same tree.

    python benchmarks/bench_config_sync.py [--files 20000] [--repeat 3]

Builds an untracked git repository with --files files in nested folders, a root .gitignore, per-folder
.gitignore files (with negations) and ignored bulk folders (build/, node_modules/, .venv/), then times, in the
same run, (a) `git ls-files --others --exclude-standard` (git's own C implementation, the reference for which
files .gitignore keeps) and (b) `config_sync.select_files(root, ["."], [], [])`. Prints the best time of
--repeat runs for each, the ratio b/a and whether both select exactly the same files.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(ROOT / "ci_cd_scripts"))

from cicdkit import config_sync  # noqa: E402


def build_tree(root: Path, files: int) -> None:
    (root / ".gitignore").write_text("build/\n*.pyc\n__pycache__/\nnode_modules/\n.venv/\n*.log\n/dist/\n")
    per_folder = 25
    for index in range(files):
        package = root / f"pkg{index % 40}" / f"mod{(index // 40) % 20}"
        if index % 400 == 0:
            package.mkdir(parents=True, exist_ok=True)
            (package / ".gitignore").write_text("*.tmp\n!keep.tmp\n")
        kind = index % per_folder
        name = {0: "keep.tmp", 1: "x.tmp", 2: "a.pyc", 3: "run.log"}.get(kind, f"f{index}.py")
        if kind == 4:
            package = package / "__pycache__"
        elif kind == 5:
            package = root / "node_modules" / f"dep{index % 50}"
        elif kind == 6:
            package = root / "build" / f"out{index % 30}"
        package.mkdir(parents=True, exist_ok=True)
        (package / name).write_text("x\n")


def best_of(repeat: int, action) -> tuple[float, list[str]]:
    best, result = float("inf"), []
    for _ in range(repeat):
        start = time.perf_counter()
        result = action()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("git") is None:
        print("git is not installed; nothing to compare with", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-sync-") as folder:
        root = Path(folder)
        build_tree(root, args.files)
        subprocess.run(["git", "init", "-q", str(root)], check=True)

        def with_git() -> list[str]:
            out = subprocess.run(
                ["git", "ls-files", "--others", "--exclude-standard", "-z"],
                cwd=root,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            return sorted(name for name in out.split("\0") if name)

        git_time, git_files = best_of(args.repeat, with_git)
        ours_time, our_files = best_of(args.repeat, lambda: config_sync.select_files(root, ["."], [], []))
    print(f"tree: {args.files} files written, {len(git_files)} selected by git")
    print(f"(a) git ls-files --others --exclude-standard : {git_time * 1000:8.1f} ms")
    print(f"(b) config_sync.select_files                : {ours_time * 1000:8.1f} ms")
    print(f"ratio b/a: {ours_time / git_time:.2f}x   same selection: {git_files == our_files}")
    return 0 if git_files == our_files else 1


if __name__ == "__main__":
    sys.exit(main())
