"""Install wheels (and PyPI requirements) on clusters, replacing older versions with exactly one restart per cluster.

Per cluster, concurrently: find installed libraries of the same distributions (matched by the wheel's normalised
distribution name), uninstall them in one call, install the new wheels and requirements in one call, restart
once if anything was uninstalled (start the cluster if it is TERMINATED), then wait until it is RUNNING and every
library is INSTALLED, before --timeout. A library that FAILS, or a cluster in ERROR, fails the step with the
service's message. Libraries already installed with the same spec are left alone, so a re-run changes nothing.

--wheel takes a remote path (/Volumes/..., /Workspace/..., legacy dbfs:/...) or a file name relative to the
config's deploy.libraries_path. --requirements takes a local requirements file (installed as PyPI libraries) or a
remote one (/Volumes/..., /Workspace/...). A local file is read like merge_requirements.py reads it (-r includes,
continuations, conflicting pins refused); its --index-url becomes the libraries' repo, binary options are ignored
with a notice, and --extra-index-url, --trusted-host and --pre are refused (a cluster PyPI library has a single
repo): upload such a file and pass its remote path, which pip on the cluster reads with every option. Cluster ids default to deploy.clusters.

--timeout bounds the whole step (default deploy.timeout_seconds, else 1200): the reads before the rollout, every
call and retry, and every wait end by it. A failed step's summary lists the writes that landed before the failure.

Exit codes: 0 done, 1 the rollout failed (library FAILED, cluster ERROR, deadline, API error), 2 bad input
(unknown cluster, missing wheel, bad path, no credentials)."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from pathlib import Path

from cicdkit import ado, cli, dbclient, libraries, pool, settings, summary
from cicdkit.errors import CICDError, InputError, NotFound, OperationFailed, UsageError
from cicdkit.libraries import Library


def _wanted(args, deploy: Mapping) -> tuple[list[Library], list[str]]:
    """The libraries to install, and notices about requirement-file options a cluster library cannot honour."""
    wanted: list[Library] = []
    notices: list[str] = []
    for wheel in args.wheel:
        if not wheel.startswith(("/", "dbfs:")):
            base = deploy.get("libraries_path")
            if not base:
                raise UsageError(
                    f"--wheel {wheel!r} is not a remote path",
                    hint="give /Volumes/..., /Workspace/... or set deploy.libraries_path",
                )
            wheel = base.rstrip("/") + "/" + wheel
        path = dbclient.remote_path(wheel)
        libraries.wheel_distribution(path.path)
        location = libraries.workspace_library_path(path.path) if path.kind == "workspace" else path.path
        wanted.append(Library("whl", location))
    if args.requirements:
        if args.requirements.startswith(("/Volumes/", "/Workspace/", "/Users/", "/Shared/")):
            remote = dbclient.remote_path(args.requirements, allowed=("workspace", "volumes"))
            wanted.append(Library("requirements", libraries.workspace_library_path(remote.path)))
        else:
            pypi, notices = libraries.requirements_libraries(Path(args.requirements))
            wanted.extend(pypi)
    return wanted, notices


def _check_uploaded(client: dbclient.Client, library: Library) -> None:
    """Refuse to install a wheel that is not there (the cluster would report FAILED only after a restart)."""
    if library.kind not in ("whl", "requirements"):
        return
    try:
        if library.location.startswith("dbfs:"):
            client.dbfs.get_status(library.location)
            return
        found = client.files.head(library.location)
    except NotFound:
        found = None
    if found is None:
        raise InputError(
            f"{library.location} does not exist in the workspace", hint="upload it first with upload_files.py"
        )


@cli.entry
def main(argv: list[str] | None = None) -> int:
    parser = cli.parser("install_libraries.py", __doc__)
    cli.add_cluster_args(parser, purpose="install on")
    parser.add_argument(
        "--wheel", action="append", default=[], metavar="REMOTE_PATH", help="wheel to install; repeatable"
    )
    parser.add_argument(
        "--requirements", metavar="FILE", help="requirements file: local (PyPI libraries) or remote path"
    )
    parser.add_argument(
        "--no-restart", action="store_true", help="never restart or start a cluster; say what is pending instead"
    )
    cli.add_step_args(parser)
    args = parser.parse_args(argv)
    step = cli.step_settings(args, require=("cluster_ids",))
    cluster_ids = step.cluster_ids
    if not args.wheel and not args.requirements:
        raise UsageError("nothing to install", hint="pass --wheel and/or --requirements")
    wanted, notices = _wanted(args, step.deploy)

    report = summary.Summary("install_libraries", "Install libraries", dry_run=step.dry_run, verbose=step.verbose)
    for notice in notices:
        report.note(notice)
        ado.relay(f"notice: {notice}")
    client = settings.connect(step, concurrency=max(len(cluster_ids), 2))
    workers = min(len(cluster_ids), client.concurrency)
    with client:
        for library in wanted:
            _check_uploaded(client, library)
        # Read and plan every cluster before writing anything: a bad cluster id stops the step with no writes.
        reads = [lambda cid=cid: libraries.inspect(client, cid, wanted, timeout=step.timeout) for cid in cluster_ids]
        inspected = dict(zip(cluster_ids, pool.run_all(reads, workers=workers, in_order=True)))
        for cluster_id, (details, plan) in inspected.items():
            action = libraries.next_action(details["state"], plan, no_restart=args.no_restart)
            ado.relay(_plan_line(cluster_id, details, plan, action, dry_run=step.dry_run))
        if step.dry_run:
            for cluster_id, (details, plan) in inspected.items():
                action = libraries.next_action(details["state"], plan, no_restart=args.no_restart)
                _record(report, cluster_id, plan, libraries.planned_writes(plan, action))
            report.finish()
            return 0

        progress = summary.Progress("install libraries")
        finished: list[str] = []

        def on_poll(cluster_id: str, what: str) -> None:
            progress.update(100 * len(finished) / len(cluster_ids), f"{cluster_id} {what}")

        # The rollout ends by the step's deadline, which already covers the reads above.
        deadline = client.step_deadline if client.step_deadline is not None else time.monotonic() + step.timeout
        failures: list[CICDError] = []

        def settled(result: libraries.ClusterResult) -> None:
            """One cluster's outcome, as it comes (`roll_out` returns a failure as its result's error)."""
            finished.append(result.cluster_id)
            if result.error is not None:
                # What landed before the failure was written all the same: the summary counts it.
                if result.landed:
                    _record(report, result.cluster_id, result.plan, result.landed)
                failures.append(result.error)
                report.fail(f"{result.cluster_id}: {result.error.one_line()}")
                return
            _record(report, result.cluster_id, result.plan, result.landed)
            for notice in result.notices:
                report.note(notice)
                ado.relay(f"notice: {notice}")

        rollouts = [
            lambda details=details, plan=plan: libraries.roll_out(
                client, details, plan, wanted, no_restart=args.no_restart, deadline=deadline, on_poll=on_poll
            )
            for details, plan in inspected.values()
        ]
        pool.run_all(rollouts, workers=workers, on_done=settled)
    if client.stats.retries:
        report.note(f"{client.stats.retries} API calls retried ({client.stats.throttled} throttled)")
    if not report.changed and not report.failed:
        report.note("nothing to change: every cluster already has these libraries installed")
    report.finish()
    if failures:
        if len(failures) == 1:
            raise failures[0]
        raise OperationFailed(
            f"{len(failures)} of {len(cluster_ids)} clusters failed: " + "; ".join(f.one_line() for f in failures)
        )
    return 0


def _plan_line(cluster_id: str, details: dict, plan: libraries.ClusterPlan, action: str, *, dry_run: bool) -> str:
    verb = "would" if dry_run else "will"
    parts = []
    if plan.uninstall:
        parts.append(f"uninstall {', '.join(library.location for library in plan.uninstall)}")
    if plan.install:
        parts.append(f"install {', '.join(library.location for library in plan.install)}")
    if action != "none":
        parts.append(action)
    what = f"{verb} " + "; ".join(parts) if parts else "up to date"
    return ado.neutralise(f"cluster {cluster_id} ({details.get('cluster_name', '')}, {details.get('state')}): {what}")


def _record(report: summary.Summary, cluster_id: str, plan: libraries.ClusterPlan, writes: list[str]) -> None:
    """One summary line per cluster from its writes (`libraries.planned_writes` names): those that landed, or for a
    dry run those planned. No writes: the cluster was already up to date."""
    if not writes:
        report.skip(f"{cluster_id}: {len(plan.keep)} libraries already installed")
        return
    parts = []
    if "install" in writes:
        parts.append(f"install {len(plan.install)}")
        if "uninstall" in writes:
            parts.append(f"replace {len(plan.uninstall)}")
    elif "uninstall" in writes:
        parts.append(f"uninstall {len(plan.uninstall)}")
    parts += [{"restart": "restart once", "start": "start the cluster"}[w] for w in writes if w in ("restart", "start")]
    report.change(f"{cluster_id}: {', '.join(parts)}")


if __name__ == "__main__":
    sys.exit(main())
