"""Deploy notebooks and files from SRC_DIR to a workspace folder, incrementally.

Files starting with the Databricks header (`# Databricks notebook source`, `-- ...`, `// ...`) in .py/.sql/
.scala/.r become notebooks named without the extension; .ipynb files become notebooks; every other file is
a workspace file that keeps its name. Dot files/folders and __pycache__ are skipped.

Incremental by default: a manifest (`WORKSPACE_DIR/.deploy-manifest.json`, a workspace file) records each
object's content hash and what the workspace's modified_at/object_id may be. A deploy lists the folders (one call each),
uploads only what is new, changed locally, or changed/removed in the workspace since (drift is overwritten),
and writes the manifest last; a re-run with nothing changed makes no writes. --full re-uploads everything.
--prune deletes objects the previous deployment created that no longer exist locally (never anything else).

WORKSPACE_DIR must be below /Workspace/<root>/, /Users/<user>/ or /Shared/ (not Repos). Defaults come from
the config's deploy section (deploy.notebooks_path, deploy.concurrency, deploy.timeout_seconds) when
--config/-t is given or ./config.json exists. The token is read from $DATABRICKS_TOKEN (see --auth).

--timeout bounds the whole deploy (default deploy.timeout_seconds, else 1200): every call and retry ends by it.
A deploy that fails half-way lists in its summary exactly the writes that landed before the failure.

Exit codes: 0 deployed (or nothing to do), 1 the workspace refused or failed a call, 2 bad input."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from cicdkit import ado, cli, settings, summary, workspace_sync
from cicdkit.errors import CICDError

if TYPE_CHECKING:
    from cicdkit import dbclient


@cli.entry
def main(argv: list[str] | None = None) -> int:
    parser = cli.parser("deploy_notebooks.py", __doc__)
    parser.add_argument("src_dir", metavar="SRC_DIR", help="local folder with notebooks and files")
    parser.add_argument(
        "workspace_dir", metavar="WORKSPACE_DIR", nargs="?", help="workspace folder (default: deploy.notebooks_path)"
    )
    cli.add_concurrency_arg(parser, what="parallel calls")
    parser.add_argument("--full", action="store_true", help="upload every object, changed or not")
    parser.add_argument(
        "--prune", action="store_true", help="delete objects the previous deployment created that are gone locally"
    )
    cli.add_step_args(parser)
    args = parser.parse_args(argv)

    step = cli.step_settings(args, require=("notebooks_path",))
    workspace_dir = workspace_sync.check_workspace_dir(step.notebooks_path)
    local = workspace_sync.scan(Path(args.src_dir))  # bad input fails here, before any call

    report = summary.Summary(
        "deploy_notebooks", f"Deploy notebooks to {workspace_dir}", dry_run=step.dry_run, verbose=step.verbose
    )
    progress = summary.Progress(f"Deploying notebooks to {workspace_dir}")
    written = workspace_sync.Written()
    with settings.connect(step) as client:
        try:
            result = workspace_sync.deploy(
                client,
                local,
                workspace_dir,
                full=args.full,
                prune=args.prune,
                dry_run=step.dry_run,
                concurrency=client.concurrency,
                progress=(lambda done, total: progress.update(100.0 * done / total, f"{done}/{total} changes"))
                if ado.in_pipeline()
                else None,
                written=written,
            )
        except CICDError as error:
            if written.plan is not None:
                _record(report, written.plan, workspace_dir, written)  # what landed before the failure
            report.fail(error.one_line())
            report.note("the manifest was not updated: the next deploy redoes whatever is missing")
            report.note(_calls(client.stats))
            report.finish()
            raise
        calls = _calls(client.stats)
    planned = result.plan
    _record(report, planned, workspace_dir, None if step.dry_run else written)
    report.note(f"previous manifest: {result.manifest_note}")
    if planned.stale:
        report.note(
            f"{len(planned.stale)} objects of earlier deploys are gone locally and kept (use --prune): "
            + ", ".join(planned.stale[:5])
            + (" ..." if len(planned.stale) > 5 else "")
        )
    if not step.dry_run:
        written = "written" if result.manifest_written else "unchanged"
        report.note(f"manifest {written}; {calls}")
    if planned.empty and not step.dry_run:
        report.note("nothing to change: the workspace matches the source")
    report.finish()
    return 0


def _calls(stats: dbclient.Stats) -> str:
    """The calls the step made: how many, retries, and (when any) how many attempts the worst call took."""
    if not stats.retries:
        return f"{stats.requests} API calls ({stats.retries} retries)"
    return (
        f"{stats.requests} API calls ({stats.retries} retries, {stats.throttled} answered 429, "
        f"at most {stats.most_attempts} attempts for one call)"
    )


def _record(
    report: summary.Summary, planned: workspace_sync.Plan, workspace_dir: str, written: workspace_sync.Written | None
) -> None:
    """The plan's changes in plan order: all of them for a dry run (`written` None), else those that landed."""

    def landed(kind: str, path: str) -> bool:
        return written is None or path in getattr(written, kind)

    for delete in planned.deletes:
        if landed("deletes", delete.relative_path):
            report.change(f"delete {delete.relative_path} ({delete.reason})")
    for folder in planned.folders_to_create:
        if landed("folders_created", folder):
            report.change(f"create folder {folder or workspace_dir}")
    for upload in planned.uploads:
        if landed("uploads", upload.relative_path):
            report.change(f"upload {upload.relative_path} ({upload.reason})")
        elif written is not None and upload.relative_path in written.replaced:
            report.change(
                f"delete {upload.relative_path} (to replace it with a {upload.local.object_type.lower()}; the upload did not land)"
            )
    for folder in planned.folders_to_delete:
        if landed("folders_deleted", folder):
            report.change(f"delete folder {folder} (emptied by --prune)")
    for path in planned.skipped:
        report.skip(path)


if __name__ == "__main__":
    sys.exit(main())
