"""Loading config.json (or databricks.yml) with Databricks Asset Bundle semantics — the only module that knows them.

`load` reads the root file and its includes, selects a target and merges it, assigns variables, resolves
``${...}`` references, applies modes and presets, and returns a `Config` whose ``tree`` has the shape of
``databricks bundle validate --output json``. Every user mistake raises `errors.ConfigError` with a message
naming the file, field or variable. The rules and message texts follow shared/reference/config-semantics.md;
README "Configuration" lists what is not supported and why.

Helpers live in ``config_merge`` (merging), ``config_resolve`` (references), ``config_resources`` (modes,
presets, resource defaults) and ``config_sync`` (file selection); nothing else imports those.
This module does no network I/O: the current user is passed in (``validate_config.py`` fetches it).
"""
from __future__ import annotations

import copy
import glob
import json
import math
import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import config_resources as resources_
from . import config_sync
from .config_merge import MergeError, apply_keyed_merges, merge
from .config_merge import kind as _kind
from .config_resolve import REFERENCE, Resolver
from .errors import ConfigError

ROOT_FILE_NAMES = ("config.json", "databricks.yml", "databricks.yaml", "bundle.yml", "bundle.yaml")
INCLUDE_SUFFIXES = (".yml", ".yaml", ".json")
TOP_LEVEL_KEYS = (
    "bundle", "include", "workspace", "variables", "artifacts", "resources", "sync", "permissions", "presets",
    "targets", "environments", "run_as", "experimental", "scripts", "python", "deploy",
)
VARIABLE_KEYS = ("description", "default", "type", "lookup", "value")
LOOKUP_KINDS = (
    "alert", "cluster", "cluster_policy", "dashboard", "instance_pool", "job", "metastore",
    "notification_destination", "pipeline", "query", "service_principal", "warehouse",
)
# Target override forms kept as full definitions; any other map/list is the default value itself.
_DEFINITION_KEY_SETS = (
    {"default"}, {"lookup"}, {"default", "type"}, {"default", "description"}, {"lookup", "description"},
    {"default", "type", "description"},
)
AUTH_FIELDS = (
    "host", "profile", "auth_type", "client_id", "google_service_account", "account_id", "workspace_id",
    "metadata_service_url",
)
WORKSPACE_PATHS = (("file_path", "files"), ("resource_path", "resources"), ("artifact_path", "artifacts"),
                   ("state_path", "state"))
DEPLOY_KEYS = {
    "clusters": list, "libraries_path": str, "init_script_path": str, "notebooks_path": str,
    "test_notebooks": list, "keyvault": dict, "concurrency": int, "timeout_seconds": int, "rate_limits": dict,
}
# Typed fields: a string from a pure ${...} reference (e.g. a --var) is converted to the field's type.
TYPED_FIELDS = {
    "presets.jobs_max_concurrent_runs": int, "presets.pipelines_development": bool,
    "presets.source_linked_deployment": bool, "bundle.deployment.lock.enabled": bool,
    "bundle.deployment.fail_on_active_runs": bool,
    "resources.jobs.*.max_concurrent_runs": int, "resources.jobs.*.timeout_seconds": int,
    "resources.jobs.*.tasks[].timeout_seconds": int, "resources.jobs.*.tasks[].max_retries": int,
    "resources.jobs.*.tasks[].min_retry_interval_millis": int, "resources.jobs.*.tasks[].retry_on_timeout": bool,
    "resources.jobs.*.tasks[].new_cluster.num_workers": int,
    "resources.jobs.*.tasks[].new_cluster.autoscale.min_workers": int,
    "resources.jobs.*.tasks[].new_cluster.autoscale.max_workers": int,
    "resources.jobs.*.job_clusters[].new_cluster.num_workers": int,
    "resources.jobs.*.job_clusters[].new_cluster.autoscale.min_workers": int,
    "resources.jobs.*.job_clusters[].new_cluster.autoscale.max_workers": int,
    "resources.jobs.*.queue.enabled": bool,
    "resources.pipelines.*.development": bool, "resources.pipelines.*.continuous": bool,
    "resources.pipelines.*.photon": bool, "resources.pipelines.*.serverless": bool,
    "resources.pipelines.*.clusters[].num_workers": int,
    "resources.clusters.*.num_workers": int, "resources.clusters.*.autotermination_minutes": int,
    "deploy.concurrency": int, "deploy.timeout_seconds": int,
}
BUNDLE_NAME_WARNING = (
    "Please do not use variable interpolation in the name of your bundle. The name identifies the deployment; "
    "use a fixed name."
)
AUTH_WARNING = "Variable interpolation is not supported for fields that configure authentication"


@dataclass
class Config:
    """A resolved configuration for one target."""

    tree: dict
    target: str
    warnings: list[str] = field(default_factory=list)
    root: Path = Path(".")
    files: list[Path] = field(default_factory=list)
    deploy: dict = field(default_factory=dict)
    host: str | None = None
    current_user: dict | None = None
    sync_root: Path = Path(".")

    def sync_files(self) -> tuple[list[str], list[str]]:
        """Files selected for upload (relative to ``sync_root``) and the validate warnings about them."""
        sync = self.tree.get("sync") or {}
        return config_sync.check(self.sync_root, sync.get("paths") or [], sync.get("include") or [],
                                 sync.get("exclude") or [])


# --------------------------------------------------------------------------------------------- files


