"""Loading config.json (or databricks.yml) with Databricks Asset Bundle semantics: the public face of the loader.

`load` reads the root file and its includes, selects a target and merges it, assigns variables, resolves
``${...}`` references, applies modes and presets, and returns a `Config` whose ``tree`` has the shape of
``databricks bundle validate --output json``. Every user mistake raises `errors.ConfigError` with a message
naming the file, field or variable. The rules and message texts follow the Databricks CLI ("the reference":
``databricks bundle validate``, source in databricks/cli ``bundle/config``; the public "Databricks Asset
Bundle configuration" documentation); README "Configuration" states them, lists what is not supported and why,
and the deliberate differences.

This module owns the order of the steps, the `Config` record, workspace-path defaults, ``bundle.git``, the
typed-field coercion and our own ``deploy`` section. The steps live beside it, each imported only by the
loader: ``config_files`` (reading the root file and includes), ``config_targets`` (target selection and
merge), ``config_variables`` (variable values), ``config_merge`` (merging), ``config_resolve`` (references),
``config_resources`` (modes, presets, resource defaults) and ``config_sync`` (file selection). Callers import
this module only: what they used to find here and moved (`read_file`, `find_root_file`, `select_target`, the
file and variable constants) is re-exported.
This module does no network I/O: the current user is passed in (``validate_config.py`` fetches it).
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import config_resources as resources_
from . import config_sync, config_types
from .config_files import (
    INCLUDE_SUFFIXES,
    MAX_DEPTH,
    MAX_VALUES,
    RESOURCE_MAP_LISTS,
    RESOURCE_MAPS,
    ROOT_FILE_NAMES,
    SECTION_FIELDS,
    TOP_LEVEL_KEYS,
    find_root_file,
    load_files,
    read_file,
)
from .config_located import Diagnostic, location_of
from .config_lookups import describe
from .config_merge import apply_keyed_merges
from .config_merge import kind as _kind
from .config_resolve import Resolver, Unresolvable
from .config_targets import apply_target, select_target
from .config_variables import LOOKUP_KINDS, VARIABLE_KEYS, assign_cli_variables, assign_values, normalise_variables
from .errors import ConfigError

AUTH_FIELDS = (
    "host",
    "profile",
    "auth_type",
    "client_id",
    "google_service_account",
    "account_id",
    "workspace_id",
    "metadata_service_url",
)
WORKSPACE_PATHS = (
    ("file_path", "files"),
    ("resource_path", "resources"),
    ("artifact_path", "artifacts"),
    ("state_path", "state"),
)
DEPLOY_KEYS = {
    "clusters": list,
    "libraries_path": str,
    "init_script_path": str,
    "notebooks_path": str,
    "test_notebooks": list,
    "keyvault": dict,
    "concurrency": int,
    "timeout_seconds": int,
    "rate_limits": dict,
}
# Our own deploy section's numbers: a string from a pure ${...} reference (e.g. a --var) becomes an int. The bundle's
# own fields are typed by `config_types` from the schema.
TYPED_FIELDS = {
    "deploy.concurrency": int,
    "deploy.timeout_seconds": int,
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
    unresolved_lookups: list[str] = field(default_factory=list)  # lookup variables nobody could resolve

    def sync_files(self) -> tuple[list[str], list[str]]:
        """Files selected for upload (relative to ``sync_root``) and the validate warnings about them."""
        sync = self.tree.get("sync") or {}
        return config_sync.check(
            self.sync_root, sync.get("paths") or [], sync.get("include") or [], sync.get("exclude") or []
        )


def load(
    path: str | os.PathLike[str] = "config.json",
    target: str | None = None,
    variables: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
    current_user: str | Mapping[str, Any] | None = None,
    lookups: Callable[[str | None, list[tuple[str, str]]], dict[tuple[str, str], str]] | None = None,
) -> Config:
    """Load and resolve the configuration for one target. Raises `ConfigError`.

    `variables` are ``NAME=VALUE`` strings (as from ``--var``); `current_user` is a userName or a SCIM ``Me``
    document (None leaves ``${workspace.current_user.*}`` unresolved, with a warning). `lookups` answers the ids of
    ``lookup`` variables, given the config's ``workspace.host`` and the distinct ``(kind, name)`` pairs (see
    `config_lookups.resolve`); None leaves those variables unresolved, with a warning each and their
    ``${var.<name>}`` references as written.
    """
    environ = os.environ if environ is None else environ
    warnings: list[str] = []
    root_file = find_root_file(path).resolve()
    root = root_file.parent
    tree, files = load_files(root_file, warnings)
    normalise_variables(tree.setdefault("variables", {}), warnings)
    bundle = tree.setdefault("bundle", {})
    if "compute_id" in bundle:
        bundle.setdefault("cluster_id", bundle.pop("compute_id"))

    # Target selection and merge.
    targets = tree.pop("targets", None) or {"default": None}
    requested = target or environ.get("DATABRICKS_BUNDLE_TARGET") or environ.get("DATABRICKS_BUNDLE_ENV")
    name = select_target(targets, requested)
    body = targets[name]
    root_path_in_target = bool(((body or {}).get("workspace") or {}).get("root_path"))
    apply_target(tree, name, body, warnings)
    bundle = tree.setdefault("bundle", {})
    bundle["target"] = name
    bundle["environment"] = name
    assign_cli_variables(tree.get("variables") or {}, variables)

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
    host = workspace.get("host") if isinstance(workspace.get("host"), str) else None
    unresolved = assign_values(
        tree.get("variables") or {},
        environ,
        root / ".databricks" / "bundle" / name / "variable-overrides.json",
        (lambda pairs: lookups(host, pairs)) if lookups else None,
    )
    for variable in unresolved:
        lookup = tree["variables"][variable]["lookup"]
        (kind, target), *_ = lookup.items()
        warnings.append(
            Diagnostic(
                f"lookup variable {variable} ({describe(kind, str(target))}) is not resolved: no workspace credentials; "
                f"${{var.{variable}}} is left as written (set DATABRICKS_HOST and DATABRICKS_TOKEN, or --var "
                f"{variable}=<id>)",
                f"variables.{variable}.lookup",
                location_of(next(iter(lookup))),
            )
        )

    prefixes = ("bundle", "workspace", "var", "variables", "resources")
    computed = _computed(tree)
    Resolver(
        tree,
        prefixes,
        lambda p: p[:1] != ("resources",) and p[:2] not in auth_paths,
        computed,
        unknown_user=user is None,
        unresolved=frozenset(unresolved),
    ).run(warnings)
    # Typed like the schema once references are resolved (README "Configuration", **Types**); resources later.
    tree = config_types.normalise(tree, warnings, sections=[key for key in tree if key != "resources"])
    bundle, workspace = tree.setdefault("bundle", {}), tree.setdefault("workspace", {})

    mode = bundle.get("mode")
    if mode is not None and mode not in resources_.MODES:
        raise ConfigError(
            f"unsupported value '{mode}' specified for 'mode': must be either 'development' or 'production'"
        )
    if mode == "development":
        resources_.development_defaults(tree, user)
    resources = tree.get("resources")
    if isinstance(resources, dict):
        cluster_id = bundle.get("cluster_id") or (
            environ.get("DATABRICKS_CLUSTER_ID") if mode == "development" else None
        )
        if cluster_id:
            resources_.override_compute(resources, cluster_id)
        resources_.apply_run_as(resources, tree.get("run_as"))
        resources_.apply_presets(resources, tree.get("presets") or {})
    elif (tree.get("presets") or {}).get("trigger_pause_status") not in (None, *resources_.PAUSE_STATUSES):
        raise ConfigError("Invalid value for trigger_pause_status, should be PAUSED or UNPAUSED")
    computed = _computed(tree)
    Resolver(
        tree,
        prefixes,
        lambda p: p[:1] == ("resources",),
        computed,
        unknown_user=user is None,
        unresolved=frozenset(unresolved),
    ).run(warnings)
    tree = config_types.normalise(tree, warnings, sections=("resources",))
    resources = tree.get("resources")

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
    return Config(
        tree=tree,
        target=name,
        warnings=warnings,
        root=root,
        files=files,
        deploy=deploy,
        host=host if isinstance(host, str) and host else None,
        current_user=user,
        sync_root=sync_root,
        unresolved_lookups=unresolved,
    )


def target_names(path: str | os.PathLike[str] = "config.json") -> list[str]:
    """The targets the config defines (root file and includes), in the order written; ``["default"]`` when none."""
    tree, _ = load_files(find_root_file(path).resolve(), [])
    return list(tree.get("targets") or tree.get("environments") or {"default": None})


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
_GIT_LOCATION_VARIABLES = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_COMMON_DIR",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
)


def _git(root: Path, *args: str) -> str | None:
    """The output of ``git -C <root> ARGS``; None when git is missing, fails (not a repository, no such
    setting) or takes longer than GIT_TIMEOUT_SECONDS."""
    env = {key: value for key, value in os.environ.items() if key not in _GIT_LOCATION_VARIABLES}
    try:
        result = subprocess.run(
            ["git", "-C", str(root), *args],
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            stdin=subprocess.DEVNULL,
            env=env,
            timeout=GIT_TIMEOUT_SECONDS,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout if result.returncode == 0 else None


def _without_credentials(url: str) -> str:
    """The URL without any user:password part (a checkout may embed a token in the origin URL)."""
    return re.sub(r"^([a-z][a-z0-9+.-]*://)[^/@]*@", r"\1", url, flags=re.IGNORECASE)


def _check_artifacts(artifacts: Any) -> None:
    for name, artifact in (artifacts or {}).items():
        if artifact is None:
            raise ConfigError(
                f"Artifact not properly configured: artifacts.{name}", hint="give it at least a type and a path"
            )
        if not isinstance(artifact, dict):
            raise ConfigError(f"artifacts.{name} must be a map, found {_kind(artifact)}")
        kind = artifact.get("type")
        if kind is not None and kind not in ("whl", "jar"):
            raise ConfigError(f"artifacts.{name}.type: invalid value {kind!r}. Valid values are [whl jar]")
        if kind == "whl" and not artifact.get("build"):
            artifact["build"] = "python setup.py bdist_wheel"


def _default_workspace_paths(
    workspace: dict, bundle: dict, target: str, user: dict | None, warnings: list[str]
) -> None:
    """Default and expand the workspace paths, before references are resolved (README "Configuration",
    **Workspace paths**)."""
    if not workspace.get("root_path"):
        workspace["root_path"] = f"~/.bundle/{bundle.get('name') or ''}/{target}"
    root_path = str(workspace["root_path"])
    if root_path == "~" or root_path.startswith("~/"):
        if user:
            workspace["root_path"] = f"/Workspace/Users/{user['userName']}{root_path[1:]}"
        else:
            warnings.append(
                "the current user is unknown, so workspace paths under '~/' and "
                "${workspace.current_user.*} stay unresolved; pass --current-user or set "
                "DATABRICKS_HOST and credentials"
            )
    for key, folder in WORKSPACE_PATHS:
        if not workspace.get(key):
            workspace[key] = f"{workspace['root_path']}/{folder}"
    for key in ("root_path", *(key for key, _ in WORKSPACE_PATHS)):
        value = str(workspace[key])
        if value.startswith("/") and not value.startswith(("/Workspace/", "/Volumes/")):
            workspace[key] = "/Workspace" + value


def _computed(tree: dict):
    """Lookups the tree does not hold: ``resources.volumes.<k>.volume_path`` (others under resources stay literal)."""

    def lookup(parts: list) -> Any:
        if parts[0] != "resources":
            return None
        volumes = (tree.get("resources") or {}).get("volumes") or {}
        if len(parts) == 4 and parts[1] == "volumes" and parts[3] == "volume_path" and parts[2] in volumes:
            volume = volumes[parts[2]] or {}
            if all(
                isinstance(volume.get(key), str) and "${" not in volume[key]
                for key in ("catalog_name", "schema_name", "name")
            ):
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
        raise ConfigError(
            f"deploy.libraries_path must start with /Volumes/, /Workspace/ or dbfs:/, found {libraries!r}"
        )
    for key in ("init_script_path", "notebooks_path"):
        value = deploy.get(key)
        if isinstance(value, str) and value and not value.startswith("/"):
            raise ConfigError(f"deploy.{key} must be an absolute workspace path, found {value!r}")
    keyvault = deploy.get("keyvault")
    if isinstance(keyvault, dict):
        for key, value in keyvault.items():
            if key not in ("name", "url", "secrets"):
                warnings.append(f"unknown field: deploy.keyvault.{key}")
            elif (
                key == "secrets"
                and value is not None
                and (not isinstance(value, list) or not all(isinstance(item, str) for item in value))
            ):
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


__all__ = [
    "Config",
    "load",
    "target_names",
    "find_root_file",
    "read_file",
    "select_target",
    "to_json",
    "flatten",
    "scalar_text",
    "ROOT_FILE_NAMES",
    "INCLUDE_SUFFIXES",
    "TOP_LEVEL_KEYS",
    "SECTION_FIELDS",
    "RESOURCE_MAP_LISTS",
    "RESOURCE_MAPS",
    "MAX_DEPTH",
    "MAX_VALUES",
    "VARIABLE_KEYS",
    "LOOKUP_KINDS",
    "AUTH_FIELDS",
    "WORKSPACE_PATHS",
    "DEPLOY_KEYS",
    "TYPED_FIELDS",
]
