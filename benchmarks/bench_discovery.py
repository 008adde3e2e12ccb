"""Benchmark: find requirement files in a big monorepo checkout, find_files vs Python's recursive glob.

Generates a tree of about 200,000 files: 20 packages (code, requirements/, notebooks/, tests/) next to a
.venv and a node_modules that hold most of the files (and decoy requirements/ folders, as real
site-packages and npm packages do). Then times, in the same run:

  discovery.find_files(root, ['**/requirements/*.txt'])   in-process (what the CI steps call)
  python ci_cd_scripts/find_files.py ROOT '**/requirements/*.txt'   the CLI (interpreter start included)
  glob.glob('**/requirements/*.txt', recursive=True)   what the original scripts did
  os.walk pruning the same folder names as find_files   the fair baseline: what a careful hand-written walk does

The headline is the CLI figure against the fair baseline: pipelines call the CLI (find_files.py).

plus, to explain the CLI figure, the start-up alone: a bare interpreter (`python -c pass`) and the CLI's imports
without a walk (find_files.py's imports and pathspec), and prints the median times, the ratios and how many files each found (glob also reports the decoys).

  python benchmarks/bench_discovery.py [--files 200000] [--packages 20] [--repeat 5] [--tree DIR]

--tree DIR keeps the generated tree in DIR (reused when it already holds one of the same size).
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "ci_cd_scripts"))

from cicdkit import discovery  # noqa: E402

PATTERN = "**/requirements/*.txt"
# Real trees hold about 5 files per folder (measured here: site-packages 5.3, /usr/lib/node_modules 4.3);
# the number of folders is what a recursive walk pays for.
FILES_PER_DIR = 5


def touch(path: Path, text: str = "") -> None:
    with open(path, "w") as handle:
        handle.write(text)


def fill(base: Path, count: int, prefix: str, extension: str, decoy_every: int) -> int:
    """`count` files under base in folders of FILES_PER_DIR, with a decoy requirements/ every `decoy_every` folders (0: none)."""
    written = 0
    folder_index = 0
    while written < count:
        folder = base / f"{prefix}{folder_index // 40:03d}" / "lib" / f"m{folder_index % 40:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(min(FILES_PER_DIR, count - written)):
            touch(folder / f"f{index:02d}.{extension}")
        written += min(FILES_PER_DIR, count - written)
        if decoy_every and folder_index % decoy_every == 0:
            (folder / "requirements").mkdir(exist_ok=True)
            touch(folder / "requirements" / "dev.txt", "decoy==1\n")
            written += 1
        folder_index += 1
    return written


def generate(root: Path, total: int, packages: int) -> int:
    written = 0
    touch(root / ".gitignore", "*.log\n/out/\n")
    for number in range(packages):
        package = root / "libs" / f"package{number:02d}"
        for sub in ("requirements", f"package{number:02d}", "tests", "notebooks/reports"):
            (package / sub).mkdir(parents=True, exist_ok=True)
        touch(package / "pyproject.toml", f'[project]\nname = "package{number:02d}"\nversion = "1.0"\n')
        touch(package / "requirements" / "common.txt", "requests>=2.31\n")
        touch(package / "requirements" / "dev.txt", "-r common.txt\npytest\n")
        for index in range(40):
            touch(package / f"package{number:02d}" / f"module{index:02d}.py")
        for index in range(5):
            touch(package / "tests" / f"test_{index}.py")
            touch(package / "notebooks" / "reports" / f"report{index}.py", "# Databricks notebook source\n")
        written += 3 + 40 + 10
    remaining = total - written
    venv = root / ".venv"
    (venv / "lib" / "python3.11" / "site-packages").mkdir(parents=True)
    touch(venv / "pyvenv.cfg", "home = /usr/bin\n")
    written += 1
    written += fill(venv / "lib" / "python3.11" / "site-packages", remaining * 45 // 100, "dist", "py", decoy_every=50)
    written += fill(root / "node_modules", remaining * 50 // 100, "npm", "js", decoy_every=80)
    written += fill(root / "docs", total - written, "section", "md", decoy_every=0)
    return written


def pruned_walk(root: Path) -> list[str]:
    """The fair baseline: os.walk that prunes the folder names find_files prunes (and virtualenvs, by their
    pyvenv.cfg), matching requirements/*.txt by hand."""
    found = []
    for folder, dirs, files in os.walk(root):
        if discovery.VENV_MARKER in files and folder != str(root):
            dirs[:] = []
            continue
        dirs[:] = [
            d for d in dirs if d not in discovery.PRUNED_DIR_NAMES and not d.endswith(discovery.PRUNED_DIR_SUFFIXES)
        ]
        if os.path.basename(folder) == "requirements":
            found += [os.path.join(folder, f) for f in files if f.endswith(".txt")]
    return found


def median_time(function, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200_000)
    parser.add_argument("--packages", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--tree", help="folder to generate the tree in (kept); default: a temporary folder")
    args = parser.parse_args()

    temporary = None if args.tree else tempfile.mkdtemp(prefix="bench-discovery-")
    root = Path(args.tree or temporary) / "repo"
    marker = root.parent / f".generated-{args.files}-{args.packages}"
    try:
        if not marker.exists():
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir(parents=True)
            started = time.perf_counter()
            count = generate(root, args.files, args.packages)
            touch(marker, str(count))
            print(f"generated {count} files in {time.perf_counter() - started:.1f}s under {root}")
        else:
            print(f"reusing the tree under {root} ({marker.read_text()} files)")

        # Warm the OS cache for everyone alike: one unpruned walk first.
        sum(len(files) for _, _, files in os.walk(root))

        ours_time, ours = median_time(lambda: discovery.find_files(root, [PATTERN]), args.repeat)
        command = [sys.executable, str(ROOT / "ci_cd_scripts" / "find_files.py"), str(root), PATTERN]
        cli_time, cli_out = median_time(
            lambda: subprocess.run(command, capture_output=True, text=True, check=True).stdout, args.repeat
        )
        bare_time, _ = median_time(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True), args.repeat)
        imports = f"import sys; sys.path.insert(0, {str(ROOT / 'ci_cd_scripts')!r}); import find_files, pathspec"
        imports_time, _ = median_time(lambda: subprocess.run([sys.executable, "-c", imports], check=True), args.repeat)
        walk_time, walked = median_time(lambda: pruned_walk(root), args.repeat)
        glob_time, globbed = median_time(
            lambda: glob.glob(PATTERN, root_dir=root, recursive=True), max(1, args.repeat // 2)
        )
        hidden_time, hidden = median_time(
            lambda: glob.glob(PATTERN, root_dir=root, recursive=True, include_hidden=True), max(1, args.repeat // 2)
        )
    finally:
        if temporary:
            shutil.rmtree(temporary, ignore_errors=True)

    assert len(cli_out.splitlines()) == len(ours) == 2 * args.packages, (len(ours), len(cli_out.splitlines()))
    rows = [
        ("find_files (in-process)", ours_time, len(ours), 1.0),
        ("find_files.py (CLI)", cli_time, len(cli_out.splitlines()), cli_time / ours_time),
        ("  of which: python -c pass", bare_time, 0, bare_time / ours_time),
        ("  of which: interpreter + imports", imports_time, 0, imports_time / ours_time),
        ("os.walk pruning the same names", walk_time, len(walked), walk_time / ours_time),
        ("glob('**/requirements/*.txt')", glob_time, len(globbed), glob_time / ours_time),
        ("glob(..., include_hidden=True)", hidden_time, len(hidden), hidden_time / ours_time),
    ]
    print(
        f"\n{args.files} files, {args.packages} packages, median of {args.repeat} runs (glob: {max(1, args.repeat // 2)})"
    )
    print(f"{'method':34} {'seconds':>8} {'found':>6} {'x in-process':>12}")
    for name, seconds, found, ratio in rows:
        print(f"{name:34} {seconds:8.3f} {found:6d} {ratio:12.1f}")
    print(
        f"\nheadline: find_files.py (CLI, what pipelines call) {cli_time:.3f} s, "
        f"{walk_time / cli_time:.2f}x as fast as the fair baseline (os.walk pruning the same names, in-process, no interpreter start), "
        f"{glob_time / cli_time:.1f}x as fast as recursive glob"
    )
    print(
        f"in-process: find_files is {walk_time / ours_time:.2f}x as fast as the pruned os.walk, "
        f"{glob_time / ours_time:.1f}x as fast as glob"
    )
    print("glob also returns the decoy requirements/ folders inside node_modules (and .venv with include_hidden).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
