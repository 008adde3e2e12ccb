"""Benchmark: install_libraries.py replacing 6 wheels on 2 clusters, against two databricks-sdk loops.

    python benchmarks/bench_libraries.py [--wheels 6] [--latency-ms 100] [--time-scale 0.1] [--repeat 1]

On the local workspace (`--latency-ms` per request; cluster restarts and library installs take the emulator's
durations times `--time-scale`: restart 6 s and install 3 s at 1.0), 2 RUNNING clusters hold version 0.1.0 of
`--wheels` packages; each variant replaces them with 0.2.0 (the clusters are reset to 0.1.0 in between) and ends
when both clusters are RUNNING with every new wheel INSTALLED:

  (a) databricks-sdk, per wheel: `libraries.uninstall` the old one, `libraries.install` the new one,
      `clusters.restart_and_wait`, then poll `libraries.cluster_status` every second until it is INSTALLED;
      cluster after cluster (the loop a user writes from the API reference);
  (b) databricks-sdk batched: per cluster one uninstall of every old wheel, one install of every new one, one
      restart_and_wait, then the same status poll;
  (c) `install_libraries.py --cluster-id C1 --cluster-id C2 --wheel ...` (defaults).

Prints restarts (POST clusters/restart in the request log, per cluster), calls and wall time (median of --repeat).
Floor of (c): one restart + one install per cluster, the clusters concurrently. Target: one restart per cluster.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "ci_cd_scripts"
sys.path.append(str(SCRIPTS))  # appended: `databricks` must stay databricks-sdk in this process

from cicdkit import dbclient  # noqa: E402
from local_cloud.workspace.server import LocalWorkspace  # noqa: E402
from local_cloud.workspace.state import DURATIONS  # noqa: E402

TOKEN = "dapi-bench-token"
LIBS = "/Volumes/main/default/libs"
CLUSTERS = ["0101-000000-bench0001", "0101-000000-bench0002"]

SDK_COMMON = r"""
import sys, time
from databricks.sdk import WorkspaceClient
from databricks.sdk.service.compute import Library

host, token, mode, clusters, old, new = sys.argv[1], sys.argv[2], sys.argv[3], *(a.split(",") for a in sys.argv[4:7])
w = WorkspaceClient(host=host, token=token, auth_type="pat")

def wait_installed(cluster, paths):
    while True:
        states = {s.library.whl: s.status.value for s in w.libraries.cluster_status(cluster)}
        if all(states.get(p) == "INSTALLED" for p in paths):
            return
        time.sleep(1)

for cluster in clusters:
    if mode == "per-wheel":
        for before, after in zip(old, new):
            w.libraries.uninstall(cluster, [Library(whl=before)])
            w.libraries.install(cluster, [Library(whl=after)])
            w.clusters.restart_and_wait(cluster)
            wait_installed(cluster, [after])
    else:
        w.libraries.uninstall(cluster, [Library(whl=p) for p in old])
        w.libraries.install(cluster, [Library(whl=p) for p in new])
        w.clusters.restart_and_wait(cluster)
        wait_installed(cluster, new)
