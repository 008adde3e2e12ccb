"""Upload local files to a volume, a workspace folder or legacy DBFS, skipping files already there.

DEST_DIR is /Volumes/<catalog>/<schema>/<volume>/... or /Workspace/<folder>/... (Files API, one streamed PUT
per file) or dbfs:/<folder>/... (legacy DBFS: create, add-block in 1 MB blocks, close). Memory use does not
depend on the file size. A file is skipped when the remote file has the same size and SHA-256 (the remote
bytes are streamed through the hash; nothing is written). DBFS is deprecated for libraries on DBR 15.1+:
prefer a volume or workspace files.

--timeout bounds the whole step (default deploy.timeout_seconds, else 1200): every call and retry ends by it. A
failed step's summary lists the files uploaded before the failure.

The token is read from $DATABRICKS_TOKEN (see --auth). Exit codes: 0 done, 1 a remote call failed, 2 bad input."""

from __future__ import annotations

import sys

from cicdkit import ado, cli, file_upload, pool, settings, summary
from cicdkit.errors import CICDError


@cli.entry
def main(argv: list[str] | None = None) -> int:
    parser = cli.parser("upload_files.py", __doc__)
    parser.add_argument("dest_dir", metavar="DEST_DIR", help="/Volumes/..., /Workspace/... or dbfs:/... folder")
    parser.add_argument("files", metavar="FILE", nargs="+", help="local files to upload")
    cli.add_step_args(parser)
    args = parser.parse_args(argv)

    destination = file_upload.parse_destination(args.dest_dir)
    files = file_upload.check_files(args.files)  # bad input fails here, before any call
    step = cli.step_settings(args)
    report = summary.Summary(
        "upload_files", f"Upload files to {destination.display}", dry_run=step.dry_run, verbose=step.verbose
    )
    progress = summary.Progress(f"Uploading files to {destination.display}")
    with settings.connect(step) as client:
        current = None  # the file being uploaded, named in the summary if it fails
        try:
            outcomes = pool.run_all(
                [lambda item=item: file_upload.remote_state(client, destination, item) for item in files],
                workers=min(client.concurrency, 4),
                in_order=True,
            )
            uploads = [(item, reason) for item, (action, reason) in zip(files, outcomes) if action == "upload"]
            for item, (action, reason) in zip(files, outcomes):
                if action == "skip":
                    report.skip(f"{destination.shown(item.name)} ({reason})")
            if uploads and not step.dry_run:
                file_upload.ensure_folder(client, destination)
                total = sum(item.size for item, _ in uploads) or 1
                done = 0
                for item, reason in uploads:  # one at a time: wheels are few, and each stream is already a full pipe
                    current = item
                    file_upload.upload(client, destination, item)
                    current = None
                    done += item.size
                    if ado.in_pipeline():
                        progress.update(100.0 * done / total, item.name)
                    # Recorded as each upload lands, so a failed step's summary counts exactly what was written.
                    report.change(f"upload {destination.shown(item.name)} ({item.size} bytes, {reason})")
            else:
                for item, reason in uploads:
                    report.change(f"upload {destination.shown(item.name)} ({item.size} bytes, {reason})")
        except CICDError as error:
            report.fail(f"{destination.shown(current.name)}: {error.one_line()}" if current else error.one_line())
            report.finish()
            raise
    if not report.changed:
        report.note("nothing to change: every file is already there with the same content")
    report.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
