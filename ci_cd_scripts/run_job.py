"""Run one deployed job by its key (`bundle run` for our deployments) and wait for it.

KEY is a job of the target's resources.jobs, found by this deployment's identity (deploy it with deploy_jobs.py
first). The run starts with Jobs run-now (--param NAME=VALUE as job parameters) and an idempotency token from the
build (BUILD_BUILDID, stage, job, attempts) and the request: a call retried after a lost answer never starts a
second run, a re-run of the stage does. The run page URL is printed, then each state change and each task's state
(with its error) as they happen; status reads start 1 s apart and grow.

--timeout (default deploy.timeout_seconds, else 1200) is the deadline: a run still going then is cancelled (at
most 30 s more to see it end). --no-wait returns once the run is started. --out-dir DIR writes the run's record,
DIR/<KEY>.json, in the format evaluate_runs.py reads.

Exit codes: 0 the run succeeded (or started, with --no-wait), 1 it failed, timed out or was cancelled, or the
workspace refused a call, 2 bad input (nothing started).

Example (Azure Pipelines): python ci_cd_scripts/run_job.py quality_report -t "$(target)" --out-dir "$(Agent.TempDirectory)/job-runs"
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from cicdkit import ado, cli, jobs_deploy, jobs_run, notebook_runs, run_results, settings
from cicdkit.errors import InputError, UsageError


@cli.entry
def main(argv: list[str] | None = None) -> int:
    parser = cli.parser("run_job.py", __doc__)
    parser.add_argument("key", metavar="KEY", help="the job's key in resources.jobs")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="job parameter; repeatable")
    parser.add_argument("--no-wait", action="store_true", help="return once the run has started")
    parser.add_argument("--out-dir", type=Path, default=None, metavar="DIR", help="write the run record here")
    cli.add_step_args(parser)
    args = parser.parse_args(argv)

    parameters = dict(cli.parse_assignment(text, "--param") for text in args.param)
    if args.out_dir is not None and args.out_dir.exists() and not args.out_dir.is_dir():
        raise InputError(f"--out-dir {args.out_dir} is a file, not a folder")
    config = cli.load_config(args, cli.current_user(args))
    step = settings.Settings.from_args(args, config=config)
    if step.dry_run:
        raise UsageError("run_job.py has no --dry-run: it starts a run", hint="leave out --dry-run")
    ident = jobs_deploy.identity(config)
    with settings.connect(step, grace_seconds=jobs_run.CANCEL_GRACE_SECONDS) as client:
        job_id = jobs_run.find_job(client, ident, args.key)
        build = notebook_runs.build_identity(os.environ, config.target)
        record = jobs_run.run_job(
            client,
            job_id,
            key=args.key,
            parameters=parameters,
            token=jobs_run.idempotency_token(job_id, parameters, build),
            timeout=step.timeout,
            wait=not args.no_wait,
            on_event=lambda event: ado.relay(f"{args.key}: {event.text}"),
        )
    if args.out_dir is not None:
        path = run_results.write_record(args.out_dir, record)
        ado.relay(f"run record: {path}")
    if args.no_wait:
        return 0
    result = run_results.judge(record)
    ado.relay(f"{'PASS' if result.passed else 'FAIL'} job {args.key}: {result.state} in {result.duration_seconds:.1f}s")
    if not result.passed:
        for case in result.cases:
            if case.message:
                ado.relay(f"  {run_results.clean_text(case.message)}")
        if ado.in_pipeline():
            ado.log_issue("error", f"job {args.key} did not succeed: {result.state}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
