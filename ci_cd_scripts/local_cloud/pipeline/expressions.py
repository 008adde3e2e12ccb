"""The expression language of ``${{ }}``, ``$[ ]`` and ``condition:``, as documented on the Azure Pipelines page
"Expressions" (https://learn.microsoft.com/azure/devops/pipelines/process/expressions).

Literals (``'text'`` with ``''`` for a quote, numbers, ``true``/``false``/``null``), named values with property
and index access (``variables['Build.Reason']``, ``parameters.target``, ``dependencies.A.outputs['s.v']``; names
and keys are case-insensitive), and the functions below. Types follow the page's casting rules: for ``eq``,
``ne``, ``in``... the right value is converted to the left one's type, strings compare ordinally ignoring case;
anything is true except null, false, 0 and ''. ``counter()`` needs the service and is refused.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


class ExpressionError(ValueError):
    """An expression that cannot be read or evaluated; the caller adds file and line."""


_TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<number>-?\d+(?:\.\d+)?(?![\w.]))|(?P<name>[A-Za-z_][\w\-]*)"
    r"|(?P<punct>[()\[\],.])|(?P<bad>\S))"
)


def tokenize(text: str) -> list[tuple[str, str]]:
    tokens = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            break
        position = match.end()
        kind = match.lastgroup
        if kind == "bad":
            raise ExpressionError(f"unexpected {match.group(kind)!r} in expression {text.strip()!r}")
        tokens.append((kind, match.group(kind)))
    return tokens


# ---- syntax tree ---------------------------------------------------------------------------------------------


@dataclass
class Literal:
    value: Any


@dataclass
class Name:
    name: str


@dataclass
class Access:
    target: Any
    key: Any  # a node (index) or a str (property)


@dataclass
class Call:
    function: str
    args: list


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text.strip()
        self.tokens = tokenize(text)
        self.position = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self, expected: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None or (expected is not None and token[1] != expected):
            found = "the end" if token is None else repr(token[1])
            wanted = repr(expected) if expected else "a value"
            raise ExpressionError(f"expected {wanted}, found {found} in expression {self.text!r}")
        self.position += 1
        return token

    def parse(self):
        node = self.expression()
        if self.peek() is not None:
            raise ExpressionError(f"unexpected {self.peek()[1]!r} in expression {self.text!r}")
        return node

    def expression(self):
        kind, text = self.take()
        if kind == "string":
            node: Any = Literal(text[1:-1].replace("''", "'"))
        elif kind == "number":
            node = Literal(float(text) if "." in text else int(text))
        elif kind == "name":
            lowered = text.lower()
            if self.peek() == ("punct", "("):
                self.take("(")
                args = []
                while self.peek() != ("punct", ")"):
                    args.append(self.expression())
                    if self.peek() == ("punct", ","):
                        self.take(",")
                    elif self.peek() != ("punct", ")"):
                        self.take(")")
                self.take(")")
                node = Call(lowered, args)
            elif lowered in ("true", "false"):
                node = Literal(lowered == "true")
            elif lowered == "null":
                node = Literal(None)
            else:
                node = Name(text)
        else:
            raise ExpressionError(f"unexpected {text!r} in expression {self.text!r}")
        while self.peek() in (("punct", "."), ("punct", "[")):
            if self.take()[1] == ".":
                node = Access(node, self.take()[1])
            else:
                index = self.expression()
                self.take("]")
                node = Access(node, index)
        return node


def parse(text: str):
    """The syntax tree of one expression; `ExpressionError` if it is not one."""
    if not text.strip():
        raise ExpressionError("empty expression")
    return _Parser(text).parse()


# ---- values and casting --------------------------------------------------------------------------------------


def truthy(value: Any) -> bool:
    if value is None or value is False:
        return False
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value != 0 and not math.isnan(value)
    if isinstance(value, str):
        return value != ""
    return True


def to_text(value: Any) -> str:
    """How a value reads inside a string (``${{ }}`` embedded in text, macros)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (dict, list)):
        raise ExpressionError("an object or list cannot be used as text here")
    return str(value)


def _to_number(value: Any) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip()) if value.strip() else 0.0
        except ValueError:
            return math.nan
    return math.nan


def _cast_like(left: Any, right: Any) -> Any:
    if isinstance(left, bool):
        if isinstance(right, str):
            lowered = right.strip().lower()
            return True if lowered == "true" else False if lowered == "false" else truthy(right)
        return truthy(right)
    if isinstance(left, (int, float)):
        return _to_number(right)
    if isinstance(left, str):
        return None if right is None else to_text(right) if not isinstance(right, (dict, list)) else right
    return right


def equal(left: Any, right: Any) -> bool:
    if left is None:
        return right is None or right == ""
    right = _cast_like(left, right)
    if isinstance(left, str) and isinstance(right, str):
        return left.casefold() == right.casefold()
    if isinstance(left, (dict, list)):
        return left is right
    return left == right


def _compare(left: Any, right: Any) -> int:
    right = _cast_like(left, right)
    if isinstance(left, str) and isinstance(right, str):
        a, b = left.casefold(), right.casefold()
    elif isinstance(left, (int, float, bool)):
        a, b = _to_number(left), _to_number(right)
    else:
        raise ExpressionError(f"cannot compare {left!r} and {right!r}")
    return (a > b) - (a < b)


def _text(value: Any) -> str:
    return to_text(value)


