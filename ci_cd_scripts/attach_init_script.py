"""Attach a workspace-file or volume init script to clusters (get → edit, keeping every other field).

Reads each cluster's spec, appends the script to its init_scripts (a ``workspace`` destination for /Workspace,
/Users, /Shared paths, a ``volumes`` destination for /Volumes paths) unless it is already there, and writes the
full spec back with clusters/edit. Every other editable field is kept as it was. DBFS init scripts are
end-of-life and refused. A RUNNING cluster restarts when its spec is edited; a TERMINATED one runs the script at
its next start: the step says which.

Defaults from the config: --cluster-id from deploy.clusters, --script from deploy.init_script_path, --timeout
(the deadline of the whole step: reads, edits and waits; else 1200) from deploy.timeout_seconds.
On standard (shared) access mode Unity Catalog clusters the script's path must be in the init-script allowlist.

Exit codes: 0 done, 1 the edit failed, 2 bad input (unknown cluster, missing script, dbfs or bad path)."""

from __future__ import annotations

import sys

from cicdkit import ado, cli, cluster_spec, dbclient, settings, summary
from cicdkit.errors import CICDError, InputError, NotFound, ResourceDoesNotExist

SETTLED = ("RUNNING", "TERMINATED")


@cli.entry
def main(argv: list[str] | None = None) -> int:
    parser = cli.parser("attach_init_script.py", __doc__)
    cli.add_cluster_args(parser, purpose="edit")
    parser.add_argument("--script", metavar="REMOTE_PATH", help="init script path (default: deploy.init_script_path)")
    cli.add_step_args(parser)
    args = parser.parse_args(argv)
    step = cli.step_settings(args, require=("cluster_ids",))
    remote = dbclient.remote_path(step.required("init_script_path"))
    entry = cluster_spec.init_script_entry(remote.kind, remote.path)
    path = next(iter(entry.values()))["destination"]

    report = summary.Summary("attach_init_script", "Attach init script", dry_run=step.dry_run, verbose=step.verbose)
    with settings.connect(step) as client:
        try:
            found = client.files.head(path)
        except NotFound:
            found = None
        if found is None:
            raise InputError(
                f"init script {path} does not exist in the workspace", hint="upload it first with upload_files.py"
            )
        plans = []
        for cluster_id in step.cluster_ids:  # read everything first: a bad id stops the step before any write
            try:
                details = client.clusters.get(cluster_id)
            except ResourceDoesNotExist:
                raise InputError(
                    f"cluster {cluster_id} does not exist in {client.host}", hint="check --cluster-id / deploy.clusters"
                ) from None
            spec, changed = cluster_spec.with_init_script(details, entry)
            plans.append((cluster_id, details, spec, changed))
        for cluster_id, details, spec, changed in plans:
            name = str(details.get("cluster_name") or cluster_id)
            if not changed:
                ado.relay(f"cluster {cluster_id} ({name}): {path} already attached")
                report.skip(f"{cluster_id}: already attached")
                continue
            if step.dry_run:
                ado.relay(f"cluster {cluster_id} ({name}): would attach {path}")
                report.change(f"{cluster_id}: attach {path}")
                continue
            try:
                state = details.get("state")
                if state not in SETTLED:
                    details = client.clusters.wait_for_state(
                        cluster_id, SETTLED, timeout=step.timeout, fail_states=("ERROR", "UNKNOWN")
                    )
                    spec, changed = cluster_spec.with_init_script(details, entry)
                    state = details.get("state")
                client.clusters.edit(spec)
            except CICDError as error:
                # The clusters edited before this one stay edited: the summary lists them next to the failure.
                report.fail(f"{cluster_id}: {error.one_line()}")
                report.finish()
                raise
            if state == "RUNNING":
                notice = f"cluster {cluster_id} restarts now to apply the init script (editing a running cluster restarts it)"
            else:
                notice = f"cluster {cluster_id} is {state}: the init script runs at its next start"
            ado.relay(f"cluster {cluster_id} ({name}): attached {path}")
            ado.relay(f"notice: {notice}")
            report.change(f"{cluster_id}: attached {path}")
            report.note(notice)
    if not report.changed:
        report.note("nothing to change: the init script is already attached to every cluster")
    report.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
