"""Resolve config.json for one target and report what is wrong (like `databricks bundle validate`).

Loads the config (or a folder's config.json / databricks.yml), selects the target, assigns variables,
resolves ${...} references and applies modes and presets. Warnings go to stderr; a config error is one
line `error: ...` on stderr and exit code 2.

The current user (for ~/ paths and ${workspace.current_user.*}) comes from --current-user; otherwise, when
a credential (DATABRICKS_TOKEN or DATABRICKS_AUTH_TYPE) and a host (DATABRICKS_HOST, else the config's
workspace.host) are set, from the workspace's SCIM Me endpoint; otherwise it stays unresolved with a warning.

--strict fails (exit 2) on any warning: unknown fields, values of the wrong type, enum values, required fields,
lookup variables that could not be resolved (README "Configuration", **Types** and **Lookups**).

Examples:
  python ci_cd_scripts/validate_config.py --current-user you@example.com
  python ci_cd_scripts/validate_config.py --all-targets --strict --current-user you@example.com
  python ci_cd_scripts/validate_config.py -t prod --current-user you@example.com --output json
"""

from __future__ import annotations

import sys

from cicdkit import ado, cli, config
from cicdkit.errors import ConfigError, UsageError


def _text_report(loaded, warning_count: int) -> str:
    tree = loaded.tree
    workspace = tree.get("workspace") or {}
    user = (workspace.get("current_user") or {}).get("userName", "(unknown)")
    lines = [
        f"Name: {(tree.get('bundle') or {}).get('name', '')}",
        f"Target: {loaded.target}",
        "Workspace:",
        f"  Host: {workspace.get('host', '')}",
        f"  User: {user}",
        f"  Path: {workspace.get('root_path', '')}",
        "",
    ]
    if warning_count:
        lines.append(f"Found {warning_count} warning{'s' if warning_count != 1 else ''}")
    else:
        lines.append("Validation OK!")
    return "\n".join(lines)


@cli.entry
def main(argv: list[str] | None = None) -> int:
    parser = cli.parser("validate_config.py", __doc__)
    cli.add_config_args(parser)
    cli.add_current_user_arg(parser)
    parser.add_argument(
        "--output",
        choices=["text", "json"],
        default="text",
        help="text summary, or the whole resolved configuration as JSON (default: text)",
    )
    parser.add_argument("--strict", action="store_true", help="fail (exit 2) when there are warnings")
    parser.add_argument(
        "--all-targets",
        action="store_true",
        help="validate every target of the config in turn (text output; each warning reported once)",
    )
    args = parser.parse_args(argv)
    if args.all_targets and (args.target or args.output == "json"):
        raise UsageError("--all-targets validates every target: drop -t/--target and --output json")

    current_user = cli.current_user(args)
    names = config.target_names(args.config or "config.json") if args.all_targets else [args.target]
    reports, warnings = [], []
    for name in names:
        args.target = name
        loaded = cli.load_config(args, current_user=current_user)
        _, sync_warnings = loaded.sync_files()
        for warning in [*loaded.warnings, *sync_warnings]:
            if warning not in warnings:  # a shared file's warning once, not once per target
                warnings.append(warning)
        reports.append(loaded)
    for warning in warnings:
        # stderr in a pipeline too: with --output json, stdout is the document and nothing else.
        cli.log_warning(warning, stream=sys.stderr)
    if args.strict and warnings:
        count = len(warnings)
        raise ConfigError(
            f"{count} warning{' was' if count == 1 else 's were'} found. Warnings are not allowed in strict mode"
        )
    if args.output == "json":
        ado.relay(config.to_json(reports[0].tree))  # each string reads back as neutralise(value) (README)
    else:
        ado.relay("\n\n".join(_text_report(loaded, len(warnings)) for loaded in reports))
    return 0


if __name__ == "__main__":
    sys.exit(main())
