"""The result of checking rows against rules: violations, counts, a summary."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Violation:
    """One row breaking one rule."""

    row: int
    rule: str
    column: str
    value: Any
    reason: str


@dataclass
class Report:
    """Violations found by `check`, plus how many rows and rules were checked."""

    rows_checked: int
    rules: list[str]
    violations: list[Violation] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.violations

    def failed_rows(self) -> list[int]:
        """Indexes of the rows with at least one violation, ascending."""
        return sorted({violation.row for violation in self.violations})

    def counts_by_rule(self) -> dict[str, int]:
        """Number of violations per rule name (rules without violations included, with 0)."""
        counts = Counter(violation.rule for violation in self.violations)
        return {rule: counts.get(rule, 0) for rule in self.rules}

    def summary(self) -> str:
        """One line a person reads in a log."""
        if self.passed:
            return f"all {len(self.rules)} rules passed on {self.rows_checked} rows"
        failing = ", ".join(f"{rule}: {count}" for rule, count in self.counts_by_rule().items() if count)
        return f"{len(self.violations)} violations in {len(self.failed_rows())} of {self.rows_checked} rows ({failing})"

    def to_dict(self, max_violations: int = 100) -> dict[str, Any]:
        """JSON-ready summary; at most `max_violations` violations are listed (the count is always exact)."""
        return {
            "passed": self.passed,
            "rows_checked": self.rows_checked,
            "violation_count": len(self.violations),
            "counts_by_rule": self.counts_by_rule(),
            "violations": [
                {"row": v.row, "rule": v.rule, "column": v.column, "value": repr(v.value), "reason": v.reason}
                for v in self.violations[:max_violations]
            ],
        }
