"""Unit tests of package1's rules and report."""

import math

import pytest

from package1 import Report, check, in_range, matches, not_null, one_of, unique

ORDERS = [
    {"order_id": 1, "amount": 10.5, "email": "ann@example.com", "status": "open"},
    {"order_id": 2, "amount": -3, "email": "bob@example", "status": "shipped"},
    {"order_id": 2, "amount": None, "email": None, "status": "lost"},
    {"order_id": None, "amount": "12", "email": "cy@example.org", "status": "cancelled"},
]


def test_clean_rows_pass():
    report = check(ORDERS[:1], [not_null("order_id"), in_range("amount", minimum=0)])
    assert report.passed
    assert report.summary() == "all 2 rules passed on 1 rows"
    assert report.failed_rows() == []


def test_not_null_flags_none_nan_and_blank():
    rows = [{"a": None}, {"a": math.nan}, {"a": "  "}, {"a": 0}, {}]
    report = check(rows, [not_null("a")])
    assert report.failed_rows() == [0, 1, 2, 4]
    assert {v.reason for v in report.violations} == {"is missing"}


def test_in_range_bounds_and_types():
    rows = [{"x": -1}, {"x": 0}, {"x": 100}, {"x": 101}, {"x": "5"}, {"x": True}, {"x": None}]
    report = check(rows, [in_range("x", minimum=0, maximum=100)])
    reasons = {v.row: v.reason for v in report.violations}
    assert reasons == {
        0: "is below 0",
        3: "is above 100",
        4: "is not a number (str)",
        5: "is not a number (bool)",
    }


def test_in_range_needs_a_bound_and_a_consistent_one():
    with pytest.raises(ValueError):
        in_range("x")
    with pytest.raises(ValueError):
        in_range("x", minimum=2, maximum=1)


def test_matches_is_a_full_match():
    rule = matches("email", r"[^@\s]+@[^@\s]+\.[a-z]+")
    report = check(ORDERS, [rule])
    assert report.failed_rows() == [1]
    assert report.violations[0].reason.startswith("does not match")


def test_one_of():
    report = check(ORDERS, [one_of("status", {"open", "shipped", "cancelled"})])
    assert [(v.row, v.value) for v in report.violations] == [(2, "lost")]


def test_unique_reports_repeats_after_the_first():
    report = check(ORDERS, [unique("order_id")])
    assert [(v.row, v.reason) for v in report.violations] == [(2, "duplicates row 1")]


def test_report_orders_by_row_then_rule_and_counts():
    rules = [not_null("order_id"), unique("order_id"), in_range("amount", minimum=0)]
    report = check(ORDERS, rules)
    assert [(v.row, v.rule) for v in report.violations] == [
        (1, "in_range(amount, 0..)"),
        (2, "unique(order_id)"),
        (3, "not_null(order_id)"),
        (3, "in_range(amount, 0..)"),
    ]
    assert report.counts_by_rule() == {"not_null(order_id)": 1, "unique(order_id)": 1, "in_range(amount, 0..)": 2}
    assert report.summary().startswith("4 violations in 3 of 4 rows")


def test_to_dict_is_json_ready_and_capped():
    import json

    report = check([{"a": None}] * 5, [not_null("a")])
    document = report.to_dict(max_violations=2)
    assert document["violation_count"] == 5
    assert len(document["violations"]) == 2
    json.dumps(document)


def test_duplicate_rule_names_are_refused():
    with pytest.raises(ValueError):
        check([], [not_null("a"), not_null("a")])


def test_empty_input():
    report = check([], [not_null("a")])
    assert isinstance(report, Report) and report.passed and report.rows_checked == 0
