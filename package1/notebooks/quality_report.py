# Databricks notebook source
# MAGIC %md
# MAGIC # Data-quality report
# MAGIC Checks a table against package1's rules and fails the run when a rule is broken.
# MAGIC package1 is installed on the cluster by the init script the CI/CD pipeline deploys.

# COMMAND ----------

dbutils.widgets.text("table", "samples.tpch.orders")
dbutils.widgets.text("max_rows", "10000")
table = dbutils.widgets.get("table")
max_rows = int(dbutils.widgets.get("max_rows"))

# COMMAND ----------

from package1 import check, in_range, not_null, one_of, unique

rules = [
    not_null("o_orderkey"),
    unique("o_orderkey"),
    in_range("o_totalprice", minimum=0),
    one_of("o_orderstatus", {"O", "F", "P"}),
]
rows = [row.asDict() for row in spark.table(table).limit(max_rows).collect()]
report = check(rows, rules)
print(report.summary())

# COMMAND ----------

display(
    spark.createDataFrame(
        [(rule, count) for rule, count in report.counts_by_rule().items()], "rule string, violations int"
    )
)

# COMMAND ----------

import json

if not report.passed:
    raise ValueError(report.summary())
dbutils.notebook.exit(json.dumps(report.to_dict(max_violations=20)))
