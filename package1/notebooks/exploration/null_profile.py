# Databricks notebook source
# MAGIC %md
# MAGIC Share of missing values per column of a table (exploration; not run by the pipeline).

# COMMAND ----------

dbutils.widgets.text("table", "samples.nyctaxi.trips")
df = spark.table(dbutils.widgets.get("table")).limit(5000)

# COMMAND ----------

from package1 import check, not_null

rows = [row.asDict() for row in df.collect()]
report = check(rows, [not_null(column) for column in df.columns])
for rule, count in report.counts_by_rule().items():
    print(f"{rule}: {count / max(len(rows), 1):.1%} missing")
