"""Benchmark: deploy_notebooks.py with its defaults, each figure against its floor and a databricks-sdk loop.

    python benchmarks/bench_deploy.py [--notebooks 400] [--folders 40] [--latency-ms 100] [--concurrency 8]
                                      [--throttle 30] [--repeat 1]

On the local workspace with `--latency-ms` per request, in one invocation, every run a subprocess started from
scratch (a fresh CI runner: no local state), each row the median of `--repeat` runs (the alternative's too):

  (1) workspace not throttling: `deploy_notebooks.py --full` into an empty folder with its defaults, and the loop a
      user would write with databricks-sdk (`w.workspace.mkdirs` per folder, `w.workspace.upload` per notebook,
      sequential: the SDK is single-threaded). Floors: issue 14's, notebooks x latency / concurrency (every
      import sent, `--concurrency` at a time); and the calls floor, which adds the calls the API requires of any
      client — one `mkdirs` per folder (import does not create parents), the manifest read, write and the target
      listing: required calls / concurrency x latency.
  (2) workspace throttling imports at `--throttle`/s (a token bucket answering 429 with Retry-After, as
      `local_workspace.py --rate-limit '*/workspace/import=30/s'` does), the same two. Floor: notebooks / rate.
  (3) `deploy_notebooks.py` again with nothing changed, from a fresh runner, against the full deploy of the same
      run (1) and against its own floor: its calls / concurrency x latency. Its writes must be 0.

Every row also shows the bound a fresh process cannot beat: the start-up of an interpreter importing the step's
modules (measured in the same run) plus the dependent rounds of calls (reads, then writes, then the manifest), each
ceil(calls / concurrency) x latency.

Prints calls, writes, 429s, the most attempts one call took, wall time, ratios to the floors and to the
alternative, then whether issue 14's targets hold (full deploys <= 1.15x their floor, redeploy <= 1.3x with 0
writes, no call retried more than twice). The temporary folder is removed at the end.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "ci_cd_scripts"
sys.path.append(str(SCRIPTS))  # appended: `databricks` must stay databricks-sdk in this process

from local_cloud.workspace.server import LocalWorkspace  # noqa: E402

TOKEN = "dapi-bench-token"
HEADER = "# Databricks notebook source\n"
TARGETS = {"full": 1.15, "throttled": 1.15, "redeploy": 1.3}

SDK_LOOP = r"""
import sys
from pathlib import Path
from databricks.sdk import WorkspaceClient
from databricks.sdk.service.workspace import ImportFormat, Language

host, token, source, target = sys.argv[1:5]
w = WorkspaceClient(host=host, token=token, auth_type="pat")
source = Path(source)
for folder in sorted(p for p in source.iterdir() if p.is_dir()):
    w.workspace.mkdirs(f"{target}/{folder.name}")
    for notebook in sorted(folder.glob("*.py")):
        with open(notebook, "rb") as handle:
            w.workspace.upload(f"{target}/{folder.name}/{notebook.stem}", handle, format=ImportFormat.SOURCE,
                               language=Language.PYTHON, overwrite=True)
