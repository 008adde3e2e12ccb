"""Deploy the target's jobs (resources.jobs): create or reset each by its identity, set permissions, prune.

The jobs are the resolved target's (merges, variables, `mode: development` name prefix and paused schedules,
presets applied by the config). Every job this step creates carries three tags naming the bundle, the target and
the job key; that identity, not the name, finds it again (Jobs 2.2 list, every page), so a job made by hand with
the same name is never touched. A deployed job whose normalised settings differ gets one jobs/reset with the full
new settings; an unchanged one gets no write. Two jobs with one identity are an error naming both ids.

`${resources.jobs.<key>.id}` in a job's settings becomes the referenced job's id (that job is written first; a
cycle is a config error). A task library `whl:` given as a relative path or glob (`../dist/*.whl`) names one wheel
in --wheels-dir (default: the artifact's `wheels/`) and is rewritten to its uploaded place under
deploy.libraries_path; none or several matching is an error naming the job and task. Top-level and per-job
`permissions` are set with the Permissions API when they differ from the job's direct permissions (jobs without
`permissions` in the config keep theirs); `run_as` goes into the settings.

Before any write every task's notebook and workspace Python file is checked (get-status, concurrently): a missing
one is an error (deploy the notebooks first). --prune deletes jobs carrying this deployment's identity that the
config no longer has. --dry-run prints the plan (create / update with the changed setting paths / unchanged /
delete) and writes nothing. --job KEY deploys only those jobs (and the jobs they reference).

In a pipeline each job's id is exported as the variable job_<key>_id, and the step summary lists each job with its
page URL.

Exit codes: 0 deployed (or nothing to change), 1 the workspace refused a call (the message names the job key),
2 bad input or config (nothing written).

Example (Azure Pipelines): python ci_cd_scripts/deploy_jobs.py -t "$(target)" --prune
"""

from __future__ import annotations

import sys
from pathlib import Path

from cicdkit import ado, cli, jobs_deploy, settings, summary
from cicdkit.errors import CICDError


@cli.entry
def main(argv: list[str] | None = None) -> int:
    parser = cli.parser("deploy_jobs.py", __doc__)
    parser.add_argument("--job", action="append", default=[], metavar="KEY", help="deploy only this job; repeatable")
    parser.add_argument(
        "--wheels-dir",
        type=Path,
        default=Path("wheels"),
        metavar="DIR",
        help="folder relative whl: libraries resolve in (default: wheels, the artifact's)",
    )
    parser.add_argument("--prune", action="store_true", help="delete this deployment's jobs the config no longer has")
    cli.add_concurrency_arg(parser, what="parallel reads")
    cli.add_step_args(parser)
    args = parser.parse_args(argv)

    # The current user (SCIM Me) names development-mode jobs ("[dev <user>] ..."), as `bundle deploy` does.
    step = settings.Settings.from_args(args, config=cli.load_config(args, cli.current_user(args)))
    ident = jobs_deploy.identity(step.config)
    jobs = jobs_deploy.desired_jobs(
        step.config, wheels_dir=args.wheels_dir, libraries_path=step.deploy.get("libraries_path")
    )
    jobs_deploy.deploy_order(jobs)  # a reference cycle fails here, before any call
    selected = jobs_deploy.select(jobs, args.job)
    report = summary.Summary(
        "deploy_jobs", f"Deploy jobs of {ident.bundle} to {ident.target}", dry_run=step.dry_run, verbose=step.verbose
    )
    with settings.connect(step) as client:
        jobs_deploy.check_sources(client, selected, concurrency=step.concurrency)
        actions, ids = jobs_deploy.plan(
            client, jobs, ident, only=args.job, prune=args.prune, concurrency=step.concurrency
        )
        if step.dry_run:
            for action in actions:
                (report.skip if action.kind == "unchanged" and not action.set_acl else report.change)(action.describe())
            report.finish()
            return 0
        try:
            ids = jobs_deploy.apply(client, actions, ids, on_done=lambda action: _landed(report, action))
        except CICDError as error:
            report.fail(error.one_line())
            report.finish()
            raise
        host = client.host
        requests = client.stats.requests
    for action in actions:
        if action.kind != "delete" and action.key in ids:
            report.note(f"{action.key}: {jobs_deploy.page_url(host, ids[action.key])}")
            if ado.in_pipeline():
                ado.set_variable(f"job_{_variable_key(action.key)}_id", str(ids[action.key]))
    if not any(a.kind != "unchanged" or a.set_acl for a in actions):
        report.note("nothing to change: every job matches the config")
    report.note(f"{requests} API calls")
    report.finish()
    return 0


def _landed(report: summary.Summary, action: jobs_deploy.Action) -> None:
    if action.kind == "unchanged" and not action.set_acl:
        report.skip(action.describe())
    else:
        report.change(action.describe())


def _variable_key(key: str) -> str:
    return "".join(c if c.isalnum() or c == "_" else "_" for c in key)


if __name__ == "__main__":
    sys.exit(main())
