"""Benchmark: keep-alive request latency of the local workspace with TCP_NODELAY against Python's http.server default.

    python benchmarks/bench_local_workspace.py [--requests 300]

Both variants are the same emulator in the same run; the alternative is what a plain `http.server` does
(Nagle's algorithm left on), where headers and body leave in separate segments and the client's delayed ACK
stalls every keep-alive request by tens of milliseconds. A benchmark that measures deploy steps against the
emulator must measure the steps, not this stall. Prints median/p95 per request for GET and POST and the ratios.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import requests

sys.path.append(str(Path(__file__).resolve().parents[1] / "ci_cd_scripts"))

from local_cloud.workspace.server import LocalWorkspace

TOKEN = "dapi-bench-token"


def measure(nodelay: bool, count: int) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {"GET clusters/get": [], "POST workspace/mkdirs": []}
    with LocalWorkspace(token=TOKEN, tcp_nodelay=nodelay) as ws, requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {TOKEN}"
        get_url = f"{ws.url}/api/2.0/clusters/get?cluster_id=0101-000000-local001"
        post_url = f"{ws.url}/api/2.0/workspace/mkdirs"
        session.get(get_url, timeout=10).raise_for_status()  # open the keep-alive connection
        for index in range(count):
            started = time.perf_counter()
            session.get(get_url, timeout=10).raise_for_status()
            timings["GET clusters/get"].append(time.perf_counter() - started)
            started = time.perf_counter()
            session.post(post_url, json={"path": f"/Shared/bench/{index}"}, timeout=10).raise_for_status()
            timings["POST workspace/mkdirs"].append(time.perf_counter() - started)
    return timings


def p95(values: list[float]) -> float:
    return sorted(values)[int(len(values) * 0.95) - 1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="requests per method and variant (default 300)")
    args = parser.parse_args()
    fast = measure(True, args.requests)
    slow = measure(False, args.requests)
    print(
        f"{'request':24} {'TCP_NODELAY median':>19} {'p95':>8} {'http.server default median':>27} {'p95':>8} {'ratio':>7}"
    )
    for name in fast:
        ours, theirs = statistics.median(fast[name]), statistics.median(slow[name])
        print(
            f"{name:24} {ours * 1000:17.2f}ms {p95(fast[name]) * 1000:6.2f}ms {theirs * 1000:25.2f}ms "
            f"{p95(slow[name]) * 1000:6.2f}ms {theirs / ours:6.1f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
