"""Benchmark: run_notebooks.py against the guide's loop (submit, poll every 10 s, next notebook), on the local workspace.

    python benchmarks/bench_runs.py [--notebooks 8] [--seconds 5] [--repeat 1]

Every notebook sleeps --seconds in the local workspace's run subprocess (real execution, not a scripted state).
In one invocation:
  (a) the approach of Microsoft's Azure Databricks CI/CD guide, written minimally with databricks-sdk: for each
      notebook `jobs.submit`, then `jobs.get_run` every 10 s until it is terminal, then the next notebook;
  (b) `run_notebooks.py` on the same notebooks (defaults: concurrency 8, polls from 1 s growing to 15 s).
Prints the wall time of each (median of --repeat), the ratio of (b) to the longest single run (its floor: the
runs are concurrent, so the step cannot end before the slowest notebook) and the ratio of (a) to (b).
Target: (b) within 1.3x of its floor.
"""

from __future__ import annotations

import argparse
import base64
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "ci_cd_scripts"
sys.path.append(str(SCRIPTS))  # appended: `databricks` must stay databricks-sdk in this process

from local_cloud.workspace.server import LocalWorkspace  # noqa: E402

TOKEN = "dapi-bench-token"
FOLDER = "/Workspace/Shared/bench/tests"

GUIDE_LOOP = r"""
import sys, time
from databricks.sdk import WorkspaceClient
from databricks.sdk.service import jobs

host, token, cluster, *paths = sys.argv[1:]
w = WorkspaceClient(host=host, token=token, auth_type="pat")
for path in paths:
    run_id = w.jobs.submit(run_name=path, tasks=[jobs.SubmitTask(
        task_key="test", existing_cluster_id=cluster, notebook_task=jobs.NotebookTask(notebook_path=path))]).run_id
    while True:
        state = w.jobs.get_run(run_id).state.life_cycle_state.value
        if state in ("TERMINATED", "SKIPPED", "INTERNAL_ERROR"):
            break
        time.sleep(10)
"""


def timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, text=True, env=env)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebooks", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()

    from databricks.sdk import WorkspaceClient
    from databricks.sdk.service.workspace import ImportFormat, Language

    source = f"# Databricks notebook source\nimport time\ntime.sleep({args.seconds})\ndbutils.notebook.exit('ok')\n"
    with LocalWorkspace(token=TOKEN, time_scale=0.01) as workspace, tempfile.TemporaryDirectory() as scratch:
        client = WorkspaceClient(host=workspace.url, token=TOKEN, auth_type="pat")
        client.workspace.mkdirs(FOLDER)
        paths = [f"{FOLDER}/test_{index:02d}" for index in range(args.notebooks)]
        for path in paths:
            client.workspace.import_(
                path,
                content=base64.b64encode(source.encode()).decode(),
                format=ImportFormat.SOURCE,
                language=Language.PYTHON,
                overwrite=True,
            )
        cluster = workspace.cluster_ids[0]
        env = {**os.environ, "DATABRICKS_HOST": workspace.url, "DATABRICKS_TOKEN": TOKEN}
        env.pop("TF_BUILD", None)
        ours = statistics.median(
            timed(
                [
                    sys.executable,
                    str(SCRIPTS / "run_notebooks.py"),
                    FOLDER,
                    "--cluster-id",
                    cluster,
                    "--out-dir",
                    str(Path(scratch) / f"runs-{attempt}"),
                ],
                env,
            )
            for attempt in range(args.repeat)
        )
        guide = statistics.median(
            timed([sys.executable, "-c", GUIDE_LOOP, workspace.url, TOKEN, cluster, *paths], env)
            for _ in range(args.repeat)
        )

    floor = args.seconds
    print(f"{args.notebooks} notebooks of {args.seconds:g} s each on the local workspace, median of {args.repeat}")
    print(f"{'guide loop (sequential, 10 s poll)':40} {guide:7.1f} s")
    print(
        f"{'run_notebooks.py (defaults)':40} {ours:7.1f} s   {ours / floor:.2f}x the longest run "
        f"(target <= 1.3x): {'met' if ours / floor <= 1.3 else 'NOT met'}"
    )
    print(f"run_notebooks.py is {guide / ours:.1f}x faster than the guide loop")
    return 0


if __name__ == "__main__":
    sys.exit(main())
