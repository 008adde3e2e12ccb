"""Merging configuration trees: the generic merge (includes, targets) and the keyed list merges.

Part of the config loader (see `config`); nothing outside the config modules should need it.
Trees are plain JSON-like values: dict, list, str, int, float, bool, None.

Generic merge of *b* over *a*: a null side yields the other; maps merge key-wise (b wins at leaves); lists
concatenate; scalars of the same kind take b; different kinds are an error ``cannot merge <a> with <b>``.
Keyed merges collapse list elements with the same key (``task_key``, ``job_cluster_key``, ``name``,
``label``, ``principal``) after references are resolved, so a target can change one task field.
"""
from __future__ import annotations

import copy
from typing import Any

from errors import ConfigError


def kind(value: Any) -> str:
    """The reference's name for a value's kind (used in error messages)."""
    if value is None:
        return "nil"
    if isinstance(value, dict):
        return "map"
    if isinstance(value, list):
        return "sequence"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    return "time"


class MergeError(ConfigError):
    """Two values of different kinds meet at the same place in a merge."""

    def __init__(self, left: Any, right: Any, path: str) -> None:
        super().__init__(f"cannot merge {kind(left)} with {kind(right)}")
        self.path = path


def merge(base: Any, over: Any, path: str = "") -> Any:
    """Merge `over` onto `base` and return the result (inputs are not modified)."""
    if base is None:
        return copy.deepcopy(over)
    if over is None:
        return copy.deepcopy(base)
    if isinstance(base, dict) and isinstance(over, dict):
        result = copy.deepcopy(base)
        for key, value in over.items():
            child = f"{path}.{key}" if path else str(key)
            result[key] = merge(result[key], value, child) if key in result else copy.deepcopy(value)
        return result
    if isinstance(base, list) and isinstance(over, list):
        return copy.deepcopy(base) + copy.deepcopy(over)
    if kind(base) == kind(over):
        return copy.deepcopy(over)
    raise MergeError(base, over, path)


def merge_by_key(elements: list, key: str, *, normalise=None) -> list:
    """Collapse elements sharing `key` (missing key counts as ""), generic-merging later ones into the first."""
    merged: dict[Any, Any] = {}
    for element in elements:
        if not isinstance(element, dict):
            return elements
        value = element.get(key)
        value = "" if value is None else value
        if normalise:
            value = normalise(value)
        if value in merged:
            merged[value] = merge(merged[value], element)
        else:
            merged[value] = copy.deepcopy(element)
        merged[value][key] = value
    return list(merged.values())


def _merge_grants(grants: list) -> list:
    by_principal: dict[Any, dict] = {}
    for grant in grants:
        if not isinstance(grant, dict):
            return grants
        principal = grant.get("principal", "")
        if principal in by_principal:
            privileges = by_principal[principal].setdefault("privileges", [])
            privileges.extend(grant.get("privileges") or [])
        else:
            by_principal[principal] = copy.deepcopy(grant)
    for grant in by_principal.values():
        if isinstance(grant.get("privileges"), list):
            unique = []
            for privilege in grant["privileges"]:
                if privilege not in unique:
                    unique.append(privilege)
            grant["privileges"] = unique
    return list(by_principal.values())


def _label(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _last_wins(elements: list, key: str) -> list:
    chosen: dict[Any, Any] = {}
    for element in elements:
        if not isinstance(element, dict):
            return elements
        chosen[element.get(key, "")] = copy.deepcopy(element)
    return list(chosen.values())


def apply_keyed_merges(resources: dict) -> None:
    """Apply the reference's keyed list merges to a resolved ``resources`` section, in place."""
    if not isinstance(resources, dict):
        return
    for job in _items(resources.get("jobs")):
        if isinstance(job.get("job_clusters"), list):
            job["job_clusters"] = merge_by_key(job["job_clusters"], "job_cluster_key")
        if isinstance(job.get("parameters"), list):
            job["parameters"] = merge_by_key(job["parameters"], "name")
        if isinstance(job.get("tasks"), list):
            tasks = merge_by_key(job["tasks"], "task_key")
            job["tasks"] = sorted(tasks, key=lambda task: str(task.get("task_key", "")))
    for pipeline in _items(resources.get("pipelines")):
        if isinstance(pipeline.get("clusters"), list):
            for cluster in pipeline["clusters"]:
                if isinstance(cluster, dict) and not cluster.get("label"):
                    cluster["label"] = "default"
            pipeline["clusters"] = merge_by_key(pipeline["clusters"], "label", normalise=_label)
    for app in _items(resources.get("apps")):
        if isinstance(app.get("resources"), list):
            app["resources"] = _last_wins(app["resources"], "name")
    for kind_resources in resources.values():
        for resource in _items(kind_resources):
            if isinstance(resource.get("grants"), list):
                resource["grants"] = _merge_grants(resource["grants"])


def _items(section: Any) -> list[dict]:
    if not isinstance(section, dict):
        return []
    return [value for value in section.values() if isinstance(value, dict)]