"""


@dataclass
class Run:
    wall: float
    calls: int
    writes: int
    throttled: int
    most_attempts: int | None  # from the step's summary; None for the sdk loop (it does not say)


def make_source(root: Path, notebooks: int, folders: int) -> Path:
    for index in range(notebooks):
        path = root / f"folder_{index % folders:03d}" / f"notebook_{index:05d}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{HEADER}# cell {index}\nvalue = {index}\nprint(value)\n", encoding="utf-8")
    return root


def run(workspace: LocalWorkspace, command: list[str], env: dict[str, str], cwd: Path) -> Run:
    since = time.time()
    started = time.perf_counter()
    result = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=1800)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"benchmark step failed ({' '.join(command[1:3])}):\n{result.stdout}\n{result.stderr}")
    api = [r for r in workspace.requests if r.path.startswith("/api/") and r.started >= since]
    most = re.search(r"at most (\d+) attempts for one call", result.stdout)
    return Run(
        wall,
        calls=len(api),
        writes=sum(1 for r in api if r.method not in ("GET", "HEAD") and r.status < 300),
        throttled=sum(1 for r in api if r.status == 429),
        most_attempts=int(most.group(1)) if most else (1 if "(0 retries)" in result.stdout else None),
    )


def median(runs: list[Run]) -> Run:
    """The run of median wall time (its counts with it), the most attempts over all runs."""
    ordered = sorted(runs, key=lambda r: r.wall)
    middle = ordered[len(ordered) // 2]
    attempts = [r.most_attempts for r in runs if r.most_attempts is not None]
    middle.wall = statistics.median(r.wall for r in runs)
    middle.most_attempts = max(attempts) if attempts else None
    return middle


def row(label: str, measured: Run, floor: float, alternative: Run | None = None, alt_name: str = "") -> None:
    attempts = "-" if measured.most_attempts is None else str(measured.most_attempts)
    versus = f"{alternative.wall / measured.wall:6.1f}x faster than {alt_name}" if alternative else ""
    print(
        f"  {label:<40} {measured.wall:7.2f} s  floor {floor:6.2f} s  {measured.wall / floor:5.2f}x floor  "
        f"{measured.calls:5d} calls {measured.writes:5d} writes {measured.throttled:4d} 429s  "
        f"max attempts {attempts:>2}  {versus}",
        flush=True,
    )


def startup_seconds(repeat: int = 5) -> float:
    """Median wall time of a fresh interpreter importing what deploy_notebooks.py imports before its first call."""
    code = f"import sys; sys.path.insert(0, {str(SCRIPTS)!r}); import cicdkit.cli, cicdkit.dbclient, cicdkit.workspace_sync"
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def rounds(calls: int, concurrency: int) -> int:
    return math.ceil(calls / concurrency) if calls else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebooks", type=int, default=400)
    parser.add_argument("--folders", type=int, default=40)
    parser.add_argument("--latency-ms", type=float, default=100)
    parser.add_argument("--concurrency", type=int, default=8, help="deploy_notebooks.py's --concurrency (default 8)")
    parser.add_argument("--throttle", type=float, default=30, help="imports/s the workspace allows in (2)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of every row; the median is shown")
    parser.add_argument("--skip-sdk", action="store_true", help="leave the databricks-sdk loop out (quick tuning)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-deploy-"))
    try:
        return bench(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def bench(args: argparse.Namespace, work: Path) -> int:
    project = work / "project"  # no config.json: the client's defaults
    project.mkdir()
    deploy = [sys.executable, str(SCRIPTS / "deploy_notebooks.py")]
    concurrency = ["--concurrency", str(args.concurrency)] if args.concurrency != 8 else []
    latency = args.latency_ms / 1000.0
    with LocalWorkspace(token=TOKEN, latency_ms=args.latency_ms, time_scale=0, clusters=[]) as workspace:
        env = {**os.environ, "DATABRICKS_HOST": workspace.url, "DATABRICKS_TOKEN": TOKEN, "PYTHONUNBUFFERED": "1"}
        env.pop("TF_BUILD", None)
        source = make_source(work / "src", args.notebooks, args.folders)
        load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
        print(
            f"{args.notebooks} notebooks in {args.folders} folders, {args.latency_ms:g} ms latency per request, "
            f"concurrency {args.concurrency}, {os.cpu_count()} CPUs, load average {load}, median of {args.repeat}",
            flush=True,
        )
        base = "/Workspace/Shared/bench"
        counter = iter(range(1_000_000))

        def ours_full() -> list[str]:
            return [*deploy, str(source), f"{base}/ours-{next(counter)}", "--full", *concurrency]

        def sdk() -> list[str]:
            return [sys.executable, "-c", SDK_LOOP, workspace.url, TOKEN, str(source), f"{base}/sdk-{next(counter)}"]

        def measure(make_command) -> Run:
            return median([run(workspace, make_command(), env, project) for _ in range(args.repeat)])

        figures: dict[str, float] = {}
        attempts: list[int | None] = []
        startup = startup_seconds()
        print(f"interpreter start-up with the step's imports: {startup:.3f} s (median of 5)")

        full_floor = args.notebooks * latency / args.concurrency
        folders = len({p.parent for p in source.rglob("*.py")})
        required = args.notebooks + folders + 3  # imports, mkdirs, manifest write; the manifest read + target listing
        calls_floor = required / args.concurrency * latency
        bound = startup + (1 + rounds(args.notebooks + folders, args.concurrency) + 1) * latency
        print(
            f"\n(1) workspace not throttling; floor = {args.notebooks} imports x {latency:g} s / {args.concurrency}; "
            f"calls floor = {required} required calls ({folders} mkdirs, 3 manifest/listing) / {args.concurrency} "
            f"x {latency:g} s = {calls_floor:.2f} s; a fresh process cannot beat {bound:.2f} s "
            f"(start-up + 1 read round + {rounds(args.notebooks + folders, args.concurrency)} write rounds + manifest)"
        )
        full = measure(ours_full)
        sdk_full = None if args.skip_sdk else measure(sdk)
        row("deploy_notebooks.py --full (defaults)", full, full_floor, sdk_full, "the sdk loop")
        if sdk_full:
            row("databricks-sdk loop", sdk_full, full_floor)
        figures["full"], _ = full.wall / full_floor, attempts.append(full.most_attempts)
        figures["full (calls floor)"] = full.wall / calls_floor
        print(
            f"  ours: {full.wall / calls_floor:.2f}x the calls floor, {full.wall / bound:.2f}x the fresh-process bound"
        )

        throttled_floor = args.notebooks / args.throttle
        print(
            f"\n(2) workspace throttling imports at {args.throttle:g}/s; floor = {args.notebooks} / {args.throttle:g}"
        )
        workspace.set_rate_limits([f"*/workspace/import={args.throttle:g}/s"])
        throttled = measure(ours_full)
        sdk_throttled = None if args.skip_sdk else measure(sdk)
        workspace.set_rate_limits(None)
        row("deploy_notebooks.py --full (defaults)", throttled, throttled_floor, sdk_throttled, "the sdk loop")
        if sdk_throttled:
            row("databricks-sdk loop", sdk_throttled, throttled_floor)
        figures["throttled"] = throttled.wall / throttled_floor
        attempts.append(throttled.most_attempts)

        print("\n(3) nothing changed, fresh runner; floor = its calls / concurrency x latency")
        target = f"{base}/ours-redeploy"
        run(workspace, [*deploy, str(source), target, "--full", *concurrency], env, project)
        redeploy = measure(lambda: [*deploy, str(source), target, *concurrency])
        redeploy_floor = redeploy.calls / args.concurrency * latency
        redeploy_bound = startup + rounds(redeploy.calls, args.concurrency) * latency
        print(
            f"  (its calls: {redeploy.calls} reads, in {rounds(redeploy.calls, args.concurrency)} rounds of "
            f"{args.concurrency} concurrent calls of {latency:g} s; a fresh process cannot beat {redeploy_bound:.2f} s)"
        )
        row("deploy_notebooks.py (defaults)", redeploy, redeploy_floor, full, "the full deploy (1)")
        print(f"  ours: {redeploy.wall / redeploy_bound:.2f}x the fresh-process bound")
        figures["redeploy"] = redeploy.wall / redeploy_floor
        attempts.append(redeploy.most_attempts)

        print("\nissue 14 targets:")
        for name, limit in {**TARGETS, "full (calls floor)": TARGETS["full"]}.items():
            verdict = "met" if figures[name] <= limit else "NOT met"
            print(f"  {name:<18} {figures[name]:5.2f}x floor, target <= {limit:g}x: {verdict}")
        writes_ok = redeploy.writes == 0
        print(f"  redeploy writes {redeploy.writes}, target 0: {'met' if writes_ok else 'NOT met'}")
        known = [a for a in attempts if a is not None]
        worst = max(known) if known else None
        print(f"  most attempts of one call {worst}, target <= 3 (retried at most twice): ", end="")
        print("met" if worst is not None and worst <= 3 else "NOT met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