class _Loader(yaml.SafeLoader):
    """YAML 1.2 scalars: only true/false are booleans, dates stay strings (as the reference reads them)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def read_file(path: Path, *, root: bool = False) -> dict:
    """Parse one config file (JSON or YAML); a syntax error names the file, line and column.

    An empty file (nothing but whitespace, comments or ``null``) is an empty include, but as the `root` file it
    is an error: it would otherwise resolve to a bundle with no name, host or settings and validate OK."""
    try:
        text = path.read_text(encoding="utf-8-sig")  # editors on Windows may start the file with a BOM
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found", hint="pass --config PATH") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read config file {path}: {error}") from None
    if path.suffix == ".json":
        try:
            data = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float) if text.strip() else None
        except json.JSONDecodeError as error:
            raise ConfigError(f"{path}:{error.lineno}:{error.colno}: invalid JSON: {error.msg}") from None
        except RecursionError:
            raise ConfigError(f"{path}: invalid JSON: nested too deeply", hint=f"at most {MAX_DEPTH} levels") from None
        except ValueError as error:  # NaN, Infinity or an overflowing number: JSON output could not hold it
            raise ConfigError(f"{path}: invalid JSON: {error}", hint="write a finite number or a quoted string") from None
    else:
        try:
            data = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
        except yaml.MarkedYAMLError as error:
            mark = error.problem_mark or error.context_mark
            where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
            raise ConfigError(f"{where}: invalid YAML: {error.problem or error.context}") from None
        except yaml.YAMLError as error:
            raise ConfigError(f"{path}: invalid YAML: {error}") from None
        except RecursionError:
            raise ConfigError(f"{path}: invalid YAML: nested too deeply", hint=f"at most {MAX_DEPTH} levels") from None
    if data is None:
        if root:
            example = '{"bundle": {"name": "<name>"}}' if path.suffix == ".json" else "bundle: {name: <name>}"
            raise ConfigError(f"{path} is empty: it holds no settings",
                              hint=f"write at least {example} in it, plus the workspace.host of each target (README "
                              '"Configuration"), or pass --config with the right file')
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, found {_kind(data)}")
    _check_values(data, path)
    return _string_keys(data)


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def _finite_float(text: str) -> float:
    number = float(text)
    if math.isinf(number):
        raise ValueError(f"{text} is too large for a number")
    return number


# Real configs are a few levels deep and a few thousand values; the caps stop a YAML alias bomb (anchors that
# repeat each other until the expanded tree is huge), a self-referencing anchor, or 3000 nested brackets
# before any later step walks them.
MAX_DEPTH = 100
MAX_VALUES = 500_000


def _check_values(data: dict, path: Path) -> None:
    """Depth, expanded size (aliases counted each time they are used) and finite numbers, one walk."""
    count = 0
    pending: list[tuple[Any, str, int]] = [(data, "", 0)]
    while pending:
        value, where, depth = pending.pop()
        count += 1
        if count > MAX_VALUES:
            raise ConfigError(f"{path}: expands to more than {MAX_VALUES} values",
                              hint="YAML anchors/aliases that repeat large blocks are refused; write the values out")
        if depth > MAX_DEPTH:
            shown = where if len(where) < 80 else where[:77] + "..."
            raise ConfigError(f"{path}: {shown} is nested more than {MAX_DEPTH} levels deep",
                              hint="a YAML anchor that refers to itself, or too many brackets")
        if isinstance(value, float) and not math.isfinite(value):
            # NaN and infinities (YAML .nan/.inf) cannot be written as JSON, which every consumer reads.
            raise ConfigError(f"{path}: {where or 'value'} is {value!r}, which is not a finite number",
                              hint="write a finite number or a quoted string")
        if isinstance(value, dict):
            pending.extend((item, f"{where}.{key}" if where else str(key), depth + 1) for key, item in value.items())
        elif isinstance(value, list):
            pending.extend((item, f"{where}[{position}]", depth + 1) for position, item in enumerate(value))


def _string_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): _string_keys(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_string_keys(item) for item in value]
    return value


def find_root_file(path: str | os.PathLike[str]) -> Path:
    """The root config file: `path` itself, or the one root file name present in a folder."""
    path = Path(path)
    if not path.is_dir():
        if not path.exists():
            raise ConfigError(f"config file {path} not found", hint="pass --config PATH (a file or a folder)")
        return path
    found = [path / name for name in ROOT_FILE_NAMES if (path / name).is_file()]
    if len(found) > 1:
        raise ConfigError(f"multiple bundle root configuration files found in {path}",
                          hint=f"keep one of {', '.join(p.name for p in found)}")
    if not found:
        raise ConfigError(f"no config.json or databricks.yml found in {path}",
                          hint=f"expected one of {', '.join(ROOT_FILE_NAMES)}")
    return found[0]


# Known fields of the small sections; anything else gives an `unknown field` warning (as in the reference).
SECTION_FIELDS = {
    "bundle": ("name", "target", "environment", "mode", "cluster_id", "compute_id", "git", "deployment", "uuid",
               "databricks_cli_version"),
    "workspace": ("host", "profile", "auth_type", "root_path", "file_path", "artifact_path", "resource_path",
                  "state_path", "client_id", "google_service_account", "account_id", "workspace_id",
                  "metadata_service_url", "current_user", "experimental_is_unified_host"),
    "presets": ("name_prefix", "tags", "jobs_max_concurrent_runs", "trigger_pause_status", "pipelines_development",
                "source_linked_deployment", "artifacts_dynamic_version"),
    "sync": ("paths", "include", "exclude"),
}
_SECTION_SHAPES = {
    "bundle": dict, "include": list, "workspace": dict, "variables": dict, "artifacts": dict, "resources": dict,
    "sync": dict, "permissions": list, "presets": dict, "targets": dict, "environments": dict, "run_as": dict,
    "deploy": dict,
}


def _check_shapes(data: dict, source: Path, warnings: list[str]) -> None:
    """Structural type checks for one file; wrong shapes are errors (the reference only warns and drops them)."""
    for key in list(data):
        if key not in TOP_LEVEL_KEYS:
            warnings.append(f"unknown field: {key} (in {source.name})")
            del data[key]
    _check_block(data, "", source, warnings)
    for entry in data.get("include") or []:
        _expect(entry, str, "include[]", source, allow_none=False)
    for name, body in (data.get("variables") or {}).items():
        if body is not None and not isinstance(body, dict):
            raise ConfigError(f"{source}: variables.{name} must be a mapping such as {{\"default\": ...}}, "
                              f"found {_kind(body)}")
    for section in ("targets", "environments"):
        for name, body in (data.get(section) or {}).items():
            _expect(body, dict, f"{section}.{name}", source)
            _check_block(body or {}, f"{section}.{name}.", source, warnings)


def _check_block(block: dict, prefix: str, source: Path, warnings: list[str]) -> None:
    """Shapes of the sections a file's top level and a target share."""
    for key, shape in _SECTION_SHAPES.items():
        if key in block and block[key] is None:
            del block[key]  # `workspace:` with only a comment, or JSON null: absent, as the reference reads it
        elif key in block:
            _expect(block[key], shape, prefix + key, source)
    for section, fields in SECTION_FIELDS.items():
        for key in list(block.get(section) or {}):
            if key not in fields and not (section == "workspace" and key.startswith("azure_")):
                warnings.append(f"unknown field: {key} (at {prefix}{section}.{key} in {source.name})")
                del block[section][key]
    for key in ("paths", "include", "exclude"):
        _expect((block.get("sync") or {}).get(key), list, f"{prefix}sync.{key}", source)
    for kind, section in (block.get("resources") or {}).items():
        _expect(section, dict, f"{prefix}resources.{kind}", source)
        for key, body in (section or {}).items():
            _expect(body, dict, f"{prefix}resources.{kind}.{key}", source)
    for key, value in (block.get("workspace") or {}).items():
        if key in ("host", "profile", "auth_type") or key.endswith("_path"):
            _expect(value, str, f"{prefix}workspace.{key}", source)
    _expect_maps(block.get("permissions"), f"{prefix}permissions", source)
    presets = block.get("presets") or {}
    for key, shape in (("name_prefix", str), ("tags", dict), ("trigger_pause_status", str)):
        _expect_value(presets.get(key), shape, f"{prefix}presets.{key}", source)
    for name, artifact in (block.get("artifacts") or {}).items():
        if isinstance(artifact, dict):
            _expect_maps(artifact.get("files"), f"{prefix}artifacts.{name}.files", source)
            for key in ("type", "path", "build"):
                _expect_value(artifact.get(key), str, f"{prefix}artifacts.{name}.{key}", source)
    for kind, section in (block.get("resources") or {}).items():
        for key, body in (section or {}).items():
            where, body = f"{prefix}resources.{kind}.{key}", body or {}
            for field_name in RESOURCE_MAP_LISTS.get(kind, ()) + ("permissions", "grants"):
                _expect_maps(body.get(field_name), f"{where}.{field_name}", source)
            for field_name in RESOURCE_MAPS.get(kind, ()):
                _expect_value(body.get(field_name), dict, f"{where}.{field_name}", source)
            _expect_value(body.get("name"), str, f"{where}.name", source)
            for task_position, task in enumerate(body.get("tasks") if kind == "jobs" and
                                                 isinstance(body.get("tasks"), list) else []):
                for field_name in ("libraries", "depends_on") if isinstance(task, dict) else ():
                    _expect_maps(task.get(field_name), f"{where}.tasks[{task_position}].{field_name}", source)
    if "name" in (block.get("bundle") or {}):
        _expect(block["bundle"]["name"], str, f"{prefix}bundle.name", source)


