"""Reading the config files: the root file and its includes, parsed, shape-checked and merged into one tree.

Part of the config loader, whose public face is `config` (`config.read_file`, `config.find_root_file` and
`config.ROOT_FILE_NAMES` are re-exported there; callers import `config`, not this module). Owns: JSON/YAML
parsing (YAML 1.2 scalars), syntax errors as ``file:line:column``, the depth/size/finite-number caps, the root
file names, the structural shape checks of each file, per-file rewrites (paths onto the bundle root, a
target's variable shorthands, legacy ``environments``), include globs, duplicate resource keys, and reading
``variable-overrides.json`` with the same number rules. Does not own: target selection and merge
(`config_targets`), variable values (`config_variables`), ``${...}`` references (`config_resolve`), the merge
rules themselves (`config_merge`).

Rules: README "Configuration" (**Files**, **Top-level keys**, **Merging**) and its "Deliberate differences from
the reference" (wrong shapes are errors, null sections, size limits, numbers). The reference is the Databricks
CLI's loader (databricks/cli ``bundle/config/loader/process_root_includes.go`` and ``process_include.go``).
"""

from __future__ import annotations

import glob
import json
import math
import os
import re
from pathlib import Path
from typing import Any

import yaml

from . import config_resources as resources_
from . import config_sync
from .config_located import Diagnostic, Located, Location, located_json, location_of
from .config_merge import MergeError, merge
from .config_merge import kind as _kind
from .config_resolve import REFERENCE
from .config_types import normalise_file
from .errors import ConfigError

ROOT_FILE_NAMES = ("config.json", "databricks.yml", "databricks.yaml", "bundle.yml", "bundle.yaml")
INCLUDE_SUFFIXES = (".yml", ".yaml", ".json")
TOP_LEVEL_KEYS = (
    "bundle",
    "include",
    "workspace",
    "variables",
    "artifacts",
    "resources",
    "sync",
    "permissions",
    "presets",
    "targets",
    "environments",
    "run_as",
    "experimental",
    "scripts",
    "python",
    "deploy",
)
# Target override forms kept as full definitions; any other map/list is the default value itself.
_DEFINITION_KEY_SETS = (
    {"default"},
    {"lookup"},
    {"default", "type"},
    {"default", "description"},
    {"lookup", "description"},
    {"default", "type", "description"},
)


class _Loader(yaml.SafeLoader):
    """YAML 1.2 scalars: only true/false are booleans, dates stay strings (as the reference reads them)."""

    shown_name = ""  # the file as diagnostics name it, set per file


