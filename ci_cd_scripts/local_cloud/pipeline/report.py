"""What the runner prints besides the live log: the plan (``--list``) and the summary table at the end."""

from __future__ import annotations

from collections.abc import Iterable

from .engine import StageOutcome
from .plan import Plan
from .variables import Variables


def _duration(seconds: float) -> str:
    if seconds <= 0:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"


def plan_lines(plan: Plan, variables: Variables) -> list[str]:
    """Stages → jobs → steps with resolved display names and conditions; nothing runs."""
    lines = []
    for stage in plan.stages:
        after = f" (after {', '.join(stage.depends_on)})" if stage.depends_on else ""
        lines.append(f"stage {stage.id}: {stage.display_name}{after}  [if {stage.condition}]")
        for job in stage.jobs:
            after = f" (after {', '.join(job.depends_on)})" if job.depends_on else ""
            where = f", environment {job.environment}" if job.environment else ""
            lines.append(f"  {job.kind} {job.id}: {job.display_name}{after}{where}  [if {job.condition}]")
            for index, step in enumerate(job.steps, 1):
                what = str(step.body["task"]) if step.task else step.kind
                flags = [f"if {step.condition}"] if step.condition != "succeeded()" else []
                if not step.enabled:
                    flags.append("disabled")
                if step.continue_on_error:
                    flags.append("continueOnError")
                if step.timeout_minutes:
                    flags.append(f"timeout {step.timeout_minutes:g} min")
                extra = f"  [{'; '.join(flags)}]" if flags else ""
                name = f" (name {step.name})" if step.name else ""
                lines.append(f"    {index:>2}. {variables.expand(step.display_name)} <{what}>{name}{extra}")
    return lines


def pipeline_result(outcomes: Iterable[StageOutcome]) -> str:
    results = [outcome.result for outcome in outcomes]
    if any(result in ("Failed", "Canceled") for result in results):
        return "Failed"
    if any(result == "SucceededWithIssues" for result in results):
        return "SucceededWithIssues"
    return "Succeeded"


def summary_lines(outcomes: list[StageOutcome], mask=lambda text: text) -> list[str]:
    """The table of stages → jobs → steps with result and time, the test totals and the files collected."""
    rows: list[tuple[str, str, str]] = []
    tests = {"passed": 0, "failed": 0, "skipped": 0}
    junit: list[str] = []
    summaries: list[str] = []
    for stage in outcomes:
        note = f" — {stage.message}" if stage.message else ""
        rows.append((f"{stage.stage.id}{note}", stage.result, _duration(stage.seconds)))
        for job in stage.jobs:
            note = f" — {job.message}" if job.message else ""
            rows.append((f"  {job.job.id}{note}", job.result, _duration(job.seconds)))
            for step in job.steps:
                note = f" — {step.message}" if step.message else ""
                rows.append((f"    {step.display_name}{note}", step.result, _duration(step.seconds)))
            if job.run:
                for key in tests:
                    tests[key] += job.run.tests[key]
                junit += job.run.tests["files"]
                summaries += job.run.summaries
    rows = [(mask(name), result, time) for name, result, time in rows]
    width = min(100, max(len(row[0]) for row in rows) if rows else 10)
    lines = ["", "Summary", f"{'stage / job / step':<{width}}  {'result':<19}  time"]
    lines += [f"{name:<{width}}  {result:<19}  {time}".rstrip() for name, result, time in rows]
    lines.append("")
    if junit:
        lines.append(f"Tests: {tests['passed']} passed, {tests['failed']} failed, {tests['skipped']} skipped")
        lines += [f"  JUnit: {path}" for path in junit]
    else:
        lines.append("Tests: no test results were published")
    lines += [f"  Summary: {path}" for path in dict.fromkeys(summaries)]
    lines.append(f"Pipeline: {pipeline_result(outcomes)}")
    return lines
