"""Export the resolved config of one target as pipeline variables for the following steps.

Sets bundle_name, bundle_target, workspace_host, workspace_root_path, every config variable by its name
(maps and lists of complex variables as compact JSON) and every key of the `deploy` section flattened
with '_' (deploy_clusters, deploy_keyvault_name, ...; lists joined by ','; the documented deploy keys are
always set, empty when unset, so $(deploy_x) in a template never stays unexpanded). Inside Azure Pipelines these
are `##vso[task.setvariable]` commands; elsewhere readable `[set variable] name=value` lines.
Nothing else is printed but warnings and a count.

Examples:
  python ci_cd_scripts/read_config.py -t dev
  python ci_cd_scripts/read_config.py -t prod --var catalog=main --output-variables
"""

from __future__ import annotations

import sys
from typing import Any

from cicdkit import ado, cli, config
from cicdkit.errors import CICDError, ConfigError

# Always exported (empty when unset) so that a template's $(deploy_x) never stays an unexpanded macro.
ALWAYS_EXPORTED = (
    "deploy_clusters",
    "deploy_libraries_path",
    "deploy_init_script_path",
    "deploy_notebooks_path",
    "deploy_test_notebooks",
    "deploy_keyvault_name",
    "deploy_keyvault_url",
    "deploy_keyvault_secrets",
    "deploy_concurrency",
    "deploy_timeout_seconds",
)


def pipeline_variables(loaded: config.Config) -> list[tuple[str, str]]:
    """The (name, value) pairs to export, in order; names checked for Azure Pipelines before anything is set."""
    tree = loaded.tree
    bundle = tree.get("bundle") or {}
    workspace = tree.get("workspace") or {}
    pairs: list[tuple[str, str]] = [
        ("bundle_name", config.scalar_text(bundle.get("name"))),
        ("bundle_target", loaded.target),
        ("workspace_host", config.scalar_text(workspace.get("host"))),
        ("workspace_root_path", config.scalar_text(workspace.get("root_path"))),
    ]
    for name, declaration in (tree.get("variables") or {}).items():
        pairs.append((name, config.scalar_text(_value(declaration))))
    for key, value in loaded.deploy.items():
        pairs.extend(config.flatten(f"deploy_{key}", value))
    present = {name for name, _ in pairs}
    pairs.extend((name, "") for name in ALWAYS_EXPORTED if name not in present)
    seen: dict[str, str] = {}
    for name, _ in pairs:
        where = "the config variable" if name in (tree.get("variables") or {}) else "the setting"
        try:
            ado.check_variable_name(name)
        except CICDError as error:
            raise ConfigError(
                f"{where} {name!r} cannot be exported as a pipeline variable: {error.message}", hint=error.hint
            ) from None
        key = name.lower()  # Azure Pipelines variable names are case-insensitive
        if key in seen:
            raise ConfigError(
                f"config variable {name!r} clashes with {seen[key]!r}, which read_config.py also sets",
                hint="rename the variable in config.json",
            )
        seen[key] = name
    return pairs


def _refuse_unresolved_user(pairs: list[tuple[str, str]], loaded: config.Config) -> None:
    """In a pipeline a literal ``~/...`` or ``${workspace.current_user...}`` would reach a later step as a path;
    fail here, where the cause is known, instead.

    One exception: the *default* root path (``~/.bundle/<name>/<target>``, no root_path in the config) stays a
    warning, because CI reads the config without workspace credentials and no step consumes that value."""
    default_root = f"~/.bundle/{(loaded.tree.get('bundle') or {}).get('name') or ''}/{loaded.target}"
    for name, value in pairs:
        if name == "workspace_root_path" and value == default_root:
            ado.log_issue("warning", f"workspace_root_path is exported as {value!r}: the current user is unknown")
            continue
        if value == "~" or value.startswith("~/") or "${workspace.current_user" in value:
            raise ConfigError(
                f"{name} is {value!r}: the current user is unknown, so it cannot be exported",
                hint="set DATABRICKS_TOKEN (or DATABRICKS_AUTH_TYPE) with DATABRICKS_HOST or workspace.host so the "
                "user is read from the workspace, pass --current-user, or set an absolute workspace.root_path",
            )


def _value(declaration: Any) -> Any:
    return declaration.get("value") if isinstance(declaration, dict) else None


@cli.entry
def main(argv: list[str] | None = None) -> int:
    parser = cli.parser("read_config.py", __doc__)
    cli.add_config_args(parser)
    cli.add_current_user_arg(parser)
    parser.add_argument(
        "--output-variables",
        action="store_true",
        help="mark the variables isoutput=true (for later jobs: dependencies.<job>.outputs[...])",
    )
    args = parser.parse_args(argv)

    loaded = cli.load_config(args, current_user=cli.current_user(args))
    pairs = pipeline_variables(loaded)
    if ado.in_pipeline():
        _refuse_unresolved_user(pairs, loaded)
    for warning in loaded.warnings:
        cli.log_warning(warning)
    for name, value in pairs:
        ado.set_variable(name, value, output=args.output_variables)
    ado.relay(f"read_config: {len(pairs)} variables set for target {loaded.target}", sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
