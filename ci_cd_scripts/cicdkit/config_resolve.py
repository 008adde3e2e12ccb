"""``${...}`` references in a configuration tree: finding them and resolving them.

Part of the config loader (see `config`). Rules (README "Configuration", **References**; the reference is the
Databricks CLI, databricks/cli ``libs/dyn/dynvar`` and ``bundle/config/mutator/resolve_variable_references.go``):

* A reference is ``${a.b[0].c}``: dot-separated segments (a letter, then letters/digits with single runs of
  ``_``/``-`` in between), each optionally indexed. Anything else (``${ x }``, ``${0x}``) is plain text; there
  is no escape syntax.
* Only references whose first segment is in the resolver's ``prefixes`` are touched; ``${resources.*}`` and
  unknown prefixes stay literal. ``${var.x}`` means ``${variables.x.value}``.
* A pure reference (the whole string) takes the value with its type; embedded references are interpolated
  (``true``, ``25``, ``0.5``, null as ``<nil>``; maps and lists cannot be interpolated).
* Strings are resolved in sorted order of their path; a looked-up value that itself holds references is
  resolved first (cycle: ``cycle detected in field resolution: a -> b -> a``); an unknown path is
  ``reference does not exist: ${...}`` with did-you-mean suggestions. Values brought in by a reference are
  resolved in the next round; after 11 rounds that still change something, a warning is given.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator
from typing import Any

from .config_located import located
from .errors import ConfigError

_SEGMENT = r"[^\W\d_]+(?:[-_]*[^\W_]+)*"
_INDEXED = rf"{_SEGMENT}(?:\[[0-9]+\])*"
REFERENCE = re.compile(rf"\$\{{({_INDEXED}(?:\.{_INDEXED})*)\}}")
MAX_ROUNDS = 11
MAX_NESTING = 64
TOO_DEEP = "Variables references are too deep, stopping resolution after 11 rounds. Unresolved variables may remain."

# Fields of `bundle` and `workspace` that exist even when unset: a reference to them gives their zero value.
KNOWN_FIELDS: dict[str, Any] = {
    "bundle": {
        "name": "",
        "target": "",
        "environment": "",
        "mode": "",
        "cluster_id": "",
        "compute_id": "",
        "uuid": "",
        "databricks_cli_version": "",
        "git": {
            "branch": "",
            "origin_url": "",
            "commit": "",
            "actual_branch": "",
            "bundle_root_path": "",
            "inferred": False,
        },
        "deployment": {"fail_on_active_runs": False, "lock": {"enabled": False, "force": False}},
    },
    "workspace": {
        "host": "",
        "profile": "",
        "auth_type": "",
        "client_id": "",
        "account_id": "",
        "workspace_id": 0,
        "root_path": "",
        "file_path": "",
        "artifact_path": "",
        "resource_path": "",
        "state_path": "",
        "current_user": {
            "userName": "",
            "short_name": "",
            "domain_friendly_name": "",
            "displayName": "",
            "id": "",
            "active": False,
        },
    },
}
VARIABLE_FIELDS = {"default": None, "description": "", "type": "", "lookup": None, "value": None}


class Unresolvable(Exception):
    """A reference that cannot be resolved yet (e.g. the current user is unknown): leave it literal."""


def parse_path(text: str) -> list[str | int]:
    """``a.b[0].c`` -> ``['a', 'b', 0, 'c']``."""
    parts: list[str | int] = []
    for segment in text.split("."):
        name, *indices = segment.split("[")
        parts.append(name)
        parts.extend(int(index.rstrip("]")) for index in indices)
    return parts


def format_path(parts: list[str | int]) -> str:
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def walk_strings(tree: Any, path: tuple = ()) -> Iterator[tuple[tuple, str]]:
    """Every string in the tree with its path (a tuple of keys and indices)."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from walk_strings(value, path + (key,))
    elif isinstance(tree, list):
        for index, value in enumerate(tree):
            yield from walk_strings(value, path + (index,))
    elif isinstance(tree, str):
        yield path, tree


