"""Benchmark: build_packages.py on package1 + package2 with and without PyPA build's isolated environments.

  python benchmarks/bench_build.py [--repeat 3]

Isolated builds create a fresh virtualenv per package and pip-install its [build-system] requires from the
package index every time (network, or the agent's mirror); --isolation never reuses the agent's installed
setuptools. build_packages.py picks the fast path by itself (--isolation auto) when the build requirements
are installed. Prints the median wall time of each mode and the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "ci_cd_scripts" / "build_packages.py"


def build_time(isolation: str, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as out:
            started = time.perf_counter()
            subprocess.run(
                [
                    sys.executable,
                    str(SCRIPT),
                    "--out-dir",
                    out,
                    "--isolation",
                    isolation,
                    str(ROOT / "package1"),
                    str(ROOT / "package2"),
                ],
                check=True,
                capture_output=True,
                text=True,
            )
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    fast = build_time("never", args.repeat)
    isolated = build_time("always", args.repeat)
    print(f"package1 + package2, median of {args.repeat} runs")
    print(f"{'--isolation never (auto here)':32} {fast:6.2f} s")
    print(f"{'--isolation always':32} {isolated:6.2f} s")
    print(f"no isolation is {isolated / fast:.1f}x faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
