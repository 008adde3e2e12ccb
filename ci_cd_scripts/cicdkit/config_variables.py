"""Variables: their declarations checked, then each one given its value before references are resolved.

Part of the config loader, whose public face is `config`. Owns the declaration keys and lookup kinds, ``--var``
assignments, and the value precedence (``--var`` > ``BUNDLE_VAR_<name>`` > ``variable-overrides.json`` > the
default) with its errors (required variables, complex values), and which lookups to resolve (`config_lookups`
does it, through a client the caller gives). Does not
own reading the overrides file (`config_files`), a target's defaults (`config_targets`) or ``${var.x}``
references (`config_resolve`).

Rules: README "Configuration", **Variables** and **Lookups**; the reference is
the Databricks CLI (databricks/cli ``bundle/config/variable/variable.go`` and
``bundle/config/mutator/set_variables.go``).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from .config_files import read_overrides
from .config_located import Diagnostic, location_of
from .config_resolve import REFERENCE
from .errors import ConfigError

VARIABLE_KEYS = ("description", "default", "type", "lookup", "value")
LOOKUP_KINDS = (
    "alert",
    "cluster",
    "cluster_policy",
    "dashboard",
    "instance_pool",
    "job",
    "metastore",
    "notification_destination",
    "pipeline",
    "query",
    "service_principal",
    "warehouse",
)


def assign_cli_variables(declared: dict, assignments: Sequence[str]) -> None:
    """Set ``value`` from each ``NAME=VALUE`` of ``--var``, in place."""
    for text in assignments:
        name, sep, value = str(text).partition("=")
        if not sep:
            raise ConfigError(f"unexpected flag value for variable assignment: {text}", hint="use --var NAME=VALUE")
        if name not in declared:
            raise ConfigError(
                f"variable {name} has not been defined",
                hint=f"declare it under 'variables'; known: {', '.join(declared) or 'none'}",
            )
        declaration = declared[name]
        if declaration.get("type") == "complex":
            raise ConfigError(f"setting variables of complex type via --var flag is not supported: {name}")
        if "value" in declaration:
            raise ConfigError(
                f"failed to assign {value} to {name}: variable has already been assigned value: {declaration['value']}"
            )
        declaration["value"] = value


def assign_values(
    declared: dict,
    environ: Mapping[str, str],
    overrides_file: Path,
    lookups: Callable[[list[tuple[str, str]]], dict[tuple[str, str], str]] | None = None,
) -> list[str]:
    """Give every variable its value: env, lookup, overrides file, default, else an error (README
    "Configuration", **Variables** and **Lookups**). `lookups` answers the ids of ``(kind, name)`` pairs (None: no
    workspace to ask); returns the names of the lookup variables left without a value because of that."""
    file_values = read_overrides(overrides_file)
    lookup_names = {name for name, body in declared.items() if body.get("lookup")}
    pending: dict[str, tuple[str, str]] = {}
    for name, declaration in declared.items():
        if "value" in declaration:
            continue
        env_name = f"BUNDLE_VAR_{name}"
        if env_name in environ:
            if declaration.get("type") == "complex":
                raise ConfigError(
                    f"setting via environment variables ({env_name}) is not supported for complex variable {name}"
                )
            declaration["value"] = environ[env_name]
            continue
        if declaration.get("lookup"):
            text = json.dumps(declaration["lookup"])
            if any(
                match.group(1).split(".")[1:2] and match.group(1).split(".")[1] in lookup_names
                for match in REFERENCE.finditer(text)
                if match.group(1).startswith(("var.", "variables."))
            ):
                raise ConfigError("lookup variables cannot contain references to another lookup variables")
            (kind, target), *more = declaration["lookup"].items()
            if more:
                raise ConfigError(f"variables.{name}.lookup must name exactly one of {', '.join(LOOKUP_KINDS)}")
            pending[name] = (kind, target)
            continue
        if name in file_values:
            value = file_values[name]
            complex_value = isinstance(value, (dict, list))
            if declaration.get("type") == "complex" and not complex_value:
                raise ConfigError(
                    f"variable {name} is of type complex, but the value in the variable file is not a complex type"
                )
            if declaration.get("type") != "complex" and complex_value:
                raise ConfigError(
                    f"variable {name} is not of type complex, but the value in the variable file is a complex type"
                )
            declaration["value"] = copy.deepcopy(value)
            continue
        if declaration.get("default") is not None:
            declaration["value"] = copy.deepcopy(declaration["default"])
            continue
        raise ConfigError(
            f"no value assigned to required variable {name}. Variables are usually assigned in databricks.yml, and "
            f'they can be overridden using "--var", the {env_name} environment variable, or '
            ".databricks/bundle/<target>/variable-overrides.json"
        )
    # A lookup's name may use other (non-lookup) variables, whose values are known now.
    wanted = {name: (kind, _with_variables(str(target), declared)) for name, (kind, target) in pending.items()}
    if not wanted:
        return []
    if lookups is None:
        return sorted(wanted)
    ids = lookups(sorted(set(wanted.values())))
    for name, pair in wanted.items():
        declared[name]["value"] = ids[pair]
    return []


def _with_variables(text: str, declared: dict) -> str:
    def value(match) -> str:
        parts = match.group(1).split(".")
        if parts[0] == "var" and len(parts) == 2 and "value" in declared.get(parts[1], {}):
            return str(declared[parts[1]]["value"])
        return match.group(0)

    return REFERENCE.sub(value, text)


def normalise_variables(declared: dict, warnings: list[str]) -> None:
    """Null declarations become empty (required) ones; unknown keys and types warn; lookups are checked."""
    for name in list(declared):
        declared[name] = declared[name] or {}
        for key in list(declared[name]):
            if key not in VARIABLE_KEYS:
                warnings.append(Diagnostic(f"unknown field: {key}", f"variables.{name}", location_of(key)))
                del declared[name][key]
        kind = declared[name].get("type")
        if kind is not None and kind != "complex":
            warnings.append(
                Diagnostic(
                    f'invalid value "{kind}" for enum field. Valid values are [complex]',
                    f"variables.{name}.type",
                    location_of(kind),
                )
            )
        lookup = declared[name].get("lookup")
        if lookup is not None and (not isinstance(lookup, dict) or not set(lookup) <= set(LOOKUP_KINDS)):
            raise ConfigError(f"variables.{name}.lookup must map one of {', '.join(LOOKUP_KINDS)} to a name")
