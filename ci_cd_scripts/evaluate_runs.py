"""Turn the test-notebook runs of run_notebooks.py into a JUnit XML file for the Tests tab.

Reads every run record in RUNS_DIR (run_notebooks.py --out-dir) and writes FILE: one <testsuite> per notebook,
one <testcase> per test the notebook reported in its test summary (README, "Test notebooks"), or one <testcase>
for the whole run when it exited with anything else. A run that failed, timed out, was cancelled, skipped or
ended with an internal error is a failed or errored case carrying the run's state message and error trace;
--max-duration turns a notebook that ran longer (its task's execution time) into a failure. Output that Databricks
truncated (over 5 MB) is an error, never parsed.

The file is what PublishTestResults@2 reads (testResultsFormat: JUnit); it validates against the Apache Ant JUnit
schema; in a pipeline the variable notebook_tests_junit names it (absolute). Exit 1 when any case failed or errored, 0 when all passed (skipped tests count as passed), 2 for bad
input (no runs folder, no records, a file that is not a record).

Example (Azure Pipelines, after run_notebooks.py):
  python ci_cd_scripts/evaluate_runs.py "$(Agent.TempDirectory)/notebook-runs" \\
      --junit-xml "$(Agent.TempDirectory)/notebook-tests.xml" --suite-name "$(target)"
"""

from __future__ import annotations

import sys
from pathlib import Path

from cicdkit import ado, cli, junit, run_results
from cicdkit.errors import UsageError

SHOWN_DETAIL_LINES = 20


@cli.entry
def main(argv: list[str] | None = None) -> int:
    parser = cli.parser("evaluate_runs.py", __doc__)
    parser.add_argument("runs_dir", metavar="RUNS_DIR", help="folder of run records (run_notebooks.py --out-dir)")
    parser.add_argument("--junit-xml", required=True, metavar="FILE", help="JUnit XML file to write")
    parser.add_argument(
        "--max-duration",
        type=float,
        default=None,
        metavar="SECONDS",
        help="a notebook running longer than this fails (default: no limit)",
    )
    parser.add_argument(
        "--suite-name",
        default="notebooks",
        metavar="NAME",
        help="package of every test suite and first part of the class names (default: notebooks); "
        "the target's name is a good choice",
    )
    args = parser.parse_args(argv)
    if args.max_duration is not None and not 0 < args.max_duration < float("inf"):
        raise UsageError(f"--max-duration must be a positive number of seconds, not {args.max_duration:g}")
    if not args.suite_name.strip():
        raise UsageError("--suite-name must not be empty")

    records = run_results.read_records(Path(args.runs_dir))
    results = [
        run_results.judge(data, max_duration=args.max_duration, suite_name=args.suite_name.strip()) for data in records
    ]
    junit.write(args.junit_xml, results, suite_name=args.suite_name.strip())
    if ado.in_pipeline():
        ado.set_variable("notebook_tests_junit", str(Path(args.junit_xml).resolve()))  # for PublishTestResults@2
    return report(results, args.junit_xml)


def report(results: list[run_results.NotebookResult], junit_path: str) -> int:
    """Print one line per notebook and each failed case with its message; returns the exit code."""
    counts = {status: sum(result.count(status) for result in results) for status in run_results.STATUSES}
    for result in results:
        verdict = "PASS" if result.passed else "FAIL"
        cases = len(result.cases)
        ado.relay(
            f"{verdict} {result.name}: {cases} case{'s' * (cases != 1)}, {result.state}, "
            f"{result.duration_seconds:.1f}s" + (f" ({result.page_url})" if result.page_url else "")
        )
        for case in result.cases:
            if case.status in ("failed", "error"):
                ado.relay(f"  {case.status.upper()}: {case.classname}.{case.name}: {case.message}")
                details = case.details.strip().splitlines()
                for line in details[-SHOWN_DETAIL_LINES:]:
                    ado.relay(f"    {line}")
                if ado.in_pipeline():
                    ado.log_issue("error", f"{result.name}: {case.name}: {case.message}")
    bad = counts["failed"] + counts["error"]
    ado.relay(
        f"evaluate_runs: {len(results)} notebook{'s' * (len(results) != 1)}, "
        f"{sum(counts.values())} cases: {counts['passed']} passed, {counts['failed']} failed, "
        f"{counts['error']} errors, {counts['skipped']} skipped; JUnit written to {junit_path}"
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
