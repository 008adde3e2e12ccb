"""Merging configuration trees: the generic merge (includes, targets) and the keyed list merges.

Part of the config loader (see `config`); nothing outside the config modules should need it. Rules: README
"Configuration", **Merging**; the reference is the Databricks CLI, databricks/cli ``libs/dyn/merge`` and
``bundle/config/mutator/merge_job_tasks.go`` (and its siblings for clusters and parameters).
Trees are plain JSON-like values: dict, list, str, int, float, bool, None.

Generic merge of *b* over *a*: a null side yields the other; maps merge key-wise (b wins at leaves); lists
concatenate; scalars of the same kind take b; different kinds are an error ``cannot merge <a> with <b>``.
Keyed merges collapse list elements with the same key (``task_key``, ``job_cluster_key``, ``name``,
``label``, ``principal``) after references are resolved, so a target can change one task field.
"""

from __future__ import annotations

import copy
from typing import Any

from .errors import ConfigError


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
    """Apply the reference's keyed list merges to a resolved ``resources`` section, in place.

    Every element of a keyed list must be a map (a task, a cluster, a grant...); anything else is a
    `ConfigError` naming its place, e.g. ``resources.jobs.j.tasks[0] must be a map, found nil``.
    """
    if not isinstance(resources, dict):
        return
    for name, job in _named(resources, "jobs"):
        for field, key in (("job_clusters", "job_cluster_key"), ("parameters", "name"), ("tasks", "task_key")):
            if isinstance(job.get(field), list):
                _require_maps(job[field], f"resources.jobs.{name}.{field}")
                job[field] = merge_by_key(job[field], key)
        if isinstance(job.get("tasks"), list):
            job["tasks"] = sorted(job["tasks"], key=lambda task: str(task.get("task_key", "")))
    for name, pipeline in _named(resources, "pipelines"):
        if isinstance(pipeline.get("clusters"), list):
            _require_maps(pipeline["clusters"], f"resources.pipelines.{name}.clusters")
            for cluster in pipeline["clusters"]:
                if not cluster.get("label"):
                    cluster["label"] = "default"
            pipeline["clusters"] = merge_by_key(pipeline["clusters"], "label", normalise=_label)
    for name, app in _named(resources, "apps"):
        if isinstance(app.get("resources"), list):
            _require_maps(app["resources"], f"resources.apps.{name}.resources")
            app["resources"] = _last_wins(app["resources"], "name")
    for kind_name in resources:
        for name, resource in _named(resources, kind_name):
            if isinstance(resource.get("grants"), list):
                _require_maps(resource["grants"], f"resources.{kind_name}.{name}.grants")
                resource["grants"] = _merge_grants(resource["grants"])


def _named(resources: dict, kind_name: str) -> list[tuple[str, dict]]:
    section = resources.get(kind_name)
    if not isinstance(section, dict):
        return []
    return [(name, value) for name, value in section.items() if isinstance(value, dict)]


def _require_maps(elements: list, where: str) -> None:
    for position, element in enumerate(elements):
        if not isinstance(element, dict):
            raise ConfigError(f"{where}[{position}] must be a map, found {kind(element)}")
