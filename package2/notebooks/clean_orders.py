# Databricks notebook source
# MAGIC %md
# MAGIC # Clean orders
# MAGIC Normalises column names, keeps the latest version of each order and flags suspicious amounts,
# MAGIC using package2 (installed on the cluster by the pipeline's init script).

# COMMAND ----------

dbutils.widgets.text("source_table", "main.raw.orders")
dbutils.widgets.text("target_table", "main.silver.orders")

# COMMAND ----------

from package2 import clean_column_names, flag_out_of_range, latest_per_key, with_ingest_metadata

raw = spark.table(dbutils.widgets.get("source_table"))
orders = latest_per_key(clean_column_names(raw), keys=["order_id"], order_by="updated_at")
orders = flag_out_of_range(with_ingest_metadata(orders, dbutils.widgets.get("source_table")), "amount", minimum=0)

# COMMAND ----------

orders.write.mode("overwrite").saveAsTable(dbutils.widgets.get("target_table"))
display(orders.groupBy("amount_out_of_range").count())
