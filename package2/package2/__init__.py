"""Spark DataFrame transformations: each function takes a DataFrame and returns a new one."""

from package2.transforms import (
    clean_column_names,
    flag_out_of_range,
    latest_per_key,
    with_ingest_metadata,
    with_status,
)

__version__ = "1.0.0"
__all__ = ["clean_column_names", "flag_out_of_range", "latest_per_key", "with_ingest_metadata", "with_status"]
