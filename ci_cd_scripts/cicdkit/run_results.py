"""Test-notebook run records and how they are judged: the contract between `run_notebooks.py` and `evaluate_runs.py`.

`run_notebooks.py` writes one record per notebook (`write_record`, ``DIR/<safe-name>.json``); `evaluate_runs.py`
reads them back (`read_records`) and turns each into test cases (`judge`), which `junit.py` writes as JUnit XML.
Nothing here talks to a workspace or prints; the decisions are pure so they get fast unit tests.

A record holds what the Jobs API said (the Jobs 2.1 reference: ``runs/get`` and ``runs/get-output``):
``{"format", "notebook_path", "name", "run": <runs/get>, "output": <runs/get-output of the task run> | null,
"timed_out": bool, "timeout_seconds", "error": str | null}``. ``error`` is set when no run could be judged from the
service (the submit itself failed); ``timed_out`` when `run_notebooks.py` cancelled the run at its deadline.

A notebook reports its own tests with the *test summary* (README, "Test notebooks"): it ends with
``dbutils.notebook.exit(json.dumps({"tests": [{"name", "classname", "status", "message", "details",
"duration_seconds"}, ...]}))``, ``status`` one of passed / failed / error / skipped. Any other exit value is not
a summary: the run is then one case, judged by its state. A value that claims to be a summary (a JSON object with
"tests") but is malformed is an error case saying what is wrong, never a silent pass.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import atomic
from .errors import InputError

RECORD_FORMAT = "cicdkit.notebook-run/1"
STATUSES = ("passed", "failed", "error", "skipped")
TERMINAL_LIFE_CYCLE_STATES = frozenset({"TERMINATED", "SKIPPED", "INTERNAL_ERROR"})

# Databricks error traces are coloured for the notebook UI; JUnit viewers show the escape codes raw.
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
# What XML 1.0 cannot hold at all (not even escaped): control characters other than tab, LF, CR; lone surrogates.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass(frozen=True)
class Case:
    """One test case: a test from the notebook's summary, or the whole run when there is no summary."""

    name: str
    classname: str
    status: str  # one of STATUSES
    duration_seconds: float = 0.0
    message: str = ""
    details: str = ""
    kind: str = ""  # the failure's type in JUnit (AssertionError, RunFailed, Timeout...)


@dataclass(frozen=True)
class NotebookResult:
    """One notebook's run, judged: its cases and what the service said about the run."""

    name: str
    notebook_path: str
    cases: tuple[Case, ...]
    state: str  # "TERMINATED SUCCESS", "TERMINATED FAILED", "SKIPPED", "timed out"...
    duration_seconds: float = 0.0
    start_time_ms: int | None = None
    page_url: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        return all(case.status in ("passed", "skipped") for case in self.cases)

    def count(self, status: str) -> int:
        return sum(case.status == status for case in self.cases)


def clean_text(text: object) -> str:
    """Text fit for an XML file and a log: ANSI colour codes removed, characters XML cannot hold dropped."""
    return _NOT_XML.sub("", _ANSI_ESCAPE.sub("", str(text)))


def safe_name(name: str) -> str:
    """A file name for a notebook's record: its path with separators and odd characters turned into ``_``."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name.strip("/")).strip("._") or "notebook"
    return cleaned[:200]


def record(
    *,
    notebook_path: str,
    name: str,
    run: Mapping[str, Any] | None,
    output: Mapping[str, Any] | None,
    timed_out: bool = False,
    timeout_seconds: float | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    """The record `run_notebooks.py` writes for one notebook (see the module docstring)."""
    return {
        "format": RECORD_FORMAT,
        "notebook_path": notebook_path,
        "name": name,
        "run": dict(run) if run is not None else None,
        "output": dict(output) if output is not None else None,
        "timed_out": timed_out,
        "timeout_seconds": timeout_seconds,
        "error": error,
    }


def write_record(folder: Path, data: Mapping[str, Any]) -> Path:
    """Write `data` to ``folder/<safe name>.json`` atomically; returns the path."""
    path = Path(folder) / f"{safe_name(str(data['name']))}.json"
    atomic.write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path


def read_records(folder: Path) -> list[dict[str, Any]]:
    """Every record in `folder`, by file name. `InputError` for a missing folder, no records, or a file that is
    not a record (each names the file and what to do)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"runs folder {folder} does not exist", hint="pass the --out-dir of run_notebooks.py")
    paths = sorted(p for p in folder.glob("*.json") if p.is_file())
    if not paths:
        raise InputError(f"no run records (*.json) in {folder}", hint="run run_notebooks.py --out-dir first")
    records = []
    for path in paths:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise InputError(f"{path}: not a readable run record ({error})") from None
        if not isinstance(data, dict) or data.get("format") != RECORD_FORMAT:
            raise InputError(
                f'{path}: not a run record of run_notebooks.py (no "format": "{RECORD_FORMAT}")',
                hint="keep only run_notebooks.py's records in the runs folder",
            )
        if not isinstance(data.get("name"), str) or not data["name"]:
            raise InputError(f"{path}: run record without a notebook name")
        records.append(data)
    return records


