"""Validate Azure Pipelines YAML against the VS Code extension's schema the way the language server reads it.

Plain `jsonschema` gets three things wrong with ``tests/data/schemas/azure-pipelines.schema.json`` (Microsoft's
published schema, see tests/data/README.md and README, "Schema test"); this module fixes them without editing it:

* every YAML scalar is a string (the Azure Pipelines parser's view): an all-strings loader, plus a type
  checker whose ``boolean``/``integer``/``number`` accept the scalar's text and whose ``array``/``object``
  also accept a whole-value expression (``${{ ... }}``, ``$[ ... ]``, ``$( ... )``);
* ``${{ if/each/... }}`` items and keys are hoisted into their parent list/mapping before validation;
* the custom ``ignoreCase`` and ``aliases`` keywords are honoured by ``enum``, ``pattern``,
  ``properties``, ``additionalProperties`` and ``required``; ``pattern`` skips strings holding expressions.

Errors are pruned to the branch the author meant (the ``task:`` that matches, the ``firstProperty`` that is
present) and reported as ``path/to/node :: message``. Loading the schema costs ~0.3 s: `validator()` caches.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from helpers import DATA
from jsonschema import Draft7Validator, validators
from jsonschema.exceptions import ValidationError

SCHEMA_PATH = DATA / "schemas" / "azure-pipelines.schema.json"
_EXPRESSION = re.compile(r"^\s*(\$\{\{.*\}\}|\$\[.*\]|\$\(.*\))\s*$", re.DOTALL)
_TEMPLATE_KEY = re.compile(r"^\s*\$\{\{.*\}\}\s*$", re.DOTALL)
_BOOLEANS = {"true", "y", "yes", "on", "false", "n", "no", "off"}
_INTEGER = re.compile(r"^[-+]?\d+$")
_NUMBER = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$")


# --- loading ---------------------------------------------------------------------------------------------------


class _StringLoader(yaml.SafeLoader):
    """A YAML loader that resolves no implicit types: every scalar stays the string the author wrote."""


_StringLoader.yaml_implicit_resolvers = {}


def load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_StringLoader)


def is_expression(value: Any) -> bool:
    return isinstance(value, str) and bool(_EXPRESSION.match(value))


def hoist(node: Any) -> Any:
    """Splice ``${{ ... }}`` sequence items and merge ``${{ ... }}`` mapping keys into their parents."""
    if isinstance(node, list):
        items: list[Any] = []
        for item in node:
            if isinstance(item, dict) and len(item) == 1 and _TEMPLATE_KEY.match(next(iter(item))):
                value = hoist(next(iter(item.values())))
                if isinstance(value, list):
                    items.extend(value)
                elif isinstance(value, dict):
                    items.append(value)
                continue
            items.append(hoist(item))
        return items
    if isinstance(node, dict):
        merged: dict[Any, Any] = {}
        for key, value in node.items():
            if isinstance(key, str) and _TEMPLATE_KEY.match(key):
                value = hoist(value)
                if isinstance(value, dict):
                    merged.update(value)
                continue
            merged[key] = hoist(value)
        return merged
    return node


# --- the extended validator ------------------------------------------------------------------------------------


def _is_boolean(checker, instance) -> bool:
    return isinstance(instance, bool) or (
        isinstance(instance, str) and (instance.strip().lower() in _BOOLEANS or is_expression(instance))
    )


def _is_integer(checker, instance) -> bool:
    return isinstance(instance, str) and (bool(_INTEGER.match(instance.strip())) or is_expression(instance))


def _is_number(checker, instance) -> bool:
    return isinstance(instance, str) and (bool(_NUMBER.match(instance.strip())) or is_expression(instance))


def _is_array(checker, instance) -> bool:
    return isinstance(instance, list) or is_expression(instance)


def _is_object(checker, instance) -> bool:
    return isinstance(instance, dict) or is_expression(instance)


def _is_null(checker, instance) -> bool:
    return instance is None or instance in ("", "~", "null", "Null", "NULL")


_TYPE_CHECKER = Draft7Validator.TYPE_CHECKER.redefine_many(
    {
        "boolean": _is_boolean,
        "integer": _is_integer,
        "number": _is_number,
        "array": _is_array,
        "object": _is_object,
        "null": _is_null,
    }
)


@functools.cache
def _regex(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE if ignore_case else 0)


def _ignores_case(schema: Any, *kinds: str) -> bool:
    return isinstance(schema, dict) and schema.get("ignoreCase") in kinds


_KEY_INDEX: dict[int, tuple[dict[str, str], dict[str, str]]] = {}


def _lookup(properties: dict[str, Any], key: Any) -> str | None:
    """The property `key` stands for: exact name, an alias, or (with ``ignoreCase: key|all``) any case of them."""
    index = _KEY_INDEX.get(id(properties))
    if index is None:
        exact: dict[str, str] = {}
        folded: dict[str, str] = {}
        for name, sub in properties.items():
            for candidate in [name, *(sub.get("aliases", []) if isinstance(sub, dict) else [])]:
                exact.setdefault(candidate, name)
                if _ignores_case(sub, "key", "all"):
                    folded.setdefault(candidate.lower(), name)
        index = _KEY_INDEX[id(properties)] = (exact, folded)
    if not isinstance(key, str):
        return None
    return index[0].get(key) or index[1].get(key.lower())


def _properties(validator, properties, instance, schema) -> Iterator[ValidationError]:
    if not isinstance(instance, dict):
        return
    for key, value in instance.items():
        name = _lookup(properties, key)
        if name is not None:
            yield from validator.descend(value, properties[name], path=key, schema_path=name)


def _additional_properties(validator, additional, instance, schema) -> Iterator[ValidationError]:
    if not isinstance(instance, dict):
        return
    properties = schema.get("properties", {})
    patterns = schema.get("patternProperties", {})
    extras = [
        key
        for key in instance
        if _lookup(properties, key) is None and not any(_regex(p, False).search(str(key)) for p in patterns)
    ]
    if isinstance(additional, dict):
        for key in extras:
            yield from validator.descend(instance[key], additional, path=key)
    elif additional is False and extras:
        verb = "was" if len(extras) == 1 else "were"
        yield ValidationError(
            f"Additional properties are not allowed ({', '.join(map(repr, extras))} {verb} unexpected)"
        )


def _required(validator, required, instance, schema) -> Iterator[ValidationError]:
    if not isinstance(instance, dict):
        return
    properties = schema.get("properties", {})
    present = {_lookup(properties, key) or key for key in instance}
    for name in required:
        if name not in present:
            yield ValidationError(f"{name!r} is a required property")


def _enum(validator, enums, instance, schema) -> Iterator[ValidationError]:
    if is_expression(instance):
        return
    if isinstance(instance, str):
        fold = _ignores_case(schema, "value", "all")
        texts = [str(e).lower() if isinstance(e, bool) else str(e) for e in enums]
        if instance in texts or (fold and instance.lower() in {t.lower() for t in texts}):
            return
    elif instance in enums:
        return
    yield ValidationError(f"{instance!r} is not one of {enums!r}")


def _pattern(validator, pattern, instance, schema) -> Iterator[ValidationError]:
    if not isinstance(instance, str) or "${{" in instance or "$(" in instance or "$[" in instance:
        return
    if not _regex(pattern, _ignores_case(schema, "value", "all")).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _only(kind: type, keyword: str):
    """The Draft 7 keyword, applied only to real lists/maps/strings (expressions pass the type check)."""
    original = Draft7Validator.VALIDATORS[keyword]

    def check(validator, value, instance, schema):
        if isinstance(instance, kind):
            yield from original(validator, value, instance, schema)

    return check


PipelineValidator = validators.extend(
    Draft7Validator,
    validators={
        "properties": _properties,
        "additionalProperties": _additional_properties,
        "required": _required,
        "enum": _enum,
        "pattern": _pattern,
        "items": _only(list, "items"),
        "minItems": _only(list, "minItems"),
        "patternProperties": _only(dict, "patternProperties"),
        "minProperties": _only(dict, "minProperties"),
    },
    type_checker=_TYPE_CHECKER,
)


@functools.lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    document = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    Draft7Validator.check_schema(document)
    return document


@functools.cache
def validator(definition: str | None = None) -> Draft7Validator:
    """The (cached) validator for the whole schema, or for ``#/definitions/<definition>``."""
    root = schema()
    target = root if definition is None else {"$ref": f"#/definitions/{definition}", "definitions": root["definitions"]}
    return PipelineValidator(target)


