# Databricks notebook source
# MAGIC %md
# MAGIC # package2 tests on a cluster
# MAGIC Runs unittest cases against the package2 wheel installed on the cluster, on the cluster's `spark`, and exits
# MAGIC with the test summary (README, "Test notebooks") that the CD stage turns into test results.
# MAGIC
# MAGIC Outside Databricks (local debugging, pyspark and Java 17 installed):
# MAGIC `python package2/notebooks/test_transforms.py` prints the same JSON and exits 1 when a test failed.

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
    # Local run: import package2 from the source tree next to this notebook, and start a small local Spark.
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false").getOrCreate()

from package2 import clean_column_names, flag_out_of_range, latest_per_key, with_status

SUITE = "package2"

# COMMAND ----------


class TransformsOnCluster(unittest.TestCase):
    """What a deployment must guarantee: the installed package2 transforms real DataFrames on the cluster."""

    @classmethod
    def setUpClass(cls):
        cls.orders = spark.createDataFrame(
            [(1, "2024-01-01", 10.0), (1, "2024-01-02", -5.0), (2, "2024-01-01", 7.5)],
            ["Order ID", "updatedAt", "amount"],
        )

    def test_with_status_marks_every_row(self):
        rows = with_status(self.orders).select("status").distinct().collect()
        self.assertEqual([row.status for row in rows], ["checked"])

    def test_clean_column_names_gives_snake_case(self):
        self.assertEqual(clean_column_names(self.orders).columns, ["order_id", "updated_at", "amount"])

    def test_latest_per_key_keeps_the_newest_version(self):
        latest = latest_per_key(clean_column_names(self.orders), keys=["order_id"], order_by="updated_at")
        self.assertEqual(sorted((row.order_id, row.amount) for row in latest.collect()), [(1, -5.0), (2, 7.5)])

    def test_negative_amounts_are_flagged(self):
        flagged = flag_out_of_range(self.orders, "amount", minimum=0)
        self.assertEqual(flagged.where("amount_out_of_range").count(), 1)


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
    summary = run_tests(TransformsOnCluster)

# COMMAND ----------

if __name__ == "__main__":
    if dbutils is not None:
        dbutils.notebook.exit(json.dumps(summary))
    else:
        print(json.dumps(summary, indent=2))
        sys.exit(0 if all(test["status"] in ("passed", "skipped") for test in summary["tests"]) else 1)