# Lists of maps under a resource (a `${var.x}` reference to a complex variable is checked after resolving).
RESOURCE_MAP_LISTS = {
    "jobs": ("tasks", "job_clusters", "parameters", "environments"),
    "pipelines": ("clusters", "libraries", "notifications"),
}

# Map fields per resource kind (only where the API shape is a map: `tags` of a model or experiment is a list).
RESOURCE_MAPS = {
    "jobs": ("tags", "email_notifications", "schedule", "trigger", "continuous", "queue"),
    "pipelines": ("configuration", "tags"),
    "clusters": ("spark_conf", "custom_tags", "spark_env_vars"),
}


def _is_reference(value: Any) -> bool:
    return isinstance(value, str) and REFERENCE.fullmatch(value.strip()) is not None


def _expect_value(value: Any, shape: type, where: str, source: Path) -> None:
    """`_expect`, but a whole-value ``${...}`` reference is accepted (its value is checked when resolved)."""
    if not _is_reference(value):
        _expect(value, shape, where, source)


def _expect_maps(value: Any, where: str, source: Path) -> None:
    """A sequence of maps (tasks, permissions, artifact files...), or null, or a whole-value reference."""
    if value is None or _is_reference(value):
        return
    _expect(value, list, where, source)
    for position, element in enumerate(value):
        if not _is_reference(element):
            _expect(element, dict, f"{where}[{position}]", source, allow_none=False)


def _expect(value: Any, shape: type | None, where: str, source: Path, allow_none: bool = True) -> None:
    if shape is None or (value is None and allow_none) or isinstance(value, shape):
        return
    names = {dict: "map", list: "sequence", str: "string"}
    raise ConfigError(f"{source}: {where} must be a {names.get(shape, shape.__name__)}, found {_kind(value)}")


