# Databricks notebook source
# MAGIC %md
# MAGIC # package1 tests on a cluster
# MAGIC Runs unittest cases against the package1 wheel installed on the cluster and exits with a JSON summary
# MAGIC (`dbutils.notebook.exit`) that the CD stage turns into test results:
# MAGIC `{"suite", "tests", "failures", "errors", "skipped", "passed", "duration_seconds", "results": [{"name", "status", "message", "duration_seconds"}]}`
# MAGIC with `status` one of `passed`, `failed`, `error`, `skipped`.
# MAGIC
# MAGIC Outside Databricks (local debugging): `python package1/notebooks/test_quality_rules.py` prints the same JSON
# MAGIC and exits 1 when a test failed.

# COMMAND ----------

import json
import os
import sys
import time
import unittest

try:
    dbutils  # noqa: B018 - defined by Databricks in every notebook
except NameError:
    dbutils = None
    # Local run: import package1 from the source tree next to this notebook.
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import package1
from package1 import check, in_range, matches, not_null, one_of, unique

# COMMAND ----------


class QualityRulesOnCluster(unittest.TestCase):
    """What a deployment must guarantee: the installed package1 works with real rows."""

    ROWS = [
        {"id": 1, "amount": 5.0, "email": "a@example.com", "status": "open"},
        {"id": 2, "amount": -1.0, "email": "not-an-email", "status": "open"},
        {"id": 2, "amount": None, "email": None, "status": "gone"},
    ]

    def test_installed_version_is_importable(self):
        self.assertTrue(package1.__version__)

    def test_clean_batch_passes(self):
        report = check(self.ROWS[:1], [not_null("id"), in_range("amount", minimum=0)])
        self.assertTrue(report.passed, report.summary())

    def test_each_rule_finds_its_violation(self):
        rules = [
            unique("id"),
            in_range("amount", minimum=0),
            matches("email", r"[^@\s]+@[^@\s]+\.[a-z]+"),
            one_of("status", {"open", "closed"}),
        ]
        report = check(self.ROWS, rules)
        self.assertEqual(report.failed_rows(), [1, 2])
        self.assertEqual(sum(report.counts_by_rule().values()), 4)

    def test_report_is_json_ready(self):
        json.dumps(check(self.ROWS, [not_null("email")]).to_dict())


# COMMAND ----------


class _Recorder(unittest.TextTestResult):
    """A unittest result that also keeps one record per test for the JSON summary."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.records = []
        self._started = {}

    def startTest(self, test):
        self._started[test.id()] = time.perf_counter()
        super().startTest(test)

    def _record(self, test, status, message=""):
        began = self._started.get(test.id(), time.perf_counter())
        self.records.append(
            {
                "name": test.id(),
                "status": status,
                "message": message[-4000:],
                "duration_seconds": round(time.perf_counter() - began, 4),
            }
        )

    def addSuccess(self, test):
        super().addSuccess(test)
        self._record(test, "passed")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._record(test, "failed", self.failures[-1][1])

    def addError(self, test, err):
        super().addError(test, err)
        self._record(test, "error", self.errors[-1][1])

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._record(test, "skipped", reason)


def run_tests(*cases):
    """Run the test cases and return the JSON-ready summary."""
    suite = unittest.TestSuite(unittest.defaultTestLoader.loadTestsFromTestCase(case) for case in cases)
    runner = unittest.TextTestRunner(stream=sys.stdout, verbosity=2, resultclass=_Recorder)
    began = time.perf_counter()
    result = runner.run(suite)
    return {
        "suite": "package1",
        "tests": result.testsRun,
        "failures": len(result.failures),
        "errors": len(result.errors),
        "skipped": len(result.skipped),
        "passed": result.wasSuccessful(),
        "duration_seconds": round(time.perf_counter() - began, 3),
        "results": result.records,
    }


# A notebook runs as __main__; importing this file (e.g. pytest collecting test_*.py) runs nothing.
if __name__ == "__main__":
    summary = run_tests(QualityRulesOnCluster)

# COMMAND ----------

if __name__ == "__main__":
    if dbutils is not None:
        dbutils.notebook.exit(json.dumps(summary))
    else:
        print(json.dumps(summary, indent=2))
        sys.exit(0 if summary["passed"] else 1)