def _format(pattern: Any, *args: Any) -> str:
    def one(match: re.Match) -> str:
        if match.group(0) in ("{{", "}}"):
            return match.group(0)[0]
        index = int(match.group(1))
        if index >= len(args):
            raise ExpressionError(f"format(): no argument {{{index}}}")
        return _text(args[index])

    return re.sub(r"\{\{|\}\}|\{(\d+)(?::[^}]*)?\}", one, _text(pattern))


def _contains(haystack: Any, needle: Any) -> bool:
    if isinstance(haystack, list):
        return any(equal(item, needle) for item in haystack)
    return _text(needle).casefold() in _text(haystack).casefold()


def _length(value: Any) -> int:
    if isinstance(value, (str, list, dict)):
        return len(value)
    if value is None:
        return 0
    raise ExpressionError(f"length() of {value!r}")


def _join(separator: Any, items: Any = None) -> str:
    if items is None:
        return ""
    if isinstance(items, dict):
        items = list(items)
    if not isinstance(items, list):
        return _text(items)
    return _text(separator).join(_text(item) for item in items)


def _json(value: Any) -> str:
    return json.dumps(value, indent=2)


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "eq": equal,
    "ne": lambda a, b: not equal(a, b),
    "gt": lambda a, b: _compare(a, b) > 0,
    "ge": lambda a, b: _compare(a, b) >= 0,
    "lt": lambda a, b: _compare(a, b) < 0,
    "le": lambda a, b: _compare(a, b) <= 0,
    "in": lambda needle, *values: any(equal(needle, value) for value in values),
    "notin": lambda needle, *values: not any(equal(needle, value) for value in values),
    "contains": _contains,
    "containsvalue": lambda items, value: any(
        equal(item, value) for item in (items.values() if isinstance(items, dict) else items or [])
    ),
    "startswith": lambda a, b: _text(a).casefold().startswith(_text(b).casefold()),
    "endswith": lambda a, b: _text(a).casefold().endswith(_text(b).casefold()),
    "not": lambda a: not truthy(a),
    "xor": lambda a, b: truthy(a) != truthy(b),
    "coalesce": lambda *values: next((value for value in values if value is not None and value != ""), None),
    "format": _format,
    "join": _join,
    "length": _length,
    "lower": lambda a: _text(a).lower(),
    "upper": lambda a: _text(a).upper(),
    "trim": lambda a: _text(a).strip(),
    "replace": lambda a, old, new: _text(a).replace(_text(old), _text(new)),
    "split": lambda a, separator: _text(a).split(_text(separator)),
    "converttojson": _json,
}
STATUS_FUNCTIONS = ("succeeded", "failed", "succeededorfailed", "always", "canceled")
# Functions whose arguments are evaluated lazily (short-circuit), as on the service.
_LAZY = ("and", "or", "iif")


def lookup(container: Any, key: Any) -> Any:
    """``container[key]`` the way expressions index: mappings ignore case; a miss is null."""
    if isinstance(container, Mapping):
        if not isinstance(key, str):
            key = _text(key)
        if key in container:
            return container[key]
        folded = key.casefold()
        for name, value in container.items():
            if isinstance(name, str) and name.casefold() == folded:
                return value
        return None
    if isinstance(container, list):
        number = _to_number(key)
        if not math.isnan(number) and 0 <= int(number) < len(container):
            return container[int(number)]
        return None
    return None


class Context:
    """What an expression can see: named values (``parameters``, ``variables``, ``dependencies``, a loop
    variable...) and, at run time, the status functions (``succeeded()``...) of the job or stage."""

    def __init__(self, values: Mapping[str, Any], status: Callable[[str, list], bool] | None = None) -> None:
        self.values = dict(values)
        self.status = status

    def child(self, **values: Any) -> Context:
        return Context({**self.values, **values}, self.status)

    def evaluate(self, text: str) -> Any:
        return self.run(parse(text))

    def run(self, node: Any) -> Any:
        if isinstance(node, Literal):
            return node.value
        if isinstance(node, Name):
            found = lookup(self.values, node.name)
            if found is None and not any(name.casefold() == node.name.casefold() for name in self.values):
                known = ", ".join(sorted(self.values)) or "none"
                raise ExpressionError(f"unknown name {node.name!r} in an expression (known here: {known})")
            return found
        if isinstance(node, Access):
            target = self.run(node.target)
            key = node.key if isinstance(node.key, str) else self.run(node.key)
            return lookup(target, key)
        return self._call(node)

    def _call(self, node: Call) -> Any:
        name = node.function
        if name == "and":
            return all(truthy(self.run(arg)) for arg in node.args)
        if name == "or":
            return any(truthy(self.run(arg)) for arg in node.args)
        if name == "iif":
            if len(node.args) != 3:
                raise ExpressionError("iif() takes 3 arguments")
            return self.run(node.args[1] if truthy(self.run(node.args[0])) else node.args[2])
        if name in STATUS_FUNCTIONS:
            if self.status is None:
                raise ExpressionError(f"{name}() is a run-time function; it is not available in ${{{{ }}}}")
            return self.status(name, [self.run(arg) for arg in node.args])
        if name == "counter":
            raise ExpressionError("counter() needs the Azure DevOps service; set the value with --var instead")
        function = _FUNCTIONS.get(name)
        if function is None:
            raise ExpressionError(f"unknown function {node.function}()")
        args = [self.run(arg) for arg in node.args]
        try:
            return function(*args)
        except TypeError:
            raise ExpressionError(f"wrong number of arguments for {node.function}()") from None
