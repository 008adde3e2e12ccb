"""Typing the resolved configuration like the bundle schema: normalisation, enum values and required fields.

Part of the config loader (see `config`). The types come from ``data/bundle_types.json``, a table generated from the
Databricks bundle JSON schema (it names its origin, version and how to regenerate it; README "Configuration",
**Types**). Every value of the resolved tree is normalised against its field's type as the reference does
(databricks/cli ``libs/dyn/convert/normalize.go``, public source; the rules, in the order they apply):

* a string becomes a bool (``true``, ``yes``, ``on``... / ``false``, ``no``, ``off``...), an int (decimal digits)
  or a float where the field is typed so; a pure ``${...}`` reference left unresolved stays as written;
* a bool, int or float becomes a string in a string field and in string maps (tags, ``spark_conf``...): ``true``,
  ``25``, ``0.5``;
* anything else is a warning (``expected int, found string``, ``cannot parse "x" as an integer``, ``expected a
  string value, found null``, ``unknown field: NAME``) at the ``FILE:LINE:COLUMN`` it was written, and the value is
  dropped: a field from its map, an element from its list;
* ``variables.<name>.value`` and ``default`` are typed ``any``: a variable keeps the type it was given.

Then, on the same walk, the reference's validations: ``invalid value "X" for enum field. Valid values are [A B]``
(values holding ``${`` are skipped) and ``required field "X" is not set``; both warn and keep the value.
"""

from __future__ import annotations

import functools
import json
import math
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

from .config_located import Diagnostic, Location, location_of
from .config_merge import kind
from .config_resolve import REFERENCE

TABLE = Path(__file__).with_name("data") / "bundle_types.json"
_TRUE = ("true", "y", "Y", "yes", "Yes", "YES", "on", "On", "ON")
_FALSE = ("false", "n", "N", "no", "No", "NO", "off", "Off", "OFF")
_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_INT64 = 2**63
# Sections of the tree that are not the bundle's: our own `deploy` (checked by `config`).
NOT_TYPED = ("deploy",)
_DROP = object()


@functools.lru_cache(maxsize=1)
def table() -> dict:
    """The generated type table (read once)."""
    with TABLE.open(encoding="utf-8") as handle:
        return json.load(handle)


def is_pure_reference(value: Any) -> bool:
    return isinstance(value, str) and REFERENCE.fullmatch(value) is not None