# --- error pruning ---------------------------------------------------------------------------------------------


def _deref(branch: Any) -> Any:
    seen = 0
    while isinstance(branch, dict) and "$ref" in branch and seen < 20:
        branch = schema()["definitions"][branch["$ref"].rsplit("/", 1)[-1]]
        seen += 1
    return branch


def _branch_is_irrelevant(branch_schema: Any, errors: list[ValidationError], instance: Any) -> bool:
    """A branch the author clearly did not mean: wrong kind of node, absent first property, other task."""
    resolved = _deref(branch_schema)
    first = (resolved.get("firstProperty") or []) if isinstance(resolved, dict) else []
    if first and isinstance(instance, dict):
        keys = {str(k).lower() for k in instance}
        if not any(f.lower() in keys for f in first):
            return True
    for error in errors:
        relative = list(error.relative_path)
        if not relative and error.validator in ("type", "required"):
            return True
        if relative == ["task"] and error.validator in ("pattern", "enum"):
            return True
    return False


def _leaves(error: ValidationError) -> list[ValidationError]:
    if not error.context or not isinstance(error.instance, (dict, list)):
        return [error]
    by_branch: dict[int, list[ValidationError]] = {}
    for sub in error.context:
        by_branch.setdefault(sub.relative_schema_path[0], []).append(sub)
    leaves: list[ValidationError] = []
    for index, errors in sorted(by_branch.items()):
        if _branch_is_irrelevant(error.validator_value[index], errors, error.instance):
            continue
        for sub in errors:
            leaves.extend(_leaves(sub))
    return leaves or [error]


