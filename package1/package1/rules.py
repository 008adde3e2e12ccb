"""Rules a row must satisfy, and `check`, which applies them to a batch of rows.

A row is a mapping from column name to value (a dict, or anything with ``.get``/``[]``; a Spark ``Row``
converts with ``row.asDict()``). A missing column counts as ``None``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from package1.report import Report, Violation

Row = Mapping[str, Any]


@dataclass(frozen=True)
class Rule:
    """A named check of one column. `test(value) -> reason or None` decides a single row.

    Rules that need every row (``unique``) set `needs_all_rows` and get the list of values instead, returning
    ``{row_index: reason}``.
    """

    name: str
    column: str
    test: Callable[[Any], str | None] | None = None
    test_all: Callable[[list[Any]], dict[int, str]] | None = None

    @property
    def needs_all_rows(self) -> bool:
        return self.test_all is not None


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def not_null(column: str) -> Rule:
    """The column has a value (not None, not NaN; an empty string counts as missing too)."""

    def test(value: Any) -> str | None:
        if _is_missing(value) or (isinstance(value, str) and not value.strip()):
            return "is missing"
        return None

    return Rule(f"not_null({column})", column, test=test)


def in_range(column: str, minimum: float | None = None, maximum: float | None = None) -> Rule:
    """The column is a number within [minimum, maximum] (either bound may be left open). Missing values pass."""
    if minimum is None and maximum is None:
        raise ValueError("in_range needs a minimum, a maximum or both")
    if minimum is not None and maximum is not None and minimum > maximum:
        raise ValueError(f"in_range minimum {minimum} is above maximum {maximum}")

    def test(value: Any) -> str | None:
        if _is_missing(value):
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"is not a number ({type(value).__name__})"
        if minimum is not None and value < minimum:
            return f"is below {minimum}"
        if maximum is not None and value > maximum:
            return f"is above {maximum}"
        return None

    bounds = f"{'' if minimum is None else minimum}..{'' if maximum is None else maximum}"
    return Rule(f"in_range({column}, {bounds})", column, test=test)


def matches(column: str, pattern: str) -> Rule:
    """The column is a string matching the regular expression entirely. Missing values pass."""
    compiled = re.compile(pattern)

    def test(value: Any) -> str | None:
        if _is_missing(value):
            return None
        if not isinstance(value, str):
            return f"is not a string ({type(value).__name__})"
        return None if compiled.fullmatch(value) else f"does not match {pattern}"

    return Rule(f"matches({column})", column, test=test)


def one_of(column: str, allowed: Iterable[Any]) -> Rule:
    """The column holds one of the allowed values. Missing values pass."""
    allowed = frozenset(allowed)
    shown = ", ".join(sorted(map(str, allowed)))

    def test(value: Any) -> str | None:
        if _is_missing(value):
            return None
        return None if value in allowed else f"is not one of {shown}"

    return Rule(f"one_of({column})", column, test=test)


def unique(column: str) -> Rule:
    """No two rows share a value in the column; every repeat after the first is a violation. Missing values pass."""

    def test_all(values: list[Any]) -> dict[int, str]:
        first_seen: dict[Any, int] = {}
        repeats: dict[int, str] = {}
        for index, value in enumerate(values):
            if _is_missing(value):
                continue
            if value in first_seen:
                repeats[index] = f"duplicates row {first_seen[value]}"
            else:
                first_seen[value] = index
        return repeats

    return Rule(f"unique({column})", column, test_all=test_all)


def _value(row: Row, column: str) -> Any:
    try:
        return row[column]
    except (KeyError, IndexError, TypeError):
        return None


def check(rows: Iterable[Row], rules: Iterable[Rule]) -> Report:
    """Apply every rule to every row; violations are ordered by row, then by the order of the rules."""
    rows = list(rows)
    rules = list(rules)
    names = [rule.name for rule in rules]
    if len(set(names)) != len(names):
        raise ValueError("two rules have the same name; give each column/rule pair once")
    found: list[tuple[int, int, Violation]] = []
    for rule_index, rule in enumerate(rules):
        values = [_value(row, rule.column) for row in rows]
        if rule.needs_all_rows:
            reasons = rule.test_all(values).items()
        else:
            reasons = ((index, rule.test(value)) for index, value in enumerate(values))
        for index, reason in reasons:
            if reason:
                found.append((index, rule_index, Violation(index, rule.name, rule.column, values[index], reason)))
    found.sort(key=lambda item: (item[0], item[1]))
    return Report(rows_checked=len(rows), rules=names, violations=[violation for _, _, violation in found])
