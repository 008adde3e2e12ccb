"""The shared command-line pieces of the CD steps."""

from __future__ import annotations

import json

from cicdkit import cli


def step_args(*argv: str):
    parser = cli.parser("step.py", "A step.")
    cli.add_step_args(parser)
    return parser.parse_args(list(argv))


def test_step_args_are_config_workspace_and_dry_run():
    args = step_args("-t", "prod", "--var", "a=b", "--host", "https://h", "--auth", "pat", "--dry-run", "-v")
    assert (args.config, args.target, args.var, args.host, args.auth, args.dry_run, args.verbose) == (
        "config.json",
        "prod",
        ["a=b"],
        "https://h",
        "pat",
        True,
        True,
    )
    assert step_args().verbose is False


def test_step_settings_have_no_config_and_an_empty_deploy_section_without_a_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    step = cli.step_settings(step_args())
    assert (step.config, dict(step.deploy), step.timeout) == (None, {}, cli.DEFAULT_STEP_SECONDS)


def test_step_settings_give_the_targets_deploy_section(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.json").write_text(
        json.dumps(
            {
                "bundle": {"name": "demo"},
                "deploy": {"clusters": ["c-1"], "concurrency": 4},
                "targets": {"dev": {"default": True}, "prod": {"deploy": {"clusters": ["c-2"]}}},
            }
        )
    )
    step = cli.step_settings(step_args("-t", "prod"))
    assert (
        step.config.target == "prod" and step.deploy["clusters"] == ["c-1", "c-2"] and step.deploy["concurrency"] == 4
    )
    assert (step.cluster_ids, step.concurrency) == (("c-1", "c-2"), 4)


def test_auth_accepts_the_canonical_names_and_the_databricks_cli_aliases():
    from cicdkit import azure_auth

    for mode in azure_auth.DATABRICKS_CHOICES:
        assert step_args("--auth", mode).auth == mode
    assert [step_args("--auth", alias).auth for alias in azure_auth.ALIASES] == list(azure_auth.ALIASES.values())
    assert step_args("--auth", "Azure-MSI").auth == "managed-identity"


# ---- --help inside a pipeline ----------------------------------------------------------------------------------

import re  # noqa: E402

import pytest  # noqa: E402
from helpers import SCRIPTS, run_script, script_env  # noqa: E402

SCRIPTS_WITH_MAIN = sorted(
    p.name for p in SCRIPTS.glob("*.py") if re.search(r"^def main\(", p.read_text(encoding="utf-8"), re.M)
)
LOGGING_COMMAND = re.compile(r"##(vso)?\[")


def test_every_step_script_is_checked():
    assert {"fetch_secrets.py", "read_config.py", "install_requirements.py", "local_workspace.py"} <= set(
        SCRIPTS_WITH_MAIN
    )
    # The three whose docstrings quote logging commands: the check below is not vacuous.
    for name in ("fetch_secrets.py", "read_config.py", "install_requirements.py"):
        assert "##vso[" in (SCRIPTS / name).read_text(encoding="utf-8"), name


@pytest.mark.parametrize("script", SCRIPTS_WITH_MAIN)
def test_help_inside_a_pipeline_prints_no_logging_command(script):
    """Docstrings quote '##vso[...' examples; the agent would run them if --help printed them as they are."""
    result = run_script(script, "--help", env=script_env(TF_BUILD="True"), timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip(), "--help printed nothing"
    found = [line for line in (result.stdout + result.stderr).splitlines() if LOGGING_COMMAND.search(line)]
    assert found == []


def test_usage_and_help_are_neutralised_in_process(capsys):
    parser = cli.parser("x.py", "Sets ##vso[task.setvariable variable=x]1.\n\nEpilog ##[error]boom")
    parser.add_argument("--flag", help="prints ##vso[task.complete result=Failed]")
    parser.print_help()
    parser.print_usage()
    out = capsys.readouterr().out
    assert not LOGGING_COMMAND.search(out) and "task.setvariable" in out and "task.complete" in out
