"""The `spark` fixture: Databricks Connect when a cluster is configured, a small local SparkSession otherwise.

Remote: set DATABRICKS_HOST and DATABRICKS_CLUSTER_ID (plus DATABRICKS_TOKEN or another Databricks auth) and
install `databricks-connect` matching the cluster's runtime. Local: pyspark and Java 17; one session for the
whole run, one core, one shuffle partition and no UI, because start-up dominates the run time of small tests.
"""

import os

import pytest


def _remote_session():
    try:
        from databricks.connect import DatabricksSession
    except ImportError:
        pytest.fail(
            "DATABRICKS_HOST and DATABRICKS_CLUSTER_ID are set but databricks-connect is not installed: "
            "pip install databricks-connect (matching the cluster runtime), or unset them to test on local Spark",
            pytrace=False,
        )
    return DatabricksSession.builder.getOrCreate()  # reads DATABRICKS_HOST/CLUSTER_ID/TOKEN...


def _local_session():
    from pyspark.sql import SparkSession

    return (
        SparkSession.builder.master("local[1]")
        .appName("package2-tests")
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.default.parallelism", "1")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )


@pytest.fixture(scope="session")
def spark():
    remote = bool(os.environ.get("DATABRICKS_HOST") and os.environ.get("DATABRICKS_CLUSTER_ID"))
    session = _remote_session() if remote else _local_session()
    yield session
    if not remote:
        session.stop()