"""


def wheel(index: int, version: str) -> str:
    return f"{LIBS}/package{index}-{version}-py3-none-any.whl"


def cluster(cluster_id: str) -> dict:
    return {
        "cluster_id": cluster_id,
        "cluster_name": cluster_id[-4:],
        "spark_version": "15.4.x-scala2.12",
        "state": "RUNNING",
    }


def fresh_workspace(args: argparse.Namespace, old: list[str], new: list[str]) -> LocalWorkspace:
    """A started local workspace: both clusters RUNNING with the old wheels INSTALLED, the request log empty."""
    workspace = LocalWorkspace(
        token=TOKEN, latency_ms=0, time_scale=args.time_scale, clusters=[cluster(c) for c in CLUSTERS]
    ).start()
    for path in old + new:
        workspace.put_file(path, b"PK\x03\x04 wheel " + path.encode())
    with dbclient.connect(host=workspace.url, environ={"DATABRICKS_TOKEN": TOKEN}) as client:
        for cluster_id in CLUSTERS:
            client.libraries.install(cluster_id, [{"whl": path} for path in old])
        deadline = time.monotonic() + 120
        while (
            any(s["status"] != "INSTALLED" for c in CLUSTERS for s in workspace.library_statuses(c))
            and time.monotonic() < deadline
        ):
            time.sleep(0.05)
    workspace.impairments.set_latency(args.latency_ms)
    workspace.clear_log()
    return workspace


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheels", type=int, default=6)
    parser.add_argument("--latency-ms", type=float, default=100)
    parser.add_argument("--time-scale", type=float, default=0.1)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()

    old = [wheel(i, "0.1.0") for i in range(1, args.wheels + 1)]
    new = [wheel(i, "0.2.0") for i in range(1, args.wheels + 1)]
    restart = DURATIONS["cluster_restart"] * args.time_scale
    install = DURATIONS["library_install"] * args.time_scale
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(
        f"{args.wheels} wheels replaced on {len(CLUSTERS)} clusters, {args.latency_ms:g} ms latency, restart "
        f"{restart:g} s, install {install:g} s (emulated x {args.time_scale:g}), {os.cpu_count()} CPUs, "
        f"load average {load}, median of {args.repeat}",
        flush=True,
    )
    lists = [",".join(CLUSTERS), ",".join(old), ",".join(new)]
    ours = [sys.executable, str(SCRIPTS / "install_libraries.py")]
    for c in CLUSTERS:
        ours += ["--cluster-id", c]
    for path in new:
        ours += ["--wheel", path]
    variants = [
        ("(a) databricks-sdk loop, per wheel", ["-c", SDK_COMMON, "per-wheel", *lists]),
        ("(b) databricks-sdk loop, batched per cluster", ["-c", SDK_COMMON, "batched", *lists]),
        ("(c) install_libraries.py (defaults)", ours[1:]),
    ]
    floor = restart + install + 4 * args.latency_ms / 1000  # list, uninstall, install, restart: then the waits
    walls: dict[str, float] = {}
    for label, command in variants:
        runs = []
        for _ in range(args.repeat):
            workspace = fresh_workspace(args, old, new)
            try:
                env = {**os.environ, "DATABRICKS_HOST": workspace.url, "DATABRICKS_TOKEN": TOKEN}
                env.pop("TF_BUILD", None)
                argv = [sys.executable, *command]
                if command[0] == "-c":
                    argv = [sys.executable, "-c", SDK_COMMON, workspace.url, TOKEN, *command[2:]]
                started = time.perf_counter()
                result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=1800)
                wall = time.perf_counter() - started
                if result.returncode != 0:
                    sys.exit(f"{label} failed:\n{result.stdout}\n{result.stderr}")
                for c in CLUSTERS:
                    states = {s["library"].get("whl"): s["status"] for s in workspace.library_statuses(c)}
                    if any(states.get(p) != "INSTALLED" for p in new):
                        sys.exit(f"{label} ended without every new wheel INSTALLED on {c}: {states}")
                api = [r for r in workspace.requests if r.path.startswith("/api/")]
                restarts = sum(1 for r in api if r.method == "POST" and r.path.endswith("clusters/restart"))
                runs.append((wall, restarts, len(api)))
            finally:
                workspace.stop()
        wall = statistics.median(r[0] for r in runs)
        restarts, calls = max(r[1] for r in runs), max(r[2] for r in runs)
        walls[label] = wall
        print(
            f"  {label:<46} {wall:7.2f} s  {restarts / len(CLUSTERS):4.1f} restarts per cluster  "
            f"{calls:4d} calls  {wall / floor:5.2f}x floor",
            flush=True,
        )
    ours_wall = walls[variants[2][0]]
    print(f"\nfloor of (c): restart + install + 4 calls = {floor:.2f} s (the clusters concurrently)")
    print(f"(a)/(c) {walls[variants[0][0]] / ours_wall:5.1f}x   (b)/(c) {walls[variants[1][0]] / ours_wall:5.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
