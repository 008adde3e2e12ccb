"""Row-level data-quality rules: declare rules, `check` rows against them, read the `Report`."""

from package1.report import Report, Violation
from package1.rules import Rule, check, in_range, matches, not_null, one_of, unique

__version__ = "1.0.0"
__all__ = ["Report", "Rule", "Violation", "check", "in_range", "matches", "not_null", "one_of", "unique"]
