"""Targets: which one a run uses, and merging its body over the top level of the tree.

Part of the config loader, whose public face is `config` (`config.select_target` is re-exported there). Owns the
target selection order (``-t``, ``$DATABRICKS_BUNDLE_TARGET``, the only target, the ``default: true`` one) and
the target override: maps merge key by key, ``variables`` set only ``default`` or ``lookup``, ``run_as``
replaces, ``mode``/``cluster_id``/``git`` go to ``bundle``. Does not own the merge rules (`config_merge`) or
variable values (`config_variables`).

Rules: README "Configuration", **Targets** and **Merging**; the reference is the Databricks CLI
(databricks/cli ``bundle/config/mutator/select_target.go`` and the target merge in ``bundle/config/root.go``).
"""

from __future__ import annotations

import copy
from typing import Any

from .config_located import Diagnostic, location_of
from .config_merge import MergeError, merge
from .errors import ConfigError


def select_target(targets: dict, requested: str | None) -> str:
    """The target name to use (README "Configuration", **Targets**)."""
    if requested:
        if requested not in targets:
            raise ConfigError(
                f"{requested}: no such target. Available targets: {', '.join(targets)}",
                hint="pick one with -t/--target or DATABRICKS_BUNDLE_TARGET",
            )
        return requested
    if len(targets) == 1:
        return next(iter(targets))
    defaults = [name for name, body in targets.items() if isinstance(body, dict) and body.get("default") is True]
    if len(defaults) > 1:
        raise ConfigError(
            f"multiple targets are marked as default ({', '.join(defaults)})", hint="keep 'default: true' on one target"
        )
    if not defaults:
        raise ConfigError(
            "please specify target",
            hint=f"use -t/--target with one of {', '.join(targets)}, or mark one 'default: true'",
        )
    return defaults[0]


def apply_target(tree: dict, name: str, body: dict | None, warnings: list[str]) -> None:
    """Merge the selected target's body over the top level of `tree`, in place (README "Configuration",
    **Merging**); unknown target keys go to `warnings`."""
    body = body or {}
    bundle = tree.setdefault("bundle", {}) if body else tree.get("bundle")
    for key, value in body.items():
        if key in ("bundle", "workspace", "presets", "artifacts", "resources", "sync", "permissions", "deploy"):
            tree[key] = _merge_target(tree.get(key), value, name, key)
        elif key == "variables":
            _apply_target_variables(tree, name, value or {})
        elif key == "run_as":
            if value is not None:
                tree["run_as"] = copy.deepcopy(value)
        elif key == "mode":
            bundle["mode"] = value
        elif key == "cluster_id":
            bundle["cluster_id"] = value
        elif key == "git":
            bundle["git"] = _merge_target(bundle.get("git"), value, name, "git")
        elif key != "default":
            warnings.append(Diagnostic(f"unknown field: {key}", f"targets.{name}", location_of(key)))


def _merge_target(base: Any, over: Any, target: str, key: str) -> Any:
    try:
        return merge(base, over, key)
    except MergeError as error:
        raise ConfigError(
            f"failed to perform target override for target={target}: failed to merge target={target} "
            f"field={key}: {error.message}",
            hint=f"at {error.path}",
        ) from None


def _apply_target_variables(tree: dict, target: str, overrides: dict) -> None:
    declared = tree.setdefault("variables", {})
    for name, override in overrides.items():
        if name not in declared:
            raise ConfigError(
                f"failed to perform target override for target={target}: variable {name} is not "
                f"defined but is assigned a value",
                hint="declare it in the top-level 'variables'",
            )
        if override is None:
            continue
        declaration = declared[name]
        if "default" in override:
            declaration["default"] = copy.deepcopy(override["default"])
            declaration.pop("lookup", None)
        if "lookup" in override:
            declaration["lookup"] = copy.deepcopy(override["lookup"])
            declaration.pop("default", None)
