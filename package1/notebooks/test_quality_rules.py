# Databricks notebook source
# MAGIC %md
# MAGIC # package1 tests on a cluster
# MAGIC Runs unittest cases against the package1 wheel installed on the cluster and exits with the test summary
# MAGIC (`dbutils.notebook.exit`) that the CD stage turns into test results (run_notebooks.py, evaluate_runs.py):
# MAGIC `{"suite", "tests": [{"name", "classname", "status", "message", "details", "duration_seconds"}]}`
# MAGIC with `status` one of `passed`, `failed`, `error`, `skipped` (README, "Test notebooks").
# MAGIC
# MAGIC Outside Databricks (local debugging): `python package1/notebooks/test_quality_rules.py` prints the same JSON
# MAGIC and exits 1 when a test failed.

# COMMAND ----------

import json
import os
import sys
import time
import traceback
import unittest

try:
    dbutils  # noqa: B018 - defined by Databricks in every notebook
except NameError:
    dbutils = None
    # Local run: import package1 from the source tree next to this notebook.
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import package1
from package1 import check, in_range, matches, not_null, one_of, unique

SUITE = "package1"

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
    """A unittest result that also keeps one entry per test for the test summary."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.entries, self._started = [], {}

    def startTest(self, test):
        self._started[test.id()] = time.perf_counter()
        super().startTest(test)

    def _add(self, test, status, message="", details=""):
        classname, _, name = test.id().rpartition(".")
        self.entries.append(
            {
                "name": name,
                "classname": f"{SUITE}.{classname.rsplit('.', 1)[-1]}",
                "status": status,
                "message": message[:1000],
                "details": details[-20000:],
                "duration_seconds": round(time.perf_counter() - self._started.get(test.id(), time.perf_counter()), 4),
            }
        )

    def addSuccess(self, test):
        super().addSuccess(test)
        self._add(test, "passed")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._add(test, "failed", traceback.format_exception_only(err[0], err[1])[-1].strip(), self.failures[-1][1])

    def addError(self, test, err):
        super().addError(test, err)
        self._add(test, "error", traceback.format_exception_only(err[0], err[1])[-1].strip(), self.errors[-1][1])

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._add(test, "skipped", reason)


def run_tests(*cases):
    """Run the test cases; the test summary (README, "Test notebooks"): {"suite", "tests": [one entry per test]}."""
    suite = unittest.TestSuite(unittest.defaultTestLoader.loadTestsFromTestCase(case) for case in cases)
    result = unittest.TextTestRunner(stream=sys.stdout, verbosity=2, resultclass=_Recorder).run(suite)
    return {"suite": SUITE, "tests": result.entries}


# A notebook runs as __main__; importing this file (e.g. pytest collecting test_*.py) runs nothing.
if __name__ == "__main__":
    summary = run_tests(QualityRulesOnCluster)

# COMMAND ----------

if __name__ == "__main__":
    if dbutils is not None:
        dbutils.notebook.exit(json.dumps(summary))
    else:
        print(json.dumps(summary, indent=2))
        sys.exit(0 if all(test["status"] in ("passed", "skipped") for test in summary["tests"]) else 1)