def _prepare_file(data: dict, source: Path, root: Path) -> None:
    """Per-file rewrites: relative paths onto the bundle root, target variable shorthands, legacy names."""
    folder = os.path.relpath(source.parent, root)
    folder = "" if folder == "." else Path(folder).as_posix()
    if "environments" in data:
        if "targets" in data:
            raise ConfigError(
                f"both 'environments' and 'targets' are specified; only 'targets' should be used: {source}")
        data["targets"] = data.pop("environments")
    blocks = [data] + [body for body in (data.get("targets") or {}).values() if isinstance(body, dict)]
    for block in blocks:
        sync = block.get("sync") or {}
        for key in ("paths", "include", "exclude"):
            if isinstance(sync.get(key), list):
                sync[key] = [config_sync.clean_pattern(str(entry), folder) for entry in sync[key]]
        for artifact in (block.get("artifacts") or {}).values():
            if isinstance(artifact, dict):
                if isinstance(artifact.get("path"), str):
                    artifact["path"] = os.path.normpath(os.path.join(source.parent, artifact["path"]))
                for item in artifact.get("files") or []:
                    if isinstance(item, dict) and isinstance(item.get("source"), str):
                        item["source"] = os.path.normpath(os.path.join(source.parent, item["source"]))
        if isinstance(block.get("resources"), dict):
            resources_.rebase_local_paths(block["resources"], folder)
        if block is not data and "compute_id" in block:
            block.setdefault("cluster_id", block.pop("compute_id"))
    declared = data.get("variables") or {}
    for body in (data.get("targets") or {}).values():
        if isinstance(body, dict) and isinstance(body.get("variables"), dict):
            body["variables"] = {
                name: _target_variable(value, declared.get(name)) for name, value in body["variables"].items()
            }


def _target_variable(value: Any, declaration: Any) -> Any:
    """A target's variable entry as a definition ({default} or {lookup}), expanding the shorthand forms."""
    if value is None:
        return None
    if isinstance(value, (dict, list)):
        if isinstance(declaration, dict) and declaration.get("type") == "complex":
            return {"type": "complex", "default": value}
        if isinstance(value, dict) and set(value) in _DEFINITION_KEY_SETS:
            return value
    return {"default": value}


# ------------------------------------------------------------------------------------------ includes


def _expand_includes(entries: list[str], root: Path, loaded: set[Path]) -> list[Path]:
    if entries and any(char in str(root) for char in "*?["):
        raise ConfigError("Bundle root path contains glob pattern characters",
                          hint=f"move the project out of {root}")
    files: list[Path] = []
    for entry in entries:
        if os.path.isabs(entry) or entry.startswith(("/", "\\")):
            raise ConfigError(f"{entry}: includes must be relative paths")
        matches = sorted(glob.glob(entry, root_dir=root))
        if not matches and not any(char in entry for char in "*?["):
            raise ConfigError(f"{entry} defined in 'include' section does not match any files")
        for match in matches:
            path = Path(os.path.normpath(root / match))
            if path.is_dir():
                continue
            if not path.name.endswith(INCLUDE_SUFFIXES):
                raise ConfigError("Files in the 'include' configuration section must be YAML or JSON files.",
                                  hint=f"{match} matched")
            if path in loaded:
                continue
            loaded.add(path)
            files.append(path)
    return files


def _resource_keys(data: dict, source: Path, seen: dict[str, str]) -> None:
    for kind, section in (data.get("resources") or {}).items():
        for key in (section or {}):
            if "${" in key:
                raise ConfigError(f'resource key "{key}" must not contain variable references', hint=f"in {source}")
            if key in seen:
                raise ConfigError(f"multiple resources or scripts have been defined with the same key: {key}",
                                  hint=f"{seen[key]} and {kind} in {source.name}")
            seen[key] = f"{kind} in {source.name}"
    for body in (data.get("targets") or {}).values():
        for section in ((body or {}).get("resources") or {}).values():
            for key in (section or {}):
                if "${" in key:
                    raise ConfigError(f'resource key "{key}" must not contain variable references',
                                      hint=f"in {source}")


# ------------------------------------------------------------------------------------------- targets


def select_target(targets: dict, requested: str | None) -> str:
    """The target name to use (section 3)."""
    if requested:
        if requested not in targets:
            raise ConfigError(
                f"{requested}: no such target. Available targets: {', '.join(targets)}",
                hint="pick one with -t/--target or DATABRICKS_BUNDLE_TARGET")
        return requested
    if len(targets) == 1:
        return next(iter(targets))
    defaults = [name for name, body in targets.items() if isinstance(body, dict) and body.get("default") is True]
    if len(defaults) > 1:
        raise ConfigError(f"multiple targets are marked as default ({', '.join(defaults)})",
                          hint="keep 'default: true' on one target")
    if not defaults:
        raise ConfigError("please specify target",
                          hint=f"use -t/--target with one of {', '.join(targets)}, or mark one 'default: true'")
    return defaults[0]


def _apply_target(tree: dict, name: str, body: dict | None, warnings: list[str]) -> None:
    """Merge the selected target's body over the top level (section 4.2)."""
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
            warnings.append(f"unknown field: {key} (in target {name})")


def _merge_target(base: Any, over: Any, target: str, key: str) -> Any:
    try:
        return merge(base, over, key)
    except MergeError as error:
        raise ConfigError(
            f"failed to perform target override for target={target}: failed to merge target={target} "
            f"field={key}: {error.message}", hint=f"at {error.path}") from None