_Loader.yaml_implicit_resolvers = {
    first: [
        (tag, regexp)
        for tag, regexp in resolvers
        if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp")
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _located_str(loader: _Loader, node: yaml.ScalarNode) -> Located:
    """Strings and keys remember where they were written (`config_located`)."""
    mark = node.start_mark
    return Located(loader.construct_scalar(node), Location(loader.shown_name, mark.line + 1, mark.column + 1))


_Loader.add_constructor("tag:yaml.org,2002:str", _located_str)


def shown_name(path: Path) -> str:
    """How diagnostics name a file: relative to the working folder when it is inside it, else as given."""
    try:
        return Path(os.path.abspath(path)).relative_to(Path.cwd()).as_posix()
    except ValueError:
        return str(path)


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
            data = (
                json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float) if text.strip() else None
            )
        except json.JSONDecodeError as error:
            raise ConfigError(f"{path}:{error.lineno}:{error.colno}: invalid JSON: {error.msg}") from None
        except RecursionError:
            raise ConfigError(f"{path}: invalid JSON: nested too deeply", hint=f"at most {MAX_DEPTH} levels") from None
        except ValueError as error:  # NaN, Infinity or an overflowing number: JSON output could not hold it
            raise ConfigError(
                f"{path}: invalid JSON: {error}", hint="write a finite number or a quoted string"
            ) from None
    else:
        loader = _Loader(text)
        loader.shown_name = shown_name(path)
        try:
            data = loader.get_single_data()
        except yaml.MarkedYAMLError as error:
            mark = error.problem_mark or error.context_mark
            where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
            raise ConfigError(f"{where}: invalid YAML: {error.problem or error.context}") from None
        except yaml.YAMLError as error:
            raise ConfigError(f"{path}: invalid YAML: {error}") from None
        except RecursionError:
            raise ConfigError(f"{path}: invalid YAML: nested too deeply", hint=f"at most {MAX_DEPTH} levels") from None
        finally:
            loader.dispose()
    if data is None:
        if root:
            example = '{"bundle": {"name": "<name>"}}' if path.suffix == ".json" else "bundle: {name: <name>}"
            raise ConfigError(
                f"{path} is empty: it holds no settings",
                hint=f"write at least {example} in it, plus the workspace.host of each target (README "
                '"Configuration"), or pass --config with the right file',
            )
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, found {_kind(data)}")
    _check_values(data, path)
    if path.suffix == ".json":  # checked, within the caps: read again for the positions of strings and keys
        data = located_json(text, shown_name(path))
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
            raise ConfigError(
                f"{path}: expands to more than {MAX_VALUES} values",
                hint="YAML anchors/aliases that repeat large blocks are refused; write the values out",
            )
        if depth > MAX_DEPTH:
            shown = where if len(where) < 80 else where[:77] + "..."
            raise ConfigError(
                f"{path}: {shown} is nested more than {MAX_DEPTH} levels deep",
                hint="a YAML anchor that refers to itself, or too many brackets",
            )
        if isinstance(value, float) and not math.isfinite(value):
            # NaN and infinities (YAML .nan/.inf) cannot be written as JSON, which every consumer reads.
            raise ConfigError(
                f"{path}: {where or 'value'} is {value!r}, which is not a finite number",
                hint="write a finite number or a quoted string",
            )
        if isinstance(value, dict):
            pending.extend((item, f"{where}.{key}" if where else str(key), depth + 1) for key, item in value.items())
        elif isinstance(value, list):
            pending.extend((item, f"{where}[{position}]", depth + 1) for position, item in enumerate(value))


def _string_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {key if isinstance(key, str) else str(key): _string_keys(item) for key, item in value.items()}
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
        raise ConfigError(
            f"multiple bundle root configuration files found in {path}",
            hint=f"keep one of {', '.join(p.name for p in found)}",
        )
    if not found:
        raise ConfigError(
            f"no config.json or databricks.yml found in {path}", hint=f"expected one of {', '.join(ROOT_FILE_NAMES)}"
        )
    return found[0]


# Known fields of the small sections; anything else gives an `unknown field` warning (as in the reference).
SECTION_FIELDS = {
    "bundle": (
        "name",
        "target",
        "environment",
        "mode",
        "cluster_id",
        "compute_id",
        "git",
        "deployment",
        "uuid",
        "databricks_cli_version",
    ),
    "workspace": (
        "host",
        "profile",
        "auth_type",
        "root_path",
        "file_path",
        "artifact_path",
        "resource_path",
        "state_path",
        "client_id",
        "google_service_account",
        "account_id",
        "workspace_id",
        "metadata_service_url",
        "current_user",
        "experimental_is_unified_host",
    ),
    "presets": (
        "name_prefix",
        "tags",
        "jobs_max_concurrent_runs",
        "trigger_pause_status",
        "pipelines_development",
        "source_linked_deployment",
        "artifacts_dynamic_version",
    ),
    "sync": ("paths", "include", "exclude"),
}
_SECTION_SHAPES = {
    "bundle": dict,
    "include": list,
    "workspace": dict,
    "variables": dict,
    "artifacts": dict,
    "resources": dict,
    "sync": dict,
    "permissions": list,
    "presets": dict,
    "targets": dict,
    "environments": dict,
    "run_as": dict,
    "deploy": dict,
}


def _check_shapes(data: dict, source: Path, warnings: list[str]) -> None:
    """Structural type checks for one file; wrong shapes are errors (the reference only warns and drops them)."""
    for key in list(data):
        if key not in TOP_LEVEL_KEYS:
            warnings.append(Diagnostic(f"unknown field: {key}", "", location_of(key)))
            del data[key]
    _check_block(data, "", source, warnings)
    for entry in data.get("include") or []:
        _expect(entry, str, "include[]", source, allow_none=False)
    for name, body in (data.get("variables") or {}).items():
        if body is not None and not isinstance(body, dict):
            raise ConfigError(
                f'{source}: variables.{name} must be a mapping such as {{"default": ...}}, found {_kind(body)}'
            )
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
                warnings.append(Diagnostic(f"unknown field: {key}", f"{prefix}{section}.{key}", location_of(key)))
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
            for task_position, task in enumerate(
                body.get("tasks") if kind == "jobs" and isinstance(body.get("tasks"), list) else []
            ):
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
                f"both 'environments' and 'targets' are specified; only 'targets' should be used: {source}"
            )
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
        raise ConfigError("Bundle root path contains glob pattern characters", hint=f"move the project out of {root}")
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
                raise ConfigError(
                    "Files in the 'include' configuration section must be YAML or JSON files.", hint=f"{match} matched"
                )
            if path in loaded:
                continue
            loaded.add(path)
            files.append(path)
    return files


def _resource_keys(data: dict, source: Path, seen: dict[str, str]) -> None:
    for kind, section in (data.get("resources") or {}).items():
        for key in section or {}:
            if "${" in key:
                raise ConfigError(f'resource key "{key}" must not contain variable references', hint=f"in {source}")
            if key in seen:
                raise ConfigError(
                    f"multiple resources or scripts have been defined with the same key: {key}",
                    hint=f"{seen[key]} and {kind} in {source.name}",
                )
            seen[key] = f"{kind} in {source.name}"
    for body in (data.get("targets") or {}).values():
        for section in ((body or {}).get("resources") or {}).values():
            for key in section or {}:
                if "${" in key:
                    raise ConfigError(f'resource key "{key}" must not contain variable references', hint=f"in {source}")


def read_overrides(path: Path) -> dict:
    """The values of ``.databricks/bundle/<target>/variable-overrides.json`` (README "Configuration",
    **Variables**); no file is no values."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(
            path.read_text(encoding="utf-8-sig"), parse_constant=_reject_constant, parse_float=_finite_float
        )
    except (ValueError, OSError) as error:
        raise ConfigError(f"failed to parse variables file {path}: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"failed to parse variables file {path}: invalid format")
    return data


def load_files(root_file: Path, warnings: list[str]) -> tuple[dict, list[Path]]:
    """The root file merged with its includes (README "Configuration", **Merging**), and the files loaded,
    root first; `warnings` gains the unknown fields and misplaced includes met on the way."""
    root = root_file.parent
    tree = read_file(root_file, root=True)
    _check_shapes(tree, root_file, warnings)
    _prepare_file(tree, root_file, root)
    tree = normalise_file(tree, warnings)
    files = [root_file]
    keys: dict[str, str] = {}
    _resource_keys(tree, root_file, keys)
    loaded = {root / name for name in ROOT_FILE_NAMES}
    for include in _expand_includes(tree.get("include") or [], root, loaded):
        data = read_file(include)
        _check_shapes(data, include, warnings)
        if data.pop("include", None):
            warnings.append(
                f"Include section is defined outside root file: {_relative(include, root)} "
                "(Only includes defined in the root file are applied.)"
            )
        _prepare_file(data, include, root)
        data = normalise_file(data, warnings)
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