class SummaryError(ValueError):
    """The notebook's exit value claims to be a test summary but is not a valid one."""


def parse_summary(result: object, *, default_classname: str) -> list[Case] | None:
    """The cases of a test summary, None when `result` is not a summary; `SummaryError` when it is malformed."""
    if not isinstance(result, str):
        return None
    try:
        data = json.loads(result)
    except (json.JSONDecodeError, RecursionError):
        return None
    if not isinstance(data, dict) or "tests" not in data:
        return None
    tests = data["tests"]
    if not isinstance(tests, list):
        raise SummaryError(f'"tests" must be a list, not {type(tests).__name__}')
    if not tests:
        raise SummaryError("the summary reports no tests: nothing was checked")
    cases = []
    for index, entry in enumerate(tests):
        where = f"tests[{index}]"
        if not isinstance(entry, dict):
            raise SummaryError(f"{where} must be an object")
        name, status = entry.get("name"), entry.get("status")
        if not isinstance(name, str) or not name.strip():
            raise SummaryError(f'{where} has no "name"')
        if status not in STATUSES:
            raise SummaryError(f'{where} ({name}): "status" must be one of {", ".join(STATUSES)}, not {status!r}')
        duration = entry.get("duration_seconds", 0)
        if isinstance(duration, bool) or not isinstance(duration, (int, float)) or duration < 0:
            raise SummaryError(f'{where} ({name}): "duration_seconds" must be a number of seconds')
        for key in ("classname", "message", "details"):
            if key in entry and not isinstance(entry[key], str):
                raise SummaryError(f'{where} ({name}): "{key}" must be a string')
        cases.append(
            Case(
                name=_one_line(name),
                classname=_one_line(entry.get("classname") or default_classname),
                status=status,
                duration_seconds=float(duration),
                message=clean_text(entry.get("message", "")),
                details=clean_text(entry.get("details", "")),
                kind={"failed": "AssertionError", "error": "Error"}.get(status, ""),
            )
        )
    return cases