def _apply_target_variables(tree: dict, target: str, overrides: dict) -> None:
    declared = tree.setdefault("variables", {})
    for name, override in overrides.items():
        if name not in declared:
            raise ConfigError(f"failed to perform target override for target={target}: variable {name} is not "
                              f"defined but is assigned a value", hint="declare it in the top-level 'variables'")
        if override is None:
            continue
        declaration = declared[name]
        if "default" in override:
            declaration["default"] = copy.deepcopy(override["default"])
            declaration.pop("lookup", None)
        if "lookup" in override:
            declaration["lookup"] = copy.deepcopy(override["lookup"])
            declaration.pop("default", None)


# ----------------------------------------------------------------------------------------- variables


def _assign_cli_variables(declared: dict, assignments: Sequence[str]) -> None:
    for text in assignments:
        name, sep, value = str(text).partition("=")
        if not sep:
            raise ConfigError(f"unexpected flag value for variable assignment: {text}", hint="use --var NAME=VALUE")
        if name not in declared:
            raise ConfigError(f"variable {name} has not been defined",
                              hint=f"declare it under 'variables'; known: {', '.join(declared) or 'none'}")
        declaration = declared[name]
        if declaration.get("type") == "complex":
            raise ConfigError(f"setting variables of complex type via --var flag is not supported: {name}")
        if "value" in declaration:
            raise ConfigError(f"failed to assign {value} to {name}: variable has already been assigned value: "
                              f"{declaration['value']}")
        declaration["value"] = value


def _assign_values(declared: dict, environ: Mapping[str, str], overrides_file: Path) -> None:
    """Give every variable its value (section 6.4): env, lookup, overrides file, default, else an error."""
    file_values = _read_overrides(overrides_file)
    lookup_names = {name for name, body in declared.items() if body.get("lookup")}
    for name, declaration in declared.items():
        if "value" in declaration:
            continue
        env_name = f"BUNDLE_VAR_{name}"
        if env_name in environ:
            if declaration.get("type") == "complex":
                raise ConfigError(f"setting via environment variables ({env_name}) is not supported for complex "
                                  f"variable {name}")
            declaration["value"] = environ[env_name]
            continue
        if declaration.get("lookup"):
            text = json.dumps(declaration["lookup"])
            if any(match.group(1).split(".")[1:2] and match.group(1).split(".")[1] in lookup_names
                   for match in REFERENCE.finditer(text) if match.group(1).startswith(("var.", "variables."))):
                raise ConfigError("lookup variables cannot contain references to another lookup variables")
            raise ConfigError(
                f"variable {name} is resolved by a lookup ({text}), which this tool does not support",
                hint=f"set it with --var {name}=<id> or the {env_name} environment variable")
        if name in file_values:
            value = file_values[name]
            complex_value = isinstance(value, (dict, list))
            if declaration.get("type") == "complex" and not complex_value:
                raise ConfigError(f"variable {name} is of type complex, but the value in the variable file is not a "
                                  "complex type")
            if declaration.get("type") != "complex" and complex_value:
                raise ConfigError(f"variable {name} is not of type complex, but the value in the variable file is a "
                                  "complex type")
            declaration["value"] = copy.deepcopy(value)
            continue
        if declaration.get("default") is not None:
            declaration["value"] = copy.deepcopy(declaration["default"])
            continue
        raise ConfigError(
            f"no value assigned to required variable {name}. Variables are usually assigned in databricks.yml, and "
            f"they can be overridden using \"--var\", the {env_name} environment variable, or "
            ".databricks/bundle/<target>/variable-overrides.json")


