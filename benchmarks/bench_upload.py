"""Benchmark: peak memory of upload_files.py sending a 512 MB file, against databricks-sdk, to three stores.

    python benchmarks/bench_upload.py [--size-mb 512] [--repeat 1]

For each destination (/Volumes, /Workspace, dbfs:/), a fresh local workspace in its own process
(`python ci_cd_scripts/local_workspace.py`, so its memory is not counted) receives the file from:

  (a) databricks-sdk: `w.files.upload(path, handle, overwrite=True)` (Files API) for /Volumes and /Workspace,
      `w.dbfs.upload(path, handle, overwrite=True)` for dbfs:/ (the SDK's documented upload calls);
  (b) `upload_files.py DEST_DIR FILE` (defaults).

Peak RSS is measured from outside by `/usr/bin/time -v` ("Maximum resident set size"), once with the large file
and once with a 1-byte file: the growth is the difference, so the interpreter and its imports do not count.
Prints the growth and wall time of each (median of --repeat). Target: growth independent of the file size
(upload_files.py streams; README "Performance").
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "ci_cd_scripts"
TOKEN = "dapi-bench-token"
DESTINATIONS = {
    "/Volumes": "/Volumes/main/default/bench",
    "/Workspace": "/Workspace/Shared/bench",
    "dbfs:/": "dbfs:/bench",
}

SDK_UPLOAD = r"""
import sys
from databricks.sdk import WorkspaceClient

host, token, folder, source = sys.argv[1:5]
w = WorkspaceClient(host=host, token=token, auth_type="pat")
name = source.rsplit("/", 1)[-1]
with open(source, "rb") as handle:
    if folder.startswith("dbfs:"):
        w.dbfs.upload(f"{folder}/{name}", handle, overwrite=True)
    else:
        w.files.upload(f"{folder}/{name}", handle, overwrite=True)
"""


class Workspace:
    """A local workspace in its own process; its URL is the first line it prints."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(SCRIPTS / "local_workspace.py"), "--token", TOKEN],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()
        if not self.url.startswith("http"):
            self.stop()
            sys.exit(f"local_workspace.py did not start (printed {self.url!r})")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def measure(command: list[str], env: dict[str, str]) -> tuple[float, int]:
    """(wall seconds, peak RSS in KiB) of a command, from /usr/bin/time -v."""
    started = time.perf_counter()
    result = subprocess.run(["/usr/bin/time", "-v", *command], env=env, capture_output=True, text=True, timeout=1800)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"upload failed ({' '.join(command[1:3])}):\n{result.stdout}\n{result.stderr[-3000:]}")
    found = re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr)
    if not found:
        sys.exit("/usr/bin/time -v did not report the maximum resident set size")
    return wall, int(found.group(1))


def run(kind: str, folder: str, source: Path) -> tuple[float, int]:
    workspace = Workspace()
    try:
        env = {**os.environ, "DATABRICKS_HOST": workspace.url, "DATABRICKS_TOKEN": TOKEN}
        env.pop("TF_BUILD", None)
        if kind == "sdk":
            command = [sys.executable, "-c", SDK_UPLOAD, workspace.url, TOKEN, folder, str(source)]
        else:
            command = [sys.executable, str(SCRIPTS / "upload_files.py"), folder, str(source)]
        return measure(command, env)
    finally:
        workspace.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    if not Path("/usr/bin/time").exists():
        sys.exit("this benchmark needs /usr/bin/time (GNU time) to measure peak memory from outside")

    work = Path(tempfile.mkdtemp(prefix="bench-upload-"))
    try:
        large, tiny = work / "large.bin", work / "tiny" / "large.bin"
        tiny.parent.mkdir()
        with open(large, "wb") as handle:  # real bytes (not a sparse file), 1 MiB at a time
            block = os.urandom(1024 * 1024)
            for _ in range(args.size_mb):
                handle.write(block)
        tiny.write_bytes(b"x")
        load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
        print(
            f"{args.size_mb} MB file, peak RSS growth over a 1-byte upload, {os.cpu_count()} CPUs, load average "
            f"{load}, median of {args.repeat}",
            flush=True,
        )
        for label, folder in DESTINATIONS.items():
            for kind, name in (("sdk", "databricks-sdk"), ("ours", "upload_files.py")):
                walls, growths = [], []
                for _ in range(args.repeat):
                    wall, peak = run(kind, folder, large)
                    _, base = run(kind, folder, tiny)
                    walls.append(wall)
                    growths.append(peak - base)
                growth = statistics.median(growths) / 1024
                print(
                    f"  {label:<11} {name:<15} peak RSS growth {growth:8.1f} MB  "
                    f"({growth / args.size_mb * 100:5.1f}% of the file)  {statistics.median(walls):7.2f} s",
                    flush=True,
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
