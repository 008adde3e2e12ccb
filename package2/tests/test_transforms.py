"""Unit tests of package2's transformations on a real SparkSession (see conftest.py)."""

import datetime as dt

import pytest

from package2 import clean_column_names, flag_out_of_range, latest_per_key, with_ingest_metadata, with_status


def test_with_status_adds_checked(spark):
    df = spark.createDataFrame([(1, "a"), (2, "b")], "id int, name string")
    result = with_status(df)
    assert result.columns == ["id", "name", "status"]
    assert {row.status for row in result.collect()} == {"checked"}
    assert df.columns == ["id", "name"]  # the input is untouched


def test_clean_column_names(spark):
    df = spark.createDataFrame([(1, 2, 3, 4)], ["Order ID", "orderId", "order_id", " %% "])
    assert clean_column_names(df).columns == ["order_id", "order_id_2", "order_id_3", "column"]


def test_with_ingest_metadata(spark):
    df = spark.createDataFrame([(1,)], "id int")
    row = with_ingest_metadata(df, "crm/orders").collect()[0]
    assert row._source == "crm/orders"
    assert isinstance(row._ingested_at, dt.datetime)
    with pytest.raises(ValueError):
        with_ingest_metadata(df, "")


def test_latest_per_key_keeps_the_newest_row(spark):
    rows = [
        ("a", 1, "old"),
        ("a", 3, "new"),
        ("a", None, "unknown"),
        ("b", 2, "only"),
    ]
    df = spark.createDataFrame(rows, "key string, version int, value string")
    result = {row.key: row.value for row in latest_per_key(df, ["key"], "version").collect()}
    assert result == {"a": "new", "b": "only"}
    assert latest_per_key(df, ["key"], "version").columns == ["key", "version", "value"]


def test_latest_per_key_validates_columns(spark):
    df = spark.createDataFrame([("a", 1)], "key string, version int")
    with pytest.raises(ValueError, match="unknown column"):
        latest_per_key(df, ["nope"], "version")
    with pytest.raises(ValueError):
        latest_per_key(df, [], "version")


def test_flag_out_of_range(spark):
    df = spark.createDataFrame([(-1.0,), (5.0,), (11.0,), (None,)], "amount double")
    flags = [row.amount_out_of_range for row in flag_out_of_range(df, "amount", 0, 10).collect()]
    assert flags == [True, False, True, None]
    with pytest.raises(ValueError):
        flag_out_of_range(df, "amount")
