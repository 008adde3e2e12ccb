"""Execute one task of a local workspace run (started by job_runs.py, one subprocess per task run).

Usage: python ci_cd_scripts/local_cloud/workspace/runner.py SPEC.json

SPEC.json (written by the emulator): {"kind": "notebook" | "python_file" | "python_wheel", "source_file",
"result_file", "parameters" (widget values), "argv", "package_name", "entry_point", "path"}. The cluster's
installed wheels are on PYTHONPATH. A notebook runs with `dbutils` (notebook.exit, widgets), a lazy `spark`
(a local SparkSession created on first use, when pyspark is importable; `spark.table("samples.tpch.orders")`
answers a small generated stand-in of the workspace's sample table) and `display`. The outcome goes to
result_file as JSON: {"status": "success", "result"} or {"status": "error", "error", "error_trace"}.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import re
import runpy
import sys
import traceback
from pathlib import Path
from typing import Any

HERE = str(Path(__file__).resolve().parent)


class NotebookExit(BaseException):
    """dbutils.notebook.exit(value): stops the notebook; the value becomes notebook_output.result."""

    def __init__(self, value: str):
        super().__init__(value)
        self.value = value


class InputWidgetNotDefined(Exception):
    """Raised by dbutils.widgets.get for a widget that has no value and no default (like the service)."""


class _Widgets:
    def __init__(self, values: dict[str, str]):
        self._values = dict(values)
        self._defaults: dict[str, str] = {}

    def get(self, name: str) -> str:
        if name in self._values:
            return self._values[name]
        if name in self._defaults:
            return self._defaults[name]
        raise InputWidgetNotDefined(f"No input widget named {name} is defined")

    def getArgument(self, name: str, defaultValue: str | None = None) -> str | None:
        try:
            return self.get(name)
        except InputWidgetNotDefined:
            return defaultValue

    def getAll(self) -> dict[str, str]:
        return {**self._defaults, **self._values}

    def text(self, name: str, defaultValue: str = "", label: str | None = None) -> None:
        self._defaults[name] = defaultValue

    def dropdown(self, name: str, defaultValue: str, choices: list[str], label: str | None = None) -> None:
        self._defaults[name] = defaultValue

    combobox = dropdown

    def multiselect(self, name: str, defaultValue: str, choices: list[str], label: str | None = None) -> None:
        self._defaults[name] = defaultValue

    def remove(self, name: str) -> None:
        self._defaults.pop(name, None)

    def removeAll(self) -> None:
        self._defaults.clear()


class _Notebook:
    def exit(self, value: Any) -> None:
        raise NotebookExit(str(value))

    def run(self, *args: Any, **kwargs: Any) -> str:
        raise NotImplementedError("dbutils.notebook.run is not available on the local workspace")


class DBUtils:
    """The part of dbutils the local workspace offers: notebook.exit and widgets."""

    def __init__(self, parameters: dict[str, str]):
        self.widgets = _Widgets(parameters)
        self.notebook = _Notebook()

    def __getattr__(self, name: str) -> Any:
        raise NotImplementedError(f"dbutils.{name} is not available on the local workspace")


def _tpch_orders() -> tuple[str, list[tuple]]:
    """A small, deterministic stand-in for ``samples.tpch.orders`` (same columns and value rules as TPC-H)."""
    import datetime

    statuses, priorities = ("O", "F", "P"), ("1-URGENT", "2-HIGH", "3-MEDIUM", "4-NOT SPECIFIED", "5-LOW")
    rows = [
        (
            key,
            1 + key * 7 % 1500,
            statuses[key % 3],
            round(900.0 + key * 37.5 % 450_000, 2),
            datetime.date(1992, 1, 1) + datetime.timedelta(days=key % 2400),
            priorities[key % 5],
            f"Clerk#{key % 1000:09d}",
            0,
            "local workspace sample row",
        )
        for key in range(1, 1001)
    ]
    schema = (
        "o_orderkey long, o_custkey long, o_orderstatus string, o_totalprice double, o_orderdate date, "
        "o_orderpriority string, o_clerk string, o_shippriority int, o_comment string"
    )
    return schema, rows


# The `samples` catalog of a Databricks workspace, as far as the sample notebooks read it: 1,000 generated rows.
SAMPLE_TABLES = {"samples.tpch.orders": _tpch_orders}


class LazySpark:
    """`spark` as a proxy: the local SparkSession (and its JVM) starts only when a notebook touches it."""

    def __init__(self) -> None:
        self._session = None

    def _get(self) -> Any:
        if self._session is None:
            try:
                from pyspark.sql import SparkSession
            except ImportError as error:
                raise RuntimeError(f"spark is not available on the local workspace: {error}") from None
            builder = SparkSession.builder.master("local[1]").appName("local-workspace-run")
            self._session = (
                builder.config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "1").getOrCreate()
            )
        return self._session

    @property
    def started(self) -> bool:
        return self._session is not None

    def table(self, name: str) -> Any:
        """`spark.table`, plus the sample tables every workspace has (`SAMPLE_TABLES`), generated small."""
        sample = SAMPLE_TABLES.get(name.strip("`").lower())
        if sample is None:
            return self._get().table(name)
        schema, rows = sample()
        return self._get().createDataFrame(rows, schema)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._get(), name)

    def stop(self) -> None:
        if self._session is not None:
            self._session.stop()
            self._session = None


def display(value: Any, *args: Any, **kwargs: Any) -> None:
    show = getattr(value, "show", None)
    if callable(show):
        show()
    else:
        print(value)


def _trace(error: BaseException) -> str:
    """The traceback without the runner's own frames, as the service shows only the notebook's."""
    tb = error.__traceback__
    while tb is not None and (
        tb.tb_frame.f_code.co_filename == __file__ or "runpy" in Path(tb.tb_frame.f_code.co_filename).name
    ):
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(error), error, tb))


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _wheel_entry_point(package_name: str, entry_point: str) -> Any:
    """The entry point named in the package's metadata, else `package_name.entry_point` (as the service does)."""
    for dist in importlib.metadata.distributions():
        if _normalise(dist.metadata["Name"] or "") != _normalise(package_name):
            continue
        for candidate in dist.entry_points:
            if candidate.name == entry_point:
                return candidate.load()
    module = importlib.import_module(package_name.replace("-", "_"))
    return getattr(module, entry_point)