def _read_overrides(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"), parse_constant=_reject_constant,
                          parse_float=_finite_float)
    except (ValueError, OSError) as error:
        raise ConfigError(f"failed to parse variables file {path}: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"failed to parse variables file {path}: invalid format")
    return data


# ---------------------------------------------------------------------------------------------- load


def _load_files(root_file: Path, warnings: list[str]) -> tuple[dict, list[Path]]:
    """The root file merged with its includes (section 5), and the files loaded, root first."""
    root = root_file.parent
    tree = read_file(root_file, root=True)
    _check_shapes(tree, root_file, warnings)
    _prepare_file(tree, root_file, root)
    files = [root_file]
    keys: dict[str, str] = {}
    _resource_keys(tree, root_file, keys)
    loaded = {root / name for name in ROOT_FILE_NAMES}
    for include in _expand_includes(tree.get("include") or [], root, loaded):
        data = read_file(include)
        _check_shapes(data, include, warnings)
        if data.pop("include", None):
            warnings.append(f"Include section is defined outside root file: {_relative(include, root)} "
                            "(Only includes defined in the root file are applied.)")
        _prepare_file(data, include, root)
        _resource_keys(data, include, keys)
        try:
            tree = merge(tree, data)
        except MergeError as error:
            raise ConfigError(f"{include}: {error.message}", hint=f"at {error.path}") from None
        files.append(include)
    tree["include"] = [_relative(file, root) for file in files[1:]]
    return tree, files


def _relative(path: Path, root: Path) -> str:
    return Path(os.path.relpath(path, root)).as_posix()


def _normalise_variables(declared: dict, warnings: list[str]) -> None:
    """Null declarations become empty (required) ones; unknown keys and types warn; lookups are checked."""
    for name in list(declared):
        declared[name] = declared[name] or {}
        for key in list(declared[name]):
            if key not in VARIABLE_KEYS:
                warnings.append(f"unknown field: {key} (in variables.{name})")
                del declared[name][key]
        kind = declared[name].get("type")
        if kind is not None and kind != "complex":
            warnings.append(f'invalid value "{kind}" for enum field. Valid values are [complex] (variables.{name}.type)')
        lookup = declared[name].get("lookup")
        if lookup is not None and (not isinstance(lookup, dict) or not set(lookup) <= set(LOOKUP_KINDS)):
            raise ConfigError(f"variables.{name}.lookup must map one of {', '.join(LOOKUP_KINDS)} to a name")


def load(
    path: str | os.PathLike[str] = "config.json",
    target: str | None = None,
    variables: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
    current_user: str | Mapping[str, Any] | None = None,
) -> Config:
    """Load and resolve the configuration for one target. Raises `ConfigError`.

    `variables` are ``NAME=VALUE`` strings (as from ``--var``); `current_user` is a userName or a SCIM ``Me``
    document (None leaves ``${workspace.current_user.*}`` unresolved, with a warning).
    """
    environ = os.environ if environ is None else environ
    warnings: list[str] = []
    root_file = find_root_file(path).resolve()
    root = root_file.parent
    tree, files = _load_files(root_file, warnings)
    _normalise_variables(tree.setdefault("variables", {}), warnings)
    bundle = tree.setdefault("bundle", {})
    if "compute_id" in bundle:
        bundle.setdefault("cluster_id", bundle.pop("compute_id"))

    # Target selection and merge.
    targets = tree.pop("targets", None) or {"default": None}
    requested = target or environ.get("DATABRICKS_BUNDLE_TARGET") or environ.get("DATABRICKS_BUNDLE_ENV")
    name = select_target(targets, requested)
    body = targets[name]
    root_path_in_target = bool(((body or {}).get("workspace") or {}).get("root_path"))
    _apply_target(tree, name, body, warnings)
    bundle = tree.setdefault("bundle", {})
    bundle["target"] = name
    bundle["environment"] = name
    _assign_cli_variables(tree.get("variables") or {}, variables)

    # Initialize: warnings, sync, current user, workspace paths, variable values.
    if "${" in str(bundle.get("name") or ""):
        warnings.append(BUNDLE_NAME_WARNING)
    workspace = tree.setdefault("workspace", {})
    auth_paths = {("workspace", key) for key in workspace if key in AUTH_FIELDS or key.startswith("azure_")}
    if any("${" in str(workspace[key]) for _, key in auth_paths):
        warnings.append(AUTH_WARNING)
    sync_root = _prepare_sync(tree, root)
    user = resources_.user_record(current_user)
    if user:
        workspace["current_user"] = user
    _git_details(bundle, root)
    _check_artifacts(tree.get("artifacts"))
    _default_workspace_paths(workspace, bundle, name, user, warnings)
    _assign_values(tree.get("variables") or {}, environ, root / ".databricks" / "bundle" / name /
                   "variable-overrides.json")

    prefixes = ("bundle", "workspace", "var", "variables", "resources")
    computed = _computed(tree)
    Resolver(tree, prefixes, lambda p: p[:1] != ("resources",) and p[:2] not in auth_paths,
             computed, unknown_user=user is None).run(warnings)

    mode = bundle.get("mode")
    if mode is not None and mode not in resources_.MODES:
        raise ConfigError(f"unsupported value '{mode}' specified for 'mode': must be either 'development' or "
                          "'production'")
    if mode == "development":
        resources_.development_defaults(tree, user)
    resources = tree.get("resources")
    if isinstance(resources, dict):
        cluster_id = bundle.get("cluster_id") or (environ.get("DATABRICKS_CLUSTER_ID") if mode == "development"
                                                  else None)
        if cluster_id:
            resources_.override_compute(resources, cluster_id)
        resources_.apply_run_as(resources, tree.get("run_as"))
        resources_.apply_presets(resources, tree.get("presets") or {})
    elif (tree.get("presets") or {}).get("trigger_pause_status") not in (None, *resources_.PAUSE_STATUSES):
        raise ConfigError("Invalid value for trigger_pause_status, should be PAUSED or UNPAUSED")
    Resolver(tree, prefixes, lambda p: p[:1] == ("resources",), computed, unknown_user=user is None).run(warnings)

    if isinstance(resources, dict):
        apply_keyed_merges(resources)
        resources_.job_defaults(resources, str(workspace.get("state_path")))
        resources_.translate_paths(resources, root, sync_root, str(workspace.get("file_path")))
    _coerce_typed_fields(tree)
    if mode == "development":
        resources_.check_development(tree, user)
    elif mode == "production":
        resources_.check_production(tree, user, root_path_in_target, warnings)
    deploy = _check_deploy(tree.get("deploy") or {}, warnings)
    tree = {key: value for key, value in _prune(tree).items() if value not in ({}, [])}
    host = (tree.get("workspace") or {}).get("host")
    return Config(tree=tree, target=name, warnings=warnings, root=root, files=files, deploy=deploy,
                  host=host if isinstance(host, str) and host else None, current_user=user, sync_root=sync_root)


def _prepare_sync(tree: dict, root: Path) -> Path:
    sync = tree.setdefault("sync", {}) if tree.get("sync") is None else tree["sync"]
    if sync.get("paths") is None:
        sync["paths"] = ["."]
    sync_root, paths, offset = config_sync.infer_root(root, [str(path) for path in sync["paths"]])
    sync["paths"] = paths
    for key in ("include", "exclude"):
        if sync.get(key):
            sync[key] = [config_sync.clean_pattern(str(p), offset) for p in sync[key]]
    return sync_root


def _git_details(bundle: dict, root: Path) -> None:
    """``bundle.git`` from the repository around the bundle root, as git itself reports it.

    Asking git rather than reading .git by hand gets worktrees (refs and config in the common dir), packed
    refs, shallow clones and config includes right. Outside a repository, or without a usable git, the
    fields stay as configured (unset, so ``${bundle.git.commit}`` is ``""``) and nothing fails.
    """
    if not any((folder / ".git").exists() for folder in (root, *root.parents)):
        return  # not in a checkout: no need to start git
    head = _git(root, "rev-parse", "--show-prefix", "HEAD", "--symbolic-full-name", "HEAD")
    if head is not None and len(head.splitlines()) == 3:
        prefix, commit, ref = head.splitlines()
    else:  # a repository without commits yet (HEAD names an unborn branch), or no repository after all
        prefix = _git(root, "rev-parse", "--show-prefix")
        if prefix is None:
            return
        prefix, commit, ref = prefix.strip(), "", (_git(root, "symbolic-ref", "-q", "HEAD") or "").strip()
    git = bundle.get("git") if isinstance(bundle.get("git"), dict) else {}
    # --symbolic-full-name, not --abbrev-ref: the latter says "heads/main" when a tag is also named main.
    # A detached HEAD (how Azure Pipelines checks out) prints "HEAD": there is no actual branch.
    actual_branch = ref.removeprefix("refs/heads/") if ref.startswith("refs/") else ""
    if actual_branch:
        git["actual_branch"] = actual_branch
    else:
        git.pop("actual_branch", None)
    if actual_branch and not git.get("branch"):
        git["branch"] = actual_branch
        git["inferred"] = True
    # Like the reference, a commit or origin_url written in the config is kept; git fills them in otherwise.
    if commit and not git.get("commit"):
        git["commit"] = commit
    if not git.get("origin_url"):
        origin = _without_credentials((_git(root, "config", "--get", "remote.origin.url") or "").strip())
        if origin:
            git["origin_url"] = origin
    git["bundle_root_path"] = prefix.rstrip("/") or "."
    bundle["git"] = git


GIT_TIMEOUT_SECONDS = 10
# Variables that point git at some other repository (set for hooks and by tools that run git); bundle.git
# describes the repository around the bundle root, so `git -C <root>` must find it on its own.
_GIT_LOCATION_VARIABLES = ("GIT_DIR", "GIT_WORK_TREE", "GIT_COMMON_DIR", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY",
                           "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_NAMESPACE", "GIT_PREFIX")


def _git(root: Path, *args: str) -> str | None:
    """The output of ``git -C <root> ARGS``; None when git is missing, fails (not a repository, no such
    setting) or takes longer than GIT_TIMEOUT_SECONDS."""
    env = {key: value for key, value in os.environ.items() if key not in _GIT_LOCATION_VARIABLES}
    try:
        result = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, encoding="utf-8",
                                errors="replace", stdin=subprocess.DEVNULL, env=env, timeout=GIT_TIMEOUT_SECONDS)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout if result.returncode == 0 else None


