-- Databricks notebook source
-- MAGIC %md
-- MAGIC Orders per status: the values the `one_of("o_orderstatus", ...)` rule allows.

-- COMMAND ----------

SELECT o_orderstatus, count(*) AS orders, min(o_totalprice) AS min_price
FROM samples.tpch.orders
GROUP BY o_orderstatus
ORDER BY orders DESC
