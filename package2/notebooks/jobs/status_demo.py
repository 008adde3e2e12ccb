# Databricks notebook source
# MAGIC %md
# MAGIC The `with_status` example of Microsoft's CI/CD guide, as a job notebook.

# COMMAND ----------

from package2 import with_status

df = spark.createDataFrame([(1, "a"), (2, "b")], "id int, name string")
display(with_status(df))