def _without_credentials(url: str) -> str:
    """The URL without any user:password part (a checkout may embed a token in the origin URL)."""
    return re.sub(r"^([a-z][a-z0-9+.-]*://)[^/@]*@", r"\1", url, flags=re.IGNORECASE)


def _check_artifacts(artifacts: Any) -> None:
    for name, artifact in (artifacts or {}).items():
        if artifact is None:
            raise ConfigError(f"Artifact not properly configured: artifacts.{name}",
                              hint="give it at least a type and a path")
        if not isinstance(artifact, dict):
            raise ConfigError(f"artifacts.{name} must be a map, found {_kind(artifact)}")
        kind = artifact.get("type")
        if kind is not None and kind not in ("whl", "jar"):
            raise ConfigError(f"artifacts.{name}.type: invalid value {kind!r}. Valid values are [whl jar]")
        if kind == "whl" and not artifact.get("build"):
            artifact["build"] = "python setup.py bdist_wheel"


def _default_workspace_paths(workspace: dict, bundle: dict, target: str, user: dict | None,
                             warnings: list[str]) -> None:
    """Section 1 step 12: default and expand the workspace paths, before references are resolved."""
    if not workspace.get("root_path"):
        workspace["root_path"] = f"~/.bundle/{bundle.get('name') or ''}/{target}"
    root_path = str(workspace["root_path"])
    if root_path == "~" or root_path.startswith("~/"):
        if user:
            workspace["root_path"] = f"/Workspace/Users/{user['userName']}{root_path[1:]}"
        else:
            warnings.append("the current user is unknown, so workspace paths under '~/' and "
                            "${workspace.current_user.*} stay unresolved; pass --current-user or set "
                            "DATABRICKS_HOST and credentials")
    for key, folder in WORKSPACE_PATHS:
        if not workspace.get(key):
            workspace[key] = f"{workspace['root_path']}/{folder}"
    for key in ("root_path", *(key for key, _ in WORKSPACE_PATHS)):
        value = str(workspace[key])
        if value.startswith("/") and not value.startswith(("/Workspace/", "/Volumes/")):
            workspace[key] = "/Workspace" + value


