-- Databricks notebook source
-- Daily order counts from the table clean_orders writes.

-- COMMAND ----------

SELECT date_trunc('DAY', updated_at) AS day, count(*) AS orders, sum(CAST(amount_out_of_range AS INT)) AS flagged
FROM main.silver.orders
GROUP BY 1
ORDER BY 1
