"""JUnit XML for judged notebook runs, in the form Azure Pipelines' PublishTestResults@2 reads (testResultsFormat:
JUnit) and the Apache Ant JUnit schema validates: one ``<testsuite>`` per notebook, one ``<testcase>`` per case.

Built with junitparser (https://github.com/weiwei/junitparser), never by string concatenation: every name, message
and trace is escaped by the XML library. Each suite carries the attributes and children the Ant schema requires
(package, id, hostname, timestamp, properties, system-out, system-err), in its order. The file is written
atomically (`atomic.py`).
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Sequence
from urllib.parse import urlsplit

import junitparser

from . import atomic
from .run_results import Case, NotebookResult


class _Suite(junitparser.TestSuite):
    """A testsuite with the two attributes the Ant schema requires inside ``<testsuites>``."""

    package = junitparser.Attr()
    id = junitparser.IntAttr()


def build(results: Sequence[NotebookResult], *, suite_name: str = "notebooks") -> junitparser.JUnitXml:
    """The JUnit document: one suite per notebook result, in the given order."""
    document = junitparser.JUnitXml()
    for index, result in enumerate(results):
        suite = _Suite(result.name)
        suite.package = suite_name
        suite.id = index
        suite.hostname = urlsplit(result.page_url).hostname or "databricks"
        suite.timestamp = _timestamp(result.start_time_ms)
        suite.add_property("notebook_path", result.notebook_path)
        suite.add_property("state", result.state)
        if result.page_url:
            suite.add_property("run_page_url", result.page_url)
        for note in result.notes:
            suite.add_property("note", note)
        suite.add_testcases([_testcase(case) for case in result.cases])
        suite.append(junitparser.SystemOut(""))
        suite.append(junitparser.SystemErr(""))
        # time is the notebook run's wall time, not the sum of its cases (setup and the cluster count too).
        suite.time = round(max(result.duration_seconds, suite.time or 0.0), 3)
        document.add_testsuite(suite)
    return document


def write(path: str | os.PathLike[str], results: Sequence[NotebookResult], *, suite_name: str = "notebooks") -> None:
    """Write the JUnit file for `results` to `path`, atomically."""
    document = build(results, suite_name=suite_name)
    with atomic.open_for_replace(path) as stream:
        document.write(stream)


def _testcase(case: Case) -> junitparser.TestCase:
    testcase = junitparser.TestCase(case.name, case.classname, round(case.duration_seconds, 3))
    outcome: junitparser.Element | None = None
    if case.status == "failed":
        outcome = junitparser.Failure(case.message or "failed", case.kind or "AssertionError")
    elif case.status == "error":
        outcome = junitparser.Error(case.message or "error", case.kind or "Error")
    elif case.status == "skipped":
        outcome = junitparser.Skipped(case.message or None)
    if outcome is not None:
        if case.details:
            outcome.text = case.details
        testcase.result = [outcome]
    return testcase


def _timestamp(start_time_ms: int | None) -> str:
    """ISO 8601 without a zone (the schema's pattern), in UTC: the run's start, else now."""
    moment = (
        datetime.datetime.fromtimestamp(start_time_ms / 1000, tz=datetime.timezone.utc)
        if start_time_ms
        else datetime.datetime.now(tz=datetime.timezone.utc)
    )
    return moment.strftime("%Y-%m-%dT%H:%M:%S")