def go_float(number: float) -> str:
    """A float as Go's ``strconv.FormatFloat(f, 'f', -1, 64)`` writes it: shortest digits, no exponent."""
    text = format(Decimal(repr(number)), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def go_quote(text: str) -> str:
    """Close to Go's ``%q``: double quotes, backslash escapes."""
    return json.dumps(text, ensure_ascii=False)


def normalise_file(data: dict, warnings: list) -> dict:
    """One file as it is read, before anything is merged (as the reference loads each file): converted and
    cleaned, without the enum and required-field checks, which judge the merged result. Target bodies are typed
    as targets; our ``deploy`` sections are left to `config`."""
    result = normalise(data, warnings, sections=[key for key in data if key not in ("targets", "environments")])
    walker = _Walker(warnings, validate=False)
    for section in ("targets", "environments"):
        if not isinstance(data.get(section), dict):
            continue
        bodies = {}
        for name, body in data[section].items():
            if not isinstance(body, dict):
                bodies[name] = body
                continue
            typed = {key: value for key, value in body.items() if key not in NOT_TYPED}
            where = f"{section}.{name}"
            bodies[name] = {
                **walker.value(typed, "config.Target", where, location_of(name)),
                **{key: value for key, value in body.items() if key in NOT_TYPED},
            }
        result[section] = bodies
    return result


def normalise(tree: dict, warnings: list, sections=None, *, validate: bool = True) -> dict:
    """`tree` typed like the schema (a new tree; `tree` is not changed); warnings appended as `Diagnostic`.

    `sections` limits the walk to those top-level keys (the others are copied as they are); without `validate`,
    enum values and required fields are not checked."""
    walker = _Walker(warnings, validate=validate)
    root_fields = table()["root"]["fields"]
    result: dict = {}
    for key, value in tree.items():
        if key in NOT_TYPED or (sections is not None and key not in sections) or key not in root_fields:
            result[key] = value  # unknown top-level keys were already reported and dropped when the files were read
            continue
        normalised = walker.value(value, root_fields[key], key, location_of(key))
        if normalised is not _DROP:
            result[key] = normalised
    return result


class _Walker:
    def __init__(self, warnings: list, *, validate: bool = True) -> None:
        self.types = table()["types"]
        self.warnings = warnings
        self.validate = validate

    def warn(self, summary: str, path: str, at: Location | None) -> None:
        self.warnings.append(Diagnostic(summary, path, at))

    def value(self, value: Any, kind_name: str, path: str, at: Location | None) -> Any:
        """The normalised value, or `_DROP` (after a warning)."""
        at = location_of(value) or at
        if kind_name == "any":
            return value
        if kind_name.startswith("map:"):
            return self.mapping(value, kind_name[4:], path, at)
        if kind_name.startswith("list:"):
            return self.sequence(value, kind_name[5:], path, at)
        if kind_name in ("string", "bool", "int", "float"):
            return getattr(self, "scalar_" + kind_name)(value, path, at)
        spec = self.types[kind_name]
        if isinstance(spec, str):
            return self.value(value, spec, path, at)
        if "enum" in spec:
            text = self.scalar_string(value, path, at)
            if self.validate and isinstance(text, str) and "${" not in text and text not in spec["enum"]:
                self.warn(
                    f"invalid value {go_quote(text)} for enum field. Valid values are [{' '.join(spec['enum'])}]",
                    path,
                    at,
                )
            return text
        if "map" in spec:
            return self.mapping(value, spec["map"], path, at)
        if "list" in spec:
            return self.sequence(value, spec["list"], path, at)
        return self.struct(value, spec, path, at)

    def _not_container(self, value: Any, expected: str, path: str, at: Location | None) -> Any:
        if value is None or is_pure_reference(value):
            return value
        self.warn(f"expected {expected}, found {kind(value)}", path, at)
        return _DROP

    def struct(self, value: Any, spec: dict, path: str, at: Location | None) -> Any:
        if not isinstance(value, dict):
            return self._not_container(value, "map", path, at)
        fields = spec["fields"]
        result: dict = {}
        for key, item in value.items():
            if key not in fields:
                self.warn(f"unknown field: {key}", path, location_of(key) or at)
                continue
            normalised = self.value(item, fields[key], f"{path}.{key}", location_of(key) or at)
            if normalised is not _DROP:
                result[key] = normalised
        for name in spec.get("required", ()) if self.validate else ():
            if result.get(name) is None:
                self.warn(f"required field {go_quote(name)} is not set", path, at)
        return result

    def mapping(self, value: Any, element: str, path: str, at: Location | None) -> Any:
        if not isinstance(value, dict):
            return self._not_container(value, "map", path, at)
        result: dict = {}
        for key, item in value.items():
            normalised = self.value(item, element, f"{path}.{key}", location_of(key) or at)
            if normalised is not _DROP:
                result[key] = normalised
        return result

    def sequence(self, value: Any, element: str, path: str, at: Location | None) -> Any:
        if not isinstance(value, list):
            return self._not_container(value, "sequence", path, at)
        result: list = []
        for item in value:
            normalised = self.value(item, element, f"{path}[{len(result)}]", at)
            if normalised is not _DROP:
                result.append(normalised)
        return result

    def _null(self, expected: str, path: str, at: Location | None) -> Any:
        self.warn(f"expected a {expected} value, found null", path, at)
        return _DROP

    def _mismatch(self, expected: str, value: Any, path: str, at: Location | None) -> Any:
        self.warn(f"expected {expected}, found {kind(value)}", path, at)
        return _DROP

    def scalar_string(self, value: Any, path: str, at: Location | None) -> Any:
        if isinstance(value, str):
            return value
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int):
            return str(value)
        if isinstance(value, float):
            return go_float(value)
        if value is None:
            return self._null("string", path, at)
        return self._mismatch("string", value, path, at)

    def scalar_bool(self, value: Any, path: str, at: Location | None) -> Any:
        if isinstance(value, bool):
            return value
        if isinstance(value, str):
            if value in _TRUE:
                return True
            if value in _FALSE:
                return False
            if is_pure_reference(value):
                return value
        if value is None:
            return self._null("bool", path, at)
        return self._mismatch("bool", value, path, at)

    def scalar_int(self, value: Any, path: str, at: Location | None) -> Any:
        return self._number(value, "int", path, at)

    def scalar_float(self, value: Any, path: str, at: Location | None) -> Any:
        return self._number(value, "float", path, at)

    def _number(self, value: Any, kind_name: str, path: str, at: Location | None) -> Any:
        integer = kind_name == "int"
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                converted = int(value) if integer else float(value)
            except OverflowError:
                converted = None
            if converted != value:  # 1.5 as an int, 2**63+1 as a float
                shown = f"{value:g}" if integer else str(value)
                target = "integer" if integer else "floating point number"
                self.warn(f'cannot accurately represent "{shown}" as {target} due to precision loss', path, at)
                return _DROP
            return converted
        if isinstance(value, str):
            if integer and _INT.fullmatch(value) and -_INT64 <= int(value) < _INT64:
                return int(value)
            if not integer and _FLOAT.fullmatch(value) and math.isfinite(float(value)):
                return float(value)
            if is_pure_reference(value):
                return value
            target = "an integer" if integer else "a floating point number"
            self.warn(f"cannot parse {go_quote(value)} as {target}", path, at)
            return _DROP
        if value is None:
            return self._null(kind_name, path, at)
        return self._mismatch(kind_name, value, path, at)