def _describe(error: ValidationError) -> str:
    path = "/".join(str(part) for part in error.absolute_path) or "<root>"
    if error.absolute_path and error.absolute_path[-1] == "task" and error.validator == "anyOf":
        return f"{path} :: unknown task {error.instance!r} (not a built-in task of the schema)"
    if error.validator == "anyOf" and not isinstance(error.instance, (dict, list)):
        return f"{path} :: {error.instance!r} is not a valid value here"
    return f"{path} :: {error.message if len(error.message) < 300 else error.message[:300] + '...'}"


def validate_document(document: Any) -> list[str]:
    """Problems in an already loaded (all-strings) document, as ``path :: message`` lines; [] when valid."""
    document = hoist(document)
    if isinstance(document, dict) and document and set(document) <= {"variables", "parameters"}:
        checker = validator("variablesTemplate")
    else:
        checker = validator()
    leaves: list[ValidationError] = []
    for error in checker.iter_errors(document):
        leaves.extend(_leaves(error))
    if not leaves:
        return []
    deepest = max(len(leaf.absolute_path) for leaf in leaves)
    return sorted({_describe(leaf) for leaf in leaves if len(leaf.absolute_path) == deepest})


def validate_text(text: str) -> list[str]:
    return validate_document(load_yaml(text))


def validate_file(path: str | Path) -> list[str]:
    return validate_text(Path(path).read_text(encoding="utf-8"))
