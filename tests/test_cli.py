"""The shared command-line pieces of the CD steps."""
from __future__ import annotations

import json

import cli


def step_args(*argv: str):
    parser = cli.parser("step.py", "A step.")
    cli.add_step_args(parser)
    return parser.parse_args(list(argv))


def test_step_args_are_config_workspace_and_dry_run():
    args = step_args("-t", "prod", "--var", "a=b", "--host", "https://h", "--auth", "pat", "--dry-run", "-v")
    assert (args.config, args.target, args.var, args.host, args.auth, args.dry_run, args.verbose) == (
        "config.json", "prod", ["a=b"], "https://h", "pat", True, True
    )
    assert step_args().verbose is False


def test_step_config_is_none_and_empty_without_a_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.step_config(step_args()) == (None, {})


def test_step_config_gives_the_targets_deploy_section(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({
        "bundle": {"name": "demo"},
        "deploy": {"clusters": ["c-1"], "concurrency": 4},
        "targets": {"dev": {"default": True}, "prod": {"deploy": {"clusters": ["c-2"]}}},
    }))
    config, deploy = cli.step_config(step_args("-t", "prod"))
    assert config.target == "prod" and deploy["clusters"] == ["c-1", "c-2"] and deploy["concurrency"] == 4


def test_auth_accepts_the_canonical_names_and_the_databricks_cli_aliases():
    import azure_auth

    for mode in azure_auth.DATABRICKS_CHOICES:
        assert step_args("--auth", mode).auth == mode
    assert [step_args("--auth", alias).auth for alias in azure_auth.ALIASES] == list(azure_auth.ALIASES.values())
    assert step_args("--auth", "Azure-MSI").auth == "managed-identity"