def judge(
    data: Mapping[str, Any], *, max_duration: float | None = None, suite_name: str = "notebooks"
) -> NotebookResult:
    """The cases of one record: the summary's tests when the run succeeded with one, else the run as one case.

    Failed, timed out, cancelled, skipped and internal-error runs are failure/error cases carrying the run's state
    message and error trace. `max_duration` (seconds) makes a slower run (its task's execution time) a failure.
    """
    name = str(data["name"])
    path = str(data.get("notebook_path") or name)
    classname = _one_line(".".join(part for part in [suite_name, *name.strip("/").split("/")] if part))
    run = data.get("run") if isinstance(data.get("run"), Mapping) else None
    output = data.get("output") if isinstance(data.get("output"), Mapping) else None

    def result(state: str, cases: list[Case], notes: tuple[str, ...] = ()) -> NotebookResult:
        return NotebookResult(
            name=name,
            notebook_path=path,
            cases=tuple(cases),
            state=state,
            duration_seconds=duration,
            start_time_ms=_positive_int((run or {}).get("start_time")),
            page_url=str((run or {}).get("run_page_url") or ""),
            notes=notes,
        )

    duration = _run_seconds(run) if run else 0.0

    def whole_run(status: str, message: str, details: str = "", kind: str = "") -> Case:
        return Case(
            name=name.rsplit("/", 1)[-1],
            classname=classname,
            status=status,
            duration_seconds=duration,
            message=clean_text(message),
            details=clean_text(details),
            kind=kind,
        )

    if data.get("error") and run is None:
        return result(
            "not submitted", [whole_run("error", f"the run was not submitted: {data['error']}", kind="SubmitFailed")]
        )
    if run is None:
        return result("unknown", [whole_run("error", "the record holds no run", kind="NoRun")])
    state = run.get("state") if isinstance(run.get("state"), Mapping) else {}
    life_cycle, result_state = str(state.get("life_cycle_state") or ""), str(state.get("result_state") or "")
    state_message = str(state.get("state_message") or "")
    error, trace = _output_error(output)
    label = " ".join(part for part in (life_cycle, result_state) if part) or "no state"

    if data.get("timed_out"):
        limit = data.get("timeout_seconds")
        after = f" after {limit:g} s" if isinstance(limit, (int, float)) else ""
        return result(
            "timed out",
            [
                whole_run(
                    "error",
                    f"timed out{after}: run_notebooks.py cancelled the run at its --timeout",
                    trace or error,
                    kind="Timeout",
                )
            ],
        )
    if data.get("error"):
        return result(
            label, [whole_run("error", f"{data['error']} (run state {label})", trace or error, kind="Unreadable")]
        )
    if life_cycle not in TERMINAL_LIFE_CYCLE_STATES:
        return result(label, [whole_run("error", f"the run did not finish (state {label})", kind="Unfinished")])
    if life_cycle == "SKIPPED":
        return result(
            label, [whole_run("error", f"the run was skipped: {state_message or 'no reason given'}", kind="Skipped")]
        )
    if life_cycle == "INTERNAL_ERROR":
        return result(
            label,
            [
                whole_run(
                    "error",
                    f"the run ended with an internal error: {state_message or error}",
                    trace,
                    kind="InternalError",
                )
            ],
        )
    if result_state == "CANCELED":
        return result(
            label,
            [
                whole_run(
                    "error",
                    f"the run was cancelled: {state_message or 'by a user or the service'}",
                    trace,
                    kind="Cancelled",
                )
            ],
        )
    if result_state == "TIMEDOUT":
        return result(
            label,
            [
                whole_run(
                    "error", f"the run timed out on Databricks: {state_message}".rstrip(": "), trace, kind="Timeout"
                )
            ],
        )
    if result_state not in ("SUCCESS",):
        message = error or state_message or f"the run ended {label}"
        return result(label, [whole_run("failed", message, trace or state_message, kind="RunFailed")])

    notebook_output = (output or {}).get("notebook_output") if output else None
    notebook_output = notebook_output if isinstance(notebook_output, Mapping) else {}
    slow = _too_slow(run, max_duration)
    if notebook_output.get("truncated"):
        return result(
            label,
            [
                whole_run(
                    "error",
                    "the notebook's exit value was truncated by Databricks (over 5 MB): its test summary cannot be "
                    "read; keep the summary short (messages and details are for failures)",
                    kind="TruncatedOutput",
                )
            ],
            notes=("output truncated",),
        )
    try:
        cases = parse_summary(notebook_output.get("result"), default_classname=classname)
    except SummaryError as problem:
        return result(
            label, [whole_run("error", f"the notebook's test summary is malformed: {problem}", kind="MalformedSummary")]
        )
    if cases is None:
        cases = [whole_run("passed", "")]
    if slow:
        cases.append(whole_run("failed", slow, kind="TooSlow"))
    return result(label, cases)


def _one_line(text: str) -> str:
    return " ".join(clean_text(text).split())


def _positive_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _run_seconds(run: Mapping[str, Any]) -> float:
    """Wall time of the run: run_duration (multi-task format), else end - start, else the phases' sum."""
    for key in ("run_duration",):
        value = _positive_int(run.get(key))
        if value:
            return value / 1000
    start, end = _positive_int(run.get("start_time")), _positive_int(run.get("end_time"))
    if start and end and end >= start:
        return (end - start) / 1000
    phases = [_positive_int(run.get(key)) or 0 for key in ("setup_duration", "execution_duration", "cleanup_duration")]
    return sum(phases) / 1000


def _execution_seconds(run: Mapping[str, Any]) -> float:
    """Time the notebook itself ran: the task's execution_duration when known (cluster start-up excluded)."""
    tasks = run.get("tasks") if isinstance(run.get("tasks"), list) else []
    durations = [_positive_int(task.get("execution_duration")) for task in tasks if isinstance(task, Mapping)]
    known = [value for value in durations if value]
    if known:
        return sum(known) / 1000
    value = _positive_int(run.get("execution_duration"))
    return value / 1000 if value else _run_seconds(run)


def _too_slow(run: Mapping[str, Any], max_duration: float | None) -> str:
    if max_duration is None:
        return ""
    seconds = _execution_seconds(run)
    if seconds > max_duration:
        return f"the notebook ran {seconds:.1f} s, over --max-duration {max_duration:g} s"
    return ""


def _output_error(output: Mapping[str, Any] | None) -> tuple[str, str]:
    if not output:
        return "", ""
    return clean_text(output.get("error") or ""), clean_text(output.get("error_trace") or "")
