"""Run the test notebooks on a cluster, concurrently and by a deadline, and keep each run's record for evaluate_runs.py.

WORKSPACE_PATH: a notebook, or a folder (every notebook under it whose name matches --pattern, default test_*).
Without paths, the target's deploy.test_notebooks; relative entries resolve under deploy.notebooks_path. Every
path is checked before anything is submitted: one that does not exist is an error (deploy the notebooks first).

Each notebook gets a one-time run (Jobs 2.1 runs/submit, one notebook_task with --param values as
base_parameters) on --cluster-id (default: the first of deploy.clusters, where install_libraries.py put the
wheels) or on a --new-cluster. Its idempotency token comes from the build (BUILD_BUILDID, stage, job, attempts)
and the run's spec, so a submit retried after a lost answer never starts a second run, while a re-run of the
stage does. At most --concurrency runs at once; each is polled every 1 s growing to --poll-max, its page URL
printed once and each state change as it happens.

--timeout (default deploy.timeout_seconds, else 1200) is the deadline of all the runs: a run still going then
is cancelled and recorded as a timeout; cancelling and reading the final states takes at most 30 s more. On
Ctrl-C the runs are cancelled the same way.

For each notebook OUT_DIR/<name>.json holds the runs/get result and the task run's runs/get-output (records of
an earlier invocation in OUT_DIR are removed first). Turn them into JUnit with evaluate_runs.py. In a pipeline,
the variable run_notebooks_out_dir names OUT_DIR (absolute) once the first run is submitted.

Exit codes: 0 every run succeeded (and its test summary, if any, has no failure), 1 a run or test did not
succeed or the workspace failed a call, 2 bad input (nothing submitted).

Example (Azure Pipelines):
  python ci_cd_scripts/run_notebooks.py -t "$(target)" --out-dir "$(Agent.TempDirectory)/notebook-runs"
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from pathlib import Path

from cicdkit import ado, cli, notebook_runs, run_results, settings
from cicdkit.errors import InputError, UsageError

OUTPUT_LINES_SHOWN = 40


@cli.entry
def main(argv: list[str] | None = None) -> int:
    parser = cli.parser("run_notebooks.py", __doc__)
    parser.add_argument(
        "paths",
        metavar="WORKSPACE_PATH",
        nargs="*",
        help="notebook or folder in the workspace (default: deploy.test_notebooks)",
    )
    parser.add_argument("--out-dir", required=True, metavar="DIR", help="folder for the run records")
    parser.add_argument(
        "--pattern",
        default=notebook_runs.DEFAULT_PATTERN,
        help=f"notebook names to run inside a folder (default: {notebook_runs.DEFAULT_PATTERN})",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--cluster-id",
        dest="cluster",
        metavar="ID",
        default=None,
        help="cluster to run on (default: the first of deploy.clusters)",
    )
    where.add_argument(
        "--new-cluster",
        metavar="JSON",
        default=None,
        help="a new_cluster spec (JSON text, or @FILE) for each run instead of an existing cluster",
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="notebook parameter (base_parameters); repeatable",
    )
    cli.add_concurrency_arg(parser, what="runs at once")
    parser.add_argument(
        "--poll-max",
        dest="poll_interval",
        type=float,
        default=notebook_runs.DEFAULT_POLL_MAX_SECONDS,
        metavar="SECONDS",
        help=f"longest wait between two status reads (default {notebook_runs.DEFAULT_POLL_MAX_SECONDS:g})",
    )
    cli.add_step_args(parser)
    args = parser.parse_args(argv)

    if not 1 <= args.poll_interval < float("inf"):
        raise UsageError(f"--poll-max must be at least 1 second, not {args.poll_interval:g}")
    parameters = dict(cli.parse_assignment(text, "--param") for text in args.param)
    step = cli.step_settings(args)
    cluster = _cluster(args, step)
    entries = args.paths or list(step.deploy.get("test_notebooks") or [])
    if not entries:
        raise UsageError(
            "no test notebook given", hint="pass WORKSPACE_PATH, or set deploy.test_notebooks in the config"
        )
    paths = notebook_runs.resolve_paths(entries, step.notebooks_path)
    out_dir = Path(args.out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out-dir {out_dir} is a file, not a folder")

    client = settings.connect(step, grace_seconds=notebook_runs.CANCEL_GRACE_SECONDS)
    with client:
        notebooks = notebook_runs.find_notebooks(
            client, paths, notebooks_path=step.notebooks_path, pattern=args.pattern, concurrency=step.concurrency
        )
        if step.dry_run:
            for notebook in notebooks:
                spec = notebook_runs.submit_spec(notebook, cluster=cluster, parameters=parameters)
                ado.relay(f"would run {notebook.name}: {json.dumps(spec, sort_keys=True)}")
            ado.relay(f"run_notebooks: {len(notebooks)} notebooks would run (dry run, nothing submitted)")
            return 0
        removed = _clear_old_records(out_dir)
        if ado.in_pipeline():
            # For the pipeline's next steps (evaluate_runs.py, the runs artifact): records are on their way.
            ado.set_variable("run_notebooks_out_dir", str(out_dir.resolve()))
        printer = _Printer()
        if removed:
            printer.line(f"removed {removed} run record{'s' * (removed != 1)} of an earlier invocation from {out_dir}")
        printer.line(
            f"running {len(notebooks)} notebook{'s' * (len(notebooks) != 1)}, {step.concurrency} at a time, "
            f"deadline {step.timeout:g}s"
        )
        records = notebook_runs.run_notebooks(
            client,
            notebooks,
            cluster=cluster,
            parameters=parameters,
            build=notebook_runs.build_identity(os.environ, getattr(step.config, "target", None)),
            timeout=step.timeout,
            concurrency=step.concurrency,
            on_event=printer.event,
            on_record=lambda record: (run_results.write_record(out_dir, record), printer.output(record)),
        )
    return _report(records, out_dir)


def _cluster(args: argparse.Namespace, step: settings.Settings) -> dict:
    if args.new_cluster is not None:
        text = args.new_cluster
        if text.startswith("@"):
            try:
                text = Path(text[1:]).read_text(encoding="utf-8")
            except OSError as error:
                raise InputError(f"--new-cluster {args.new_cluster}: {error.strerror or error}") from None
        try:
            spec = json.loads(text)
        except json.JSONDecodeError as error:
            raise UsageError(f"--new-cluster is not valid JSON: {error.msg} at character {error.pos}") from None
        if not isinstance(spec, dict) or not spec.get("spark_version"):
            raise UsageError("--new-cluster must be a JSON object with at least spark_version (a new_cluster spec)")
        return {"new_cluster": spec}
    cluster_id = args.cluster or next(iter(step.cluster_ids), None)
    if not cluster_id:
        raise UsageError("no cluster to run on", hint="pass --cluster-id or --new-cluster, or set deploy.clusters")
    return {"existing_cluster_id": str(cluster_id)}


def _clear_old_records(out_dir: Path) -> int:
    """Remove this step's records from an earlier invocation (only files that are our records)."""
    removed = 0
    for path in sorted(out_dir.glob("*.json")) if out_dir.is_dir() else []:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(data, dict) and data.get("format") == run_results.RECORD_FORMAT:
            path.unlink()
            removed += 1
    return removed


