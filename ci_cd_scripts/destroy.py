"""Remove this deployment from its target (`bundle destroy`): its jobs, notebooks, libraries and init script.

What goes, and only that: the jobs carrying this deployment's identity (bundle, target, job key tags; a job made
by hand is never touched), the init script entry deploy.init_script_path on each of deploy.clusters (the other
init scripts and settings of the cluster kept; a RUNNING cluster restarts, as for any edit), the init script file,
the wheels and requirements files in deploy.libraries_path, and the notebooks and files the deploy manifest in
deploy.notebooks_path records, the manifest, and the folders the deployments made; a folder only once it is empty
(what someone else put there stays). Meant for short-lived development and pull-request targets: a `mode: production`
target is refused unless --yes. --dry-run lists what would go and removes nothing. A second run finds nothing.

Exit codes: 0 removed (or nothing there), 1 the workspace refused a call, 2 bad input or config (nothing removed).

Example: python ci_cd_scripts/destroy.py -t pr-1234 --yes
"""

from __future__ import annotations

import sys

from cicdkit import cli, settings, summary, teardown
from cicdkit.errors import CICDError, UsageError


@cli.entry
def main(argv: list[str] | None = None) -> int:
    parser = cli.parser("destroy.py", __doc__)
    parser.add_argument("--yes", action="store_true", help="also destroy a 'mode: production' target")
    cli.add_step_args(parser)
    args = parser.parse_args(argv)

    config = cli.load_config(args, cli.current_user(args))
    step = settings.Settings.from_args(args, config=config)
    mode = (config.tree.get("bundle") or {}).get("mode")
    if mode == "production" and not args.yes and not step.dry_run:
        raise UsageError(
            f"target {config.target} is 'mode: production': destroy.py refuses it without --yes",
            hint="check the target, then pass --yes",
        )
    report = summary.Summary(
        "destroy", f"Destroy the deployment of target {config.target}", dry_run=step.dry_run, verbose=step.verbose
    )
    with settings.connect(step) as client:
        items = teardown.plan(client, config, notes=report.notes)
        if not step.dry_run:
            for item in items:
                try:
                    removed = item.remove()
                except CICDError as error:
                    report.fail(f"removing {item.what}: {error.one_line()}")
                    report.finish()
                    raise
                if removed:
                    report.change(f"removed {item.what}")
                else:
                    report.skip(f"kept {item.what}: something else is in it")
        else:
            for item in items:
                report.change(f"remove {item.what}")
    if not items:
        report.note("nothing to remove: the target holds nothing of this deployment")
    report.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