def execute(spec: dict) -> dict:
    kind = spec["kind"]
    spark = LazySpark()
    try:
        if kind == "notebook":
            env = {
                "dbutils": DBUtils(spec.get("parameters") or {}),
                "spark": spark,
                "display": display,
                "displayHTML": print,
            }
            runpy.run_path(spec["source_file"], init_globals=env, run_name="__main__")
        elif kind == "python_file":
            sys.argv = [spec["path"], *spec.get("argv", [])]
            runpy.run_path(
                spec["source_file"], init_globals={"spark": spark, "dbutils": DBUtils({})}, run_name="__main__"
            )
        elif kind == "python_wheel":
            sys.argv = [spec["package_name"], *spec.get("argv", [])]
            function = _wheel_entry_point(spec["package_name"], spec["entry_point"])
            function()
        else:
            raise ValueError(f"unknown task kind {kind}")
        return {"status": "success", "result": None}
    except NotebookExit as done:
        return {"status": "success", "result": done.value}
    except SystemExit as stop:
        if stop.code in (None, 0):
            return {"status": "success", "result": None}
        return {"status": "error", "error": f"SystemExit: {stop.code}", "error_trace": _trace(stop)}
    except BaseException as error:  # the notebook's own failure becomes the run's error
        return {"status": "error", "error": f"{type(error).__name__}: {error}", "error_trace": _trace(error)}
    finally:
        try:
            spark.stop()
        except Exception:
            pass


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if args and args[0] in ("-h", "--help") else 2
    spec = json.loads(Path(args[0]).read_text(encoding="utf-8"))
    # This folder (sys.path[0] when run as a script) must not shadow the run's imports: it holds state.py, jobs.py...
    sys.path[:] = [p for p in sys.path if p and os.path.abspath(p) != HERE]
    outcome = execute(spec)
    result_file = Path(spec["result_file"])
    temp = result_file.with_name(result_file.name + ".tmp")
    temp.write_text(json.dumps(outcome), encoding="utf-8")
    os.replace(temp, result_file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