class _Printer:
    """Lines from the worker threads, one at a time; notebook output relayed (neutralised) as each run settles."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def line(self, text: str) -> None:
        with self._lock:
            ado.relay(text)

    def event(self, event: notebook_runs.Event) -> None:
        self.line(f"{event.notebook.name}: {event.kind if event.kind != 'state' else 'now'} {event.text}")

    def output(self, record: dict) -> None:
        output = record.get("output") or {}
        pieces = []
        result = (output.get("notebook_output") or {}).get("result")
        if result:
            pieces.append(f"exit value ({len(result)} characters): {result[:2000]}")
        if output.get("error"):
            pieces.append(f"error: {run_results.clean_text(output['error'])}")
        if output.get("error_trace"):
            trace = run_results.clean_text(output["error_trace"]).splitlines()
            pieces.extend(trace[-OUTPUT_LINES_SHOWN:])
        if record.get("error"):
            pieces.append(f"error: {record['error']}")
        if not pieces:
            return
        with self._lock, ado.group(f"output of {record['name']}"):
            for piece in pieces:
                ado.relay(piece)


def _report(records: list[dict], out_dir: Path) -> int:
    results = [run_results.judge(record) for record in records]
    bad = [result for result in results if not result.passed]
    for result in results:
        ado.relay(
            f"{'PASS' if result.passed else 'FAIL'} {result.name}: {result.state} in {result.duration_seconds:.1f}s"
        )
    ado.relay(f"run_notebooks: {len(results) - len(bad)} of {len(results)} notebooks passed; records in {out_dir}")
    for result in bad if ado.in_pipeline() else []:
        ado.log_issue("error", f"test notebook {result.name} did not pass: {result.state}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
