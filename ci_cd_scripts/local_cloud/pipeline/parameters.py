"""Typed ``parameters:`` of a pipeline or template: defaults, required values, types and ``values:``, checked
before anything runs (docs "Template parameters", https://learn.microsoft.com/azure/devops/pipelines/process/
template-parameters). Values from the command line (``--param NAME=VALUE``) are text and are converted here.
"""

from __future__ import annotations

from typing import Any

import yaml

from .expressions import equal, to_text
from .source import PipelineError, unsupported

_SCALAR_TYPES = ("string", "environment", "filepath", "pool", "securefile", "serviceconnection")
_ONE = {"step": "a step", "job": "a job", "deployment": "a deployment job", "stage": "a stage"}
_LISTS = {"steplist": "step", "joblist": "job", "deploymentlist": "deployment", "stagelist": "stage"}
TYPES = ("string", "number", "boolean", "object", "stringList", "step", "stepList", "job", "jobList")
TYPES += ("deployment", "deploymentList", "stage", "stageList", "environment", "filePath", "pool")
TYPES += ("secureFile", "serviceConnection")
_TRUE = ("true", "yes", "y", "on")
_FALSE = ("false", "no", "n", "off")


def _spec_list(spec: Any) -> list[dict]:
    """The parameter declarations; the legacy mapping form (``name: default``) becomes untyped objects."""
    if spec in (None, ""):
        return []
    if isinstance(spec, dict):
        return [{"name": name, "type": "object", "default": value} for name, value in spec.items()]
    if not isinstance(spec, list):
        raise PipelineError(spec, "parameters: must be a list of {name, type, default}")
    for item in spec:
        if not isinstance(item, dict) or "name" not in item:
            raise PipelineError(item if isinstance(item, dict) else spec, "each parameter needs a name:")
        if "${{" in str(item.get("name")):
            raise unsupported(item, "a template expression in a parameter declaration")
    return spec


def convert(value: Any, kind: str, name: str, node: Any, *, from_text: bool = False) -> Any:
    """`value` as a parameter of type `kind`; `PipelineError` naming the parameter if it does not fit."""
    lowered = kind.lower()
    if from_text and isinstance(value, str) and lowered not in _SCALAR_TYPES and lowered not in ("number", "boolean"):
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError as error:
            raise PipelineError(node, f"parameter {name}: not valid YAML for type {kind}: {error}") from None
    if lowered in _SCALAR_TYPES:
        if isinstance(value, (dict, list)):
            raise PipelineError(node, f"parameter {name} is of type {kind}: a value, not a list or mapping, expected")
        return to_text(value)
    if lowered == "number":
        try:
            number = float(to_text(value).strip())
        except ValueError:
            raise PipelineError(node, f"parameter {name} is of type number: {value!r} is not a number") from None
        return int(number) if number.is_integer() else number
    if lowered == "boolean":
        if isinstance(value, bool):
            return value
        text = to_text(value).strip().lower() if not isinstance(value, (dict, list)) else ""
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise PipelineError(node, f"parameter {name} is of type boolean: {value!r} is not true or false")
    if lowered == "object":
        return value
    if lowered == "stringlist":
        items = value if isinstance(value, list) else [value]
        if any(isinstance(item, (dict, list)) for item in items):
            raise PipelineError(node, f"parameter {name} is of type stringList: a list of values expected")
        return [to_text(item) for item in items]
    if lowered in _ONE:
        if not isinstance(value, dict):
            raise PipelineError(node, f"parameter {name} is of type {kind}: {_ONE[lowered]} (a mapping) expected")
        return value
    if lowered in _LISTS:
        items = [] if value in (None, "") else value
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise PipelineError(node, f"parameter {name} is of type {kind}: a list of mappings expected")
        return items
    raise PipelineError(node, f"parameter {name}: unknown type {kind!r} (one of {', '.join(TYPES)})")


def resolve(spec: Any, given: dict[str, Any], where_used: Any, *, from_text: bool = False) -> dict[str, Any]:
    """The parameter values of one template or pipeline: `given` checked against `spec`, defaults filled in.

    `where_used` is the node an error names (the template reference, or the pipeline file)."""
    declared = _spec_list(spec)
    names = {str(item["name"]).casefold(): item for item in declared}
    for name in given:
        if str(name).casefold() not in names:
            known = ", ".join(str(item["name"]) for item in declared) or "none"
            raise PipelineError(where_used, f"unexpected parameter {name!r} (declared: {known})")
    folded_given = {str(name).casefold(): value for name, value in given.items()}
    values: dict[str, Any] = {}
    for item in declared:
        name = str(item["name"])
        kind = str(item.get("type", "string"))
        if name.casefold() in folded_given:
            value, text = folded_given[name.casefold()], from_text
        elif "default" in item:
            value, text = item["default"], False
        else:
            raise PipelineError(where_used, f"parameter {name} is required (it has no default) and was not given")
        value = convert(value, kind, name, where_used if name.casefold() in folded_given else item, from_text=text)
        allowed = item.get("values")
        if allowed not in (None, "") and not any(equal(option, value) for option in allowed):
            options = ", ".join(to_text(option) for option in allowed)
            raise PipelineError(where_used, f"parameter {name}: {to_text(value)!r} is not one of {options}")
        values[name] = value
    return values