def _computed(tree: dict):
    """Lookups the tree does not hold: ``resources.volumes.<k>.volume_path`` (others under resources stay literal)."""
    from .config_resolve import Unresolvable

    def lookup(parts: list) -> Any:
        if parts[0] != "resources":
            return None
        volumes = (tree.get("resources") or {}).get("volumes") or {}
        if len(parts) == 4 and parts[1] == "volumes" and parts[3] == "volume_path" and parts[2] in volumes:
            volume = volumes[parts[2]] or {}
            if all(isinstance(volume.get(key), str) and "${" not in volume[key]
                   for key in ("catalog_name", "schema_name", "name")):
                return f"/Volumes/{volume['catalog_name']}/{volume['schema_name']}/{volume['name']}"
        raise Unresolvable(".".join(map(str, parts)))

    return lookup


def _coerce_typed_fields(tree: dict) -> None:
    for pattern, kind in TYPED_FIELDS.items():
        for container, key, where in _matches(tree, pattern):
            value = container[key]
            if not isinstance(value, str) or "${" in value:
                continue
            container[key] = _coerce(value, kind, where)


def _coerce(value: str, kind: type, where: str) -> Any:
    text = value.strip()
    if kind is bool:
        if text in ("true", "True", "TRUE", "1", "t", "T"):
            return True
        if text in ("false", "False", "FALSE", "0", "f", "F"):
            return False
        raise ConfigError(f"{where}: cannot parse {value!r} as a boolean", hint="use true or false")
    if re.fullmatch(r"[+-]?[0-9]+", text):
        return int(text)
    raise ConfigError(f"{where}: cannot parse {value!r} as an integer")


def _matches(tree: Any, pattern: str):
    """(container, key, path) for every place `pattern` (``a.*.b[].c``) names in the tree."""
    steps = pattern.split(".")

    def walk(node: Any, index: int, where: str):
        step = steps[index]
        name, is_list = (step[:-2], True) if step.endswith("[]") else (step, False)
        last = index == len(steps) - 1
        if not isinstance(node, dict):
            return
        keys = list(node) if name == "*" else [name] if name in node else []
        for key in keys:
            child_where = f"{where}.{key}" if where else key
            if is_list:
                for position, element in enumerate(node[key] if isinstance(node[key], list) else []):
                    yield from walk(element, index + 1, f"{child_where}[{position}]")
            elif last:
                yield node, key, child_where
            else:
                yield from walk(node[key], index + 1, child_where)

    yield from walk(tree, 0, "")


def _check_deploy(deploy: Any, warnings: list[str]) -> dict:
    """Type-check our own ``deploy`` section (README "The deploy section")."""
    if not isinstance(deploy, dict):
        raise ConfigError(f"deploy must be a map, found {_kind(deploy)}")
    for key, value in deploy.items():
        if key not in DEPLOY_KEYS:
            warnings.append(f"unknown field: deploy.{key} (known: {', '.join(DEPLOY_KEYS)})")
            continue
        if value is None:
            continue
        expected = DEPLOY_KEYS[key]
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise ConfigError(f"deploy.{key} must be a {_type_word(expected)}, found {_kind(value)}")
        if expected is list and not all(isinstance(item, str) for item in value):
            raise ConfigError(f"deploy.{key} must be a list of strings")
        if expected is int and value < 1:
            raise ConfigError(f"deploy.{key} must be at least 1, found {value}")
    libraries = deploy.get("libraries_path")
    if isinstance(libraries, str) and libraries and not libraries.startswith(("/Volumes/", "/Workspace/", "dbfs:/")):
        raise ConfigError(f"deploy.libraries_path must start with /Volumes/, /Workspace/ or dbfs:/, found {libraries!r}")
    for key in ("init_script_path", "notebooks_path"):
        value = deploy.get(key)
        if isinstance(value, str) and value and not value.startswith("/"):
            raise ConfigError(f"deploy.{key} must be an absolute workspace path, found {value!r}")
    keyvault = deploy.get("keyvault")
    if isinstance(keyvault, dict):
        for key, value in keyvault.items():
            if key not in ("name", "url", "secrets"):
                warnings.append(f"unknown field: deploy.keyvault.{key}")
            elif key == "secrets" and value is not None and (
                    not isinstance(value, list) or not all(isinstance(item, str) for item in value)):
                raise ConfigError("deploy.keyvault.secrets must be a list of secret names")
            elif key != "secrets" and value is not None and not isinstance(value, str):
                raise ConfigError(f"deploy.keyvault.{key} must be a string, found {_kind(value)}")
    return copy.deepcopy(deploy)


def _type_word(kind: type) -> str:
    return {list: "list", dict: "map", str: "string", int: "whole number"}[kind]


def _prune(value: Any) -> Any:
    """Drop null values (the reference omits unset fields); explicit values, even empty ones, stay."""
    if isinstance(value, dict):
        return {key: _prune(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_prune(item) for item in value]
    return value


def to_json(tree: dict) -> str:
    """The resolved tree as ``validate --output json`` prints it: keys sorted, two-space indent."""
    return json.dumps(tree, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False)


def flatten(prefix: str, value: Any) -> list[tuple[str, str]]:
    """``("deploy", {"keyvault": {"name": "kv"}})`` -> ``[("deploy_keyvault_name", "kv")]``; lists joined by ','."""
    if isinstance(value, dict):
        pairs: list[tuple[str, str]] = []
        for key, item in value.items():
            pairs.extend(flatten(f"{prefix}_{key}", item))
        return pairs
    return [(prefix, scalar_text(value))]


def scalar_text(value: Any) -> str:
    """How a value is written as a pipeline variable: bools lower-case, lists joined by ',', maps as JSON."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(item if isinstance(item, str) else json.dumps(item, sort_keys=True) for item in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)


__all__ = ["Config", "load", "find_root_file", "read_file", "select_target", "to_json", "flatten", "scalar_text",
           "ROOT_FILE_NAMES"]
