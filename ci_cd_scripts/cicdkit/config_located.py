"""Where a config value was written: strings and keys that carry their ``FILE:LINE:COLUMN``, and diagnostics at them.

Part of the config loader (see `config`). The parsers (`config_files`) return every string and every map key as a
`Located` (a ``str`` that also knows its `Location`), so that a warning raised long after parsing, on the merged
and resolved tree, still names the place the user wrote (README "Configuration", **Types**). A `Located` behaves as
the plain string everywhere (equality, hashing, JSON); it survives ``copy.deepcopy`` and the merges, and a value
derived from it (an interpolated reference) is re-attached with `located`. Numbers, booleans and null carry no
location: their place is the one of the key that holds them.

`Diagnostic` is a warning with its summary, config path and location; its text is
``FILE:LINE:COLUMN: summary (at path)``, what ``validate_config.py`` prints and logs as ``task.logissue``.
"""

from __future__ import annotations

import bisect
import re
from json.decoder import WHITESPACE, scanstring
from json.scanner import NUMBER_RE
from typing import Any, NamedTuple


class Location(NamedTuple):
    """1-based line and column in a file (the file as shown: relative to the working folder when inside it)."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class Located(str):
    """A string from a config file, with the `Location` it was written at."""

    location: Location

    def __new__(cls, text: str, location: Location) -> Located:
        value = super().__new__(cls, text)
        value.location = location
        return value

    def __reduce__(self):  # pickle keeps the location
        return (Located, (str(self), self.location))

    def __copy__(self) -> Located:
        return self  # immutable, like str: the merges' deep copies share it (and stay fast)

    def __deepcopy__(self, memo: dict) -> Located:
        return self


def location_of(value: Any) -> Location | None:
    return value.location if isinstance(value, Located) else None


def located(value: Any, like: Any) -> Any:
    """`value` carrying the location of `like` (when `value` is a string and `like` has one): a string put in by a
    reference stands where the reference was written."""
    if isinstance(value, str) and isinstance(like, Located):
        return Located(str(value), like.location)
    return value


class Diagnostic(str):
    """A warning about one place of the config: ``summary``, ``path`` (``resources.jobs.j.tasks[0]``) and where."""

    summary: str
    path: str
    location: Location | None

    def __new__(cls, summary: str, path: str = "", location: Location | None = None) -> Diagnostic:
        text = f"{location}: {summary}" if location else summary
        value = super().__new__(cls, f"{text} (at {path})" if path else text)
        value.summary, value.path, value.location = summary, path, location
        return value

    def __reduce__(self):
        return (Diagnostic, (self.summary, self.path, self.location))


class _Lines:
    def __init__(self, text: str) -> None:
        self.starts = [0] + [match.end() for match in re.finditer("\n", text)]

    def at(self, offset: int) -> tuple[int, int]:
        line = bisect.bisect_right(self.starts, offset)
        return line, offset - self.starts[line - 1] + 1


def located_json(text: str, file: str) -> Any:
    """The value of a JSON document already checked by ``json.loads``, with every string and key `Located`.

    A small recursive-descent reader over the same grammar (the standard parser reports no positions); numbers
    become int/float as ``json.loads`` reads them."""
    lines = _Lines(text)

    def where(offset: int) -> Location:
        return Location(file, *lines.at(offset))

    def skip(index: int) -> int:
        return WHITESPACE.match(text, index).end()

    def value(index: int) -> tuple[Any, int]:
        index = skip(index)
        char = text[index]
        if char == '"':
            string, end = scanstring(text, index + 1, True)
            return Located(string, where(index)), end
        if char == "{":
            result: dict[str, Any] = {}
            index = skip(index + 1)
            if text[index] == "}":
                return result, index + 1
            while True:
                index = skip(index)
                key_at = where(index)
                key, index = scanstring(text, index + 1, True)
                index = skip(index)
                item, index = value(index + 1)  # past ':'
                result[Located(key, key_at)] = item
                index = skip(index)
                if text[index] == "}":
                    return result, index + 1
                index += 1  # ','
        if char == "[":
            items: list[Any] = []
            index = skip(index + 1)
            if text[index] == "]":
                return items, index + 1
            while True:
                item, index = value(index)
                items.append(item)
                index = skip(index)
                if text[index] == "]":
                    return items, index + 1
                index += 1
        for word, constant in (("true", True), ("false", False), ("null", None)):
            if text.startswith(word, index):
                return constant, index + len(word)
        match = NUMBER_RE.match(text, index)
        integer, fraction, exponent = match.groups()
        number = float(integer + (fraction or "") + (exponent or "")) if fraction or exponent else int(integer)
        return number, match.end()

    return value(0)[0]


__all__ = ["Diagnostic", "Located", "Location", "located", "located_json", "location_of"]
