"""Run-time variables of a job, ``$(name)`` macros, the environment a step gets, and the secret masker.

Agent semantics (docs "Define variables", "Set variables in scripts"; README "Running the pipeline locally"):
names ignore case; ``$(name)`` of a known variable is replaced just before a step runs, an unknown one stays
literal; a step's environment holds every non-secret variable under its name upper-cased with ``.`` and space
→ ``_`` (``-`` is kept); secret variables reach a step only through its ``env:``; "once a secret, always a
secret". The masker replaces every registered value (and its escaped forms) with ``***`` in each output line.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

MACRO = re.compile(r"\$\(([A-Za-z0-9_][\w.\- ]*)\)")
_MACRO_PASSES = 10


def env_name(name: str) -> str:
    return re.sub(r"[. ]", "_", name).upper()


@dataclass
class Variable:
    name: str
    value: str
    secret: bool = False
    readonly: bool = False


class Variables:
    """The variables one job (or stage) sees; `copy` gives the next scope its own."""

    def __init__(self, items: Iterable[Variable] = ()) -> None:
        self._items: dict[str, Variable] = {}
        for item in items:
            self._items[item.name.casefold()] = Variable(item.name, item.value, item.secret, item.readonly)

    def copy(self) -> Variables:
        return Variables(self._items.values())

    def get(self, name: str) -> Variable | None:
        return self._items.get(name.casefold())

    def value(self, name: str) -> str | None:
        found = self.get(name)
        return None if found is None else found.value

    def set(self, name: str, value: Any, *, secret: bool = False, readonly: bool = False, force: bool = False) -> bool:
        """Set a variable; False (nothing changed) when it is read-only and `force` is not given."""
        current = self.get(name)
        if current is not None and current.readonly and not force:
            return False
        self._items[name.casefold()] = Variable(
            current.name if current else name,
            "" if value is None else str(value),
            secret or bool(current and current.secret),
            readonly or bool(current and current.readonly and not force),
        )
        return True

    def __iter__(self):
        return iter(list(self._items.values()))

    def as_mapping(self) -> dict[str, str]:
        """``variables['x']`` in expressions (secrets included, as on the agent)."""
        return {item.name: item.value for item in self._items.values()}

    def secrets(self) -> list[str]:
        return [item.value for item in self._items.values() if item.secret and item.value]

    def expand(self, text: Any) -> str:
        """``$(name)`` → value for known variables (secrets too); unknown names stay literal, as on the agent."""

        def one(match: re.Match) -> str:
            found = self.get(match.group(1).strip())
            return match.group(0) if found is None else found.value

        return MACRO.sub(one, "" if text is None else str(text))

    def resolve_nested(self) -> None:
        """Values that reference other variables (``PIP_CACHE_DIR: $(Pipeline.Workspace)/.pip``) are expanded
        once, at the start of the scope, as the agent does; a cycle stays literal."""
        for _ in range(_MACRO_PASSES):
            changed = False
            for item in self._items.values():
                if "$(" in item.value:
                    expanded = self.expand(item.value)
                    if expanded != item.value:
                        item.value, changed = expanded, True
            if not changed:
                return

    def environment(self) -> dict[str, str]:
        """The non-secret variables as a step's environment variables."""
        env = {}
        for item in self._items.values():
            if item.secret:
                continue
            name = env_name(item.name)
            if name and "=" not in name and "\0" not in item.value:
                env[name] = item.value
        return env


def apply_definitions(target: Variables, definitions: Mapping[str, str], *, secret: bool = False) -> None:
    for name, value in definitions.items():
        target.set(name, value, secret=secret, force=True)


def escaped_forms(value: str) -> list[str]:
    """The forms the agent registers with a secret: the value and its logging-command escaped form."""
    escaped = (
        value.replace("%", "%AZP25").replace("\r", "%0D").replace("\n", "%0A").replace(";", "%3B").replace("]", "%5D")
    )
    return [value] if escaped == value else [value, escaped]


class Masker:
    """Secret values → ``***`` in every output line; the longest value first, so a secret containing another is
    masked whole. Job secrets (``--secrets-file``) are registered with their base64 form too, as the agent does."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def add(self, value: str, *, with_base64: bool = False) -> None:
        value = "" if value is None else str(value)
        forms = []
        for line in re.split(r"\r\n|\r|\n", value):
            if line.strip():
                forms.extend(escaped_forms(line))
        if with_base64 and value:
            forms.append(base64.b64encode(value.encode("utf-8")).decode("ascii"))
        new = {form for form in forms if form and form not in self._values}
        if new:
            self._values |= new
            ordered = sorted(self._values, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(form) for form in ordered))

    def mask(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub("***", text)

    def values(self) -> set[str]:
        return set(self._values)
