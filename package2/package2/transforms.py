"""DataFrame in, DataFrame out: the transformations our jobs share. No function triggers a Spark action."""

from __future__ import annotations

import re
from collections.abc import Sequence

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F


def with_status(df: DataFrame) -> DataFrame:
    """Add a `status` column set to "checked" (the example transformation of Microsoft's CI/CD guide)."""
    return df.withColumn("status", F.lit("checked"))


def _snake(name: str) -> str:
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name.strip())
    name = re.sub(r"[^0-9A-Za-z]+", "_", name).strip("_").lower()
    return name or "column"


def clean_column_names(df: DataFrame) -> DataFrame:
    """Rename columns to lower_snake_case; clashes get a numeric suffix (`id`, `id_2`)."""
    taken: set[str] = set()
    names = []
    for column in df.columns:
        candidate = base = _snake(column)
        counter = 2
        while candidate in taken:
            candidate = f"{base}_{counter}"
            counter += 1
        taken.add(candidate)
        names.append(candidate)
    return df.toDF(*names)


def with_ingest_metadata(df: DataFrame, source: str) -> DataFrame:
    """Add `_ingested_at` (current timestamp) and `_source` (where the rows came from)."""
    if not source:
        raise ValueError("source must name where the rows came from")
    return df.withColumn("_ingested_at", F.current_timestamp()).withColumn("_source", F.lit(source))


def latest_per_key(df: DataFrame, keys: Sequence[str], order_by: str) -> DataFrame:
    """Keep one row per key: the one with the greatest `order_by` (nulls last). Ties keep an arbitrary one."""
    if not keys:
        raise ValueError("keys must name at least one column")
    missing = [column for column in (*keys, order_by) if column not in df.columns]
    if missing:
        raise ValueError(f"unknown column(s): {', '.join(missing)}")
    window = Window.partitionBy(*keys).orderBy(F.col(order_by).desc_nulls_last())
    return df.withColumn("_rank", F.row_number().over(window)).where(F.col("_rank") == 1).drop("_rank")


def flag_out_of_range(
    df: DataFrame, column: str, minimum: float | None = None, maximum: float | None = None
) -> DataFrame:
    """Add `<column>_out_of_range`: true when the value is outside [minimum, maximum], null when the value is null."""
    if minimum is None and maximum is None:
        raise ValueError("give a minimum, a maximum or both")
    value = F.col(column)
    outside = F.lit(False)
    if minimum is not None:
        outside = outside | (value < F.lit(minimum))
    if maximum is not None:
        outside = outside | (value > F.lit(maximum))
    return df.withColumn(f"{column}_out_of_range", F.when(value.isNull(), F.lit(None)).otherwise(outside))