def nesting(tree: Any) -> int:
    """How deeply maps and lists nest (iterative: a runaway value must not hit the recursion limit)."""
    deepest, stack = 0, [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        stack.extend((child, depth + 1) for child in children)
    return deepest


def set_path(tree: Any, path: tuple, value: Any) -> None:
    for part in path[:-1]:
        tree = tree[part]
    tree[path[-1]] = value


def interpolate(value: Any) -> str:
    """How a value is written inside a longer string."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    kind = "map" if isinstance(value, dict) else "sequence"
    raise ConfigError(f"cannot interpolate non-primitive value of type {kind} into string")


def edit_distance(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]


def suggestions(wrong: str, candidates: list[str]) -> list[str]:
    limit = max(2, len(wrong) // 3)
    scored = sorted((edit_distance(wrong, name), name) for name in candidates)
    return [name for distance, name in scored if distance <= limit][:3]


class Resolver:
    """Resolve references with given prefixes in the strings of `tree` whose path `include` accepts."""

    def __init__(
        self,
        tree: dict,
        prefixes: tuple[str, ...],
        include: Callable[[tuple], bool],
        computed: Callable[[list], Any] | None = None,
        unknown_user: bool = False,
        unresolved: frozenset[str] = frozenset(),
    ) -> None:
        self.tree = tree
        self.unresolved = unresolved  # variables without a value yet (lookups nobody could ask): left literal
        self.prefixes = prefixes
        self.include = include
        self.computed = computed
        self.unknown_user = unknown_user
        self.memo: dict[str, Any] = {}
        self.snapshot: Any = tree

    def wants(self, reference: str) -> bool:
        return reference.split(".", 1)[0].split("[", 1)[0] in self.prefixes

    def has_references(self, text: str) -> bool:
        return any(self.wants(match.group(1)) for match in REFERENCE.finditer(text))

    def run(self, warnings: list[str]) -> None:
        for _ in range(MAX_ROUNDS):
            if not self.round():
                return
            if nesting(self.tree) > MAX_NESTING:
                break  # a value that contains itself doubles every round; stop before it gets out of hand
        else:
            if not self.round():
                return
        warnings.append(TOO_DEEP)

    def round(self) -> bool:
        """One pass over every string; True if anything changed."""
        self.memo = {}
        # Lookups read the tree as it was when the round started, as the reference does: values written during
        # the round are seen in the next one (so self-feeding complex values grow by one level per round).
        self.snapshot = copy.deepcopy(self.tree)
        pending = [
            (path, text)
            for path, text in walk_strings(self.tree)
            if self.include(path) and "${" in text and self.has_references(text)
        ]
        pending.sort(key=lambda item: format_path(list(item[0])))
        changed = False
        for path, text in pending:
            where = format_path(list(path))
            try:
                value = self.resolve_string(text, [where])
            except ConfigError as error:
                if error.hint is None and error.message.startswith("cannot interpolate"):
                    error.hint = f"at {where}"
                raise
            if value != text or not isinstance(value, str):
                # A value put in by a reference stands where the reference was written (for diagnostics).
                set_path(self.tree, path, located(value, text))
                changed = True
        return changed

    def resolve_string(self, text: str, seen: list[str]) -> Any:
        matches = [match for match in REFERENCE.finditer(text) if self.wants(match.group(1))]
        values: dict[str, Any] = {}
        for match in matches:
            try:
                values[match.group(0)] = self.resolve_key(match.group(1), seen)
            except Unresolvable:
                continue
        if len(matches) == 1 and matches[0].group(0) == text:
            return values.get(text, text)
        return REFERENCE.sub(lambda m: interpolate(values[m.group(0)]) if m.group(0) in values else m.group(0), text)

    def resolve_key(self, key: str, seen: list[str]) -> Any:
        if key in self.memo:
            return self.memo[key]
        if key in seen:
            raise ConfigError(f"cycle detected in field resolution: {' -> '.join(seen + [key])}")
        value = self.lookup(key)
        if isinstance(value, str) and "${" in value and self.has_references(value):
            value = self.resolve_string(value, seen + [key])
        value = copy.deepcopy(value)
        self.memo[key] = value
        return value

    def lookup(self, key: str) -> Any:
        parts = parse_path(key)
        if parts[0] == "var":
            if len(parts) < 2 or not isinstance(parts[1], str):
                raise ConfigError(f"reference does not exist: ${{{key}}}")
            parts = ["variables", parts[1], "value", *parts[2:]]
        if parts[:2] == ["workspace", "current_user"] and self.unknown_user:
            raise Unresolvable(key)
        if parts[0] == "variables" and len(parts) > 2 and parts[1] in self.unresolved and parts[2] == "value":
            raise Unresolvable(key)
        if self.computed:
            found = self.computed(parts)
            if found is not None:
                return found
        node: Any = self.snapshot
        schema: Any = KNOWN_FIELDS
        for depth, part in enumerate(parts):
            known = isinstance(schema, dict) and isinstance(part, str) and part in schema
            field = schema[part] if known else None
            if depth == 1 and parts[0] == "variables":
                known, field = False, VARIABLE_FIELDS  # a variable must be declared; its fields are known
            if isinstance(part, int) and isinstance(node, list) and 0 <= part < len(node):
                node = node[part]
            elif isinstance(part, str) and isinstance(node, dict) and part in node:
                node = node[part]
            elif known and (node is None or isinstance(node, dict)):
                node = {} if isinstance(field, dict) else field  # a field that exists but is unset: zero value
            else:
                self.not_found(key, parts, depth, node, schema)
            schema = field
        return node

    def not_found(self, key: str, parts: list, depth: int, node: Any, schema: Any = None) -> None:
        hint = None
        if isinstance(node, dict) and isinstance(parts[depth], str):
            known = [str(name) for name in node]
            known += [name for name in (schema if isinstance(schema, dict) else {}) if name not in node]
            names = suggestions(parts[depth], known)
            if key.startswith("var.") and depth == 1:
                options = [f"${{var.{name}}}" for name in names]
            else:
                options = [f"${{{format_path([*parts[:depth], name])}}}" for name in names]
            if len(options) == 1:
                hint = f"did you mean: {options[0]}"
            elif options:
                hint = f"did you mean one of: {', '.join(options)}"
        raise ConfigError(f"reference does not exist: ${{{key}}}", hint=hint)
