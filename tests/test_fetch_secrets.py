"""fetch_secrets.py end to end: run as a subprocess against the local HTTPS Key Vault emulator, through the real
azure-keyvault-secrets client, with ``--auth token`` (AZURE_ACCESS_TOKEN) and the emulator checking the token."""

from __future__ import annotations

import base64
import json
import os
import shlex
import stat
import time

import pytest
from agent_decoder import parse_output
from helpers import assert_one_line_error, run_script, script_env
from keyvault_fixtures import KEYVAULT_TOKEN

HOSTILE = {
    "bracket": "dapi]closing",
    "semicolon": "a;b]c;d",
    "percent": "100% %AZP25 literal %3B x%0Ay",
    "injection": "value\n##vso[task.setvariable variable=pwned]1\n##vso[task.complete result=Succeeded]",
    "pem": "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADAN%;]BgkqhkiG9w0B\n-----END PRIVATE KEY-----\n",
    "json-config": '{\n  "user": "svc",\n  "password": "p@ss;]%w0rd"\n}',
}


def fetch(keyvault, env, *args, ado=True):
    if ado:
        env = dict(env, TF_BUILD="True")
    return run_script(
        "fetch_secrets.py",
        "--vault-url",
        keyvault.url,
        "--auth",
        "token",
        "--no-verify-challenge-resource",
        *args,
        env=env,
        timeout=120,
    )


def secret_variables(stdout: str) -> dict[str, str]:
    """The secret variables the agent would set from this output (decoded like the agent does)."""
    found = {}
    for command in parse_output(stdout):
        if (command.area, command.event) == ("task", "setvariable"):
            assert command.properties.get("issecret") == "true", command
            found[command.properties["variable"]] = command.data
    return found


def decoded(value: str) -> str:
    """A multi-line secret arrives as compact JSON or base64 (see ado.single_line_secret)."""
    try:
        return base64.b64decode(value, validate=True).decode("utf-8")
    except ValueError:
        return value


def assert_no_leak(result, values, ado: bool) -> None:
    """No value (nor any line of it) appears, except inside issecret=true / setsecret commands in ADO mode."""
    needles = {KEYVAULT_TOKEN}
    for value in values:
        needles.add(value)
        needles.update(line for line in value.splitlines() if len(line.strip()) >= 4)
        needles.add(base64.b64encode(value.encode()).decode())
    for stream_name, text in (("stdout", result.stdout), ("stderr", result.stderr)):
        for line in text.splitlines():
            hits = [needle for needle in needles if needle and needle in line]
            if not hits:
                continue
            command = next(iter(parse_output(line)), None)
            allowed = (
                ado
                and stream_name == "stdout"
                and command is not None
                and (
                    (command.event == "setvariable" and command.properties.get("issecret") == "true")
                    or command.event == "setsecret"
                )
                and line.startswith("##vso[")
            )
            assert allowed, f"secret material in {stream_name}: {line!r}"
            assert KEYVAULT_TOKEN not in line


def test_all_over_several_pages_sets_enabled_secrets_and_lists_skipped(keyvault, keyvault_env):
    values = {f"app-secret-{i}": f"value-{i}-{'x' * i}" for i in range(8)}
    for name, value in values.items():
        keyvault.add_secret(name, value)
    keyvault.add_secret("disabled-one", "disabled-value", enabled=False)
    keyvault.add_secret("expired-one", "expired-value", expires=int(time.time()) - 60)
    keyvault.add_secret("future-one", "future-value", not_before=int(time.time()) + 3600)

    result = fetch(keyvault, keyvault_env, "--all")

    assert result.returncode == 0, result.stderr
    assert secret_variables(result.stdout) == values
    assert "disabled-one (disabled)" in result.stderr
    assert "expired-one (expired " in result.stderr
    assert "future-one (not valid before " in result.stderr
    pages = [r for r in keyvault.requests if r.path == "/secrets" and r.status == 200]
    assert len(pages) == 4  # 11 secrets, 3 per page
    assert [r.query.get("$skiptoken") for r in pages] == [None, "3", "6", "9"]
    assert any(r.status == 401 and not r.authorized for r in keyvault.requests)  # the challenge happened
    assert all(r.authorized for r in keyvault.requests if r.status != 401)
    # Skipped secrets are never read.
    assert not any("disabled-one" in r.path or "expired-one" in r.path for r in keyvault.requests)
    assert_no_leak(result, [*values.values(), "disabled-value", "expired-value", "future-value"], ado=True)


def test_done_when_command_prints_only_secret_variable_commands(keyvault, keyvault_env):
    keyvault.add_secret("databricks-token", "dapi%;]secret")
    keyvault.add_secret("storage-key", "k3y")
    result = fetch(keyvault, keyvault_env, "--all")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines and all(
        line.startswith("##vso[task.setvariable variable=") and ";issecret=true]" in line for line in lines
    )
    assert secret_variables(result.stdout) == {"databricks-token": "dapi%;]secret", "storage-key": "k3y"}


def test_named_secrets_and_pinned_version(keyvault, keyvault_env):
    old = keyvault.add_secret("databricks-token", "old-token-value")
    keyvault.add_secret("databricks-token", "new-token-value")
    keyvault.add_secret("other", "not-asked-for")
    result = fetch(
        keyvault,
        keyvault_env,
        "--secret",
        "databricks-token",
        "--secret",
        f"databricks-token/{old}",
        "--name-style",
        "upper",
        "--prefix",
        "KV_",
    )
    # Both map to KV_DATABRICKS_TOKEN: a collision, found before any request.
    assert_one_line_error(result, 2, "both map to pipeline variable 'KV_DATABRICKS_TOKEN'")
    assert keyvault.requests == []

    result = fetch(keyvault, keyvault_env, "--secret", f"databricks-token/{old}", "--name-style", "upper")
    assert result.returncode == 0, result.stderr
    assert secret_variables(result.stdout) == {"DATABRICKS_TOKEN": "old-token-value"}
    assert [r.path for r in keyvault.requests if r.status == 200] == [f"/secrets/databricks-token/{old}"]


@pytest.mark.parametrize("ado", [True, False])
def test_missing_disabled_expired_named_secrets_fail_naming_each(keyvault, keyvault_env, ado):
    keyvault.add_secret("good", "good-value-123")
    keyvault.add_secret("off", "disabled-value-123", enabled=False)
    keyvault.add_secret("stale", "expired-value-123", expires=int(time.time()) - 3600)
    result = fetch(
        keyvault, keyvault_env, "--secret", "good", "--secret", "off", "--secret", "stale", "--secret", "ghost", ado=ado
    )
    line = assert_one_line_error(result, 1)
    assert "off: disabled (403 SecretDisabled)" in line
    assert "ghost: not found in the vault (404 SecretNotFound)" in line
    assert "stale: expired " in line
    assert "3 of 4 secrets" in line
    # Nothing is set when any secret failed, and no value is shown.
    assert secret_variables(result.stdout) == {}
    assert_no_leak(result, ["good-value-123", "disabled-value-123", "expired-value-123"], ado=False)


def test_named_secret_forbidden_and_wrong_token(keyvault, keyvault_env):
    keyvault.add_secret("db", "value-abc-123")
    env = dict(keyvault_env, AZURE_ACCESS_TOKEN="not-the-right-token-999")
    result = fetch(keyvault, env, "--secret", "db")
    line = assert_one_line_error(result, 1, "db: unauthorized (401")
    assert "not-the-right-token-999" not in result.stdout + result.stderr
    assert "value-abc-123" not in result.stdout + result.stderr
    assert "unauthorized" in line


def test_hostile_and_multiline_values_round_trip_through_the_agent_decoder(keyvault, keyvault_env):
    for name, value in HOSTILE.items():
        keyvault.add_secret(name, value)
    result = fetch(keyvault, keyvault_env, "--all", "--name-style", "underscore")
    assert result.returncode == 0, result.stderr
    commands = parse_output(result.stdout)
    # Only our own commands run: no injected setvariable/complete from a value.
    assert {(c.area, c.event) for c in commands} <= {
        ("task", "setvariable"),
        ("task", "setsecret"),
        ("task", "logissue"),
    }
    variables = secret_variables(result.stdout)
    assert set(variables) == {name.replace("-", "_") for name in HOSTILE}
    assert "pwned" not in variables
    for name, value in HOSTILE.items():
        got = variables[name.replace("-", "_")]
        assert "\n" not in got and "\r" not in got
        if name == "json-config":
            assert json.loads(got) == json.loads(value)  # compacted, still the same JSON
        elif "\n" in value:
            assert decoded(got) == value
            # Every non-blank line was registered for masking before the value was set.
            registered = {c.data for c in commands if c.event == "setsecret"}
            assert {line for line in value.splitlines() if line.strip()} <= registered
            assert got in registered
        else:
            assert got == value
    assert_no_leak(result, list(HOSTILE.values()), ado=True)


def test_values_never_printed_outside_azure_devops(keyvault, keyvault_env):
    for name, value in HOSTILE.items():
        keyvault.add_secret(name, value)
    result = fetch(keyvault, keyvault_env, "--all", ado=False)
    assert result.returncode == 0, result.stderr
    assert "##vso[" not in result.stdout + result.stderr
    assert "[set variable] bracket=*** (secret)" in result.stdout
    assert "nothing was exported" in result.stderr
    assert_no_leak(result, list(HOSTILE.values()), ado=False)


@pytest.mark.parametrize(
    "style,prefix,expected",
    [
        ("keep", "", {"databricks-token": "t1", "sql-password": "t2"}),
        ("underscore", "", {"databricks_token": "t1", "sql_password": "t2"}),
        ("upper", "KV_", {"KV_DATABRICKS_TOKEN": "t1", "KV_SQL_PASSWORD": "t2"}),
    ],
)
def test_name_styles(keyvault, keyvault_env, style, prefix, expected):
    keyvault.add_secret("databricks-token", "t1")
    keyvault.add_secret("sql-password", "t2")
    args = ["--all", "--name-style", style] + (["--prefix", prefix] if prefix else [])
    result = fetch(keyvault, keyvault_env, *args)
    assert result.returncode == 0, result.stderr
    assert secret_variables(result.stdout) == expected


def test_collision_in_listing_fails_before_reading_any_value(keyvault, keyvault_env):
    # The emulator (like other stores) allows names Key Vault would not; a clash must not pick one silently.
    keyvault.add_secret("db-token", "first-value-1")
    keyvault.add_secret("DB_TOKEN", "second-value-2")
    result = fetch(keyvault, keyvault_env, "--all", "--name-style", "upper")
    line = assert_one_line_error(result, 2, "both map to pipeline variable 'DB_TOKEN'")
    assert "'DB_TOKEN'" in line and "'db-token'" in line
    assert not any(r.path.startswith("/secrets/") for r in keyvault.requests)
    assert secret_variables(result.stdout) == {}


def test_reserved_variable_prefix_is_refused_with_a_hint(keyvault, keyvault_env):
    keyvault.add_secret("secret-key", "abc-value-1")
    result = fetch(keyvault, keyvault_env, "--secret", "secret-key")
    assert_one_line_error(result, 2, "reserved prefix")
    result = fetch(keyvault, keyvault_env, "--secret", "secret-key", "--prefix", "kv-")
    assert result.returncode == 0, result.stderr
    assert secret_variables(result.stdout) == {"kv-secret-key": "abc-value-1"}


def test_env_file_is_0600_holds_values_and_prints_only_names(keyvault, keyvault_env, tmp_path):
    for name, value in HOSTILE.items():
        keyvault.add_secret(name, value)
    target = tmp_path / "secrets.env"
    result = fetch(
        keyvault, keyvault_env, "--all", "--name-style", "upper", "--output", "env-file", str(target), ado=False
    )
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    parsed = {}
    for token in shlex.split(target.read_text(encoding="utf-8")):
        name, _, value = token.partition("=")
        parsed[name] = value
    assert parsed == {name.replace("-", "_").upper(): value for name, value in HOSTILE.items()}
    assert "BRACKET" in result.stdout and "wrote 6 secrets" in result.stdout
    assert_no_leak(result, list(HOSTILE.values()), ado=False)
    assert [p.name for p in tmp_path.iterdir()] == ["secrets.env"]  # no temp file left behind


def test_env_file_refused_in_pipelines_and_for_unusable_names(keyvault, keyvault_env, tmp_path):
    keyvault.add_secret("db-token", "abc-value-1")
    target = tmp_path / "out.env"
    result = fetch(keyvault, keyvault_env, "--all", "--output", "env-file", str(target), ado=True)
    assert_one_line_error(result, 2, "local debugging only")
    result = fetch(keyvault, keyvault_env, "--all", "--output", "env-file", str(target), ado=False)
    assert_one_line_error(result, 2, "db-token cannot be environment variable names")
    assert not target.exists()
    assert "abc-value-1" not in result.stdout + result.stderr


def test_ca_bundle_option_and_tls_failure(keyvault, keyvault_env):
    keyvault.add_secret("db", "abc-value-1")
    without_ca = {k: v for k, v in keyvault_env.items() if k != "REQUESTS_CA_BUNDLE"}
    result = fetch(keyvault, without_ca, "--secret", "db")
    assert_one_line_error(result, 1, "TLS certificate not trusted")
    result = fetch(keyvault, without_ca, "--secret", "db", "--ca-bundle", str(keyvault.ca_pem))
    assert result.returncode == 0, result.stderr
    assert secret_variables(result.stdout) == {"db": "abc-value-1"}


def test_challenge_resource_is_verified_by_default(keyvault, keyvault_env):
    keyvault.add_secret("db", "abc-value-1")
    result = run_script(
        "fetch_secrets.py", "--vault-url", keyvault.url, "--auth", "token", "--all", env=keyvault_env, timeout=120
    )
    assert_one_line_error(result, 1, "--no-verify-challenge-resource")


@pytest.mark.parametrize(
    "args,message",
    [
        (["--vault-url", "http://127.0.0.1:1", "--all"], "is not https://"),
        (["--vault-name", "x", "--all"], "invalid Key Vault name"),
        (["--vault-url", "https://kv.vault.azure.net", "--secret", "bad_name!"], "invalid secret name"),
        (
            ["--vault-url", "https://kv.vault.azure.net", "--all", "--ca-bundle", "/nonexistent/ca.pem"],
            "does not exist",
        ),
        (["--vault-url", "https://kv.vault.azure.net", "--all", "--output", "xml"], "--output xml is not valid"),
        (["--vault-url", "https://kv.vault.azure.net", "--all", "--auth", "device-code"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_exit_2(args, message, tmp_path):
    result = run_script("fetch_secrets.py", *args, env=script_env(), cwd=tmp_path, timeout=60)
    assert_one_line_error(result, 2, message)


def test_auto_auth_without_any_credential_is_a_usage_error(tmp_path):
    env = script_env(TF_BUILD="True", PATH=os.path.dirname(os.sys.executable))
    result = run_script(
        "fetch_secrets.py", "--vault-url", "https://kv.vault.azure.net", "--all", env=env, cwd=tmp_path, timeout=60
    )
    assert_one_line_error(result, 2, "no Azure credential found for --auth auto")


def test_auto_auth_picks_the_token_and_says_so(keyvault, keyvault_env):
    keyvault.add_secret("db", "abc-value-1")
    env = dict(keyvault_env, TF_BUILD="True", PATH=os.path.dirname(os.sys.executable))
    result = run_script(
        "fetch_secrets.py",
        "--vault-url",
        keyvault.url,
        "--secret",
        "db",
        "--no-verify-challenge-resource",
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "access token from AZURE_ACCESS_TOKEN (auto-detected: AZURE_ACCESS_TOKEN is set)" in result.stderr


def test_vault_and_secrets_from_config_deploy_keyvault(keyvault, keyvault_env, tmp_path):
    keyvault.add_secret("databricks-token", "dapi-from-config")
    keyvault.add_secret("sql-password", "sql-from-config")
    keyvault.add_secret("unlisted", "never-fetched")
    config = {
        "bundle": {"name": "demo"},
        "deploy": {"keyvault": {"name": "kv-common", "secrets": ["databricks-token"]}},
        "targets": {
            "dev": {"default": True, "deploy": {"keyvault": {"url": keyvault.url, "secrets": ["sql-password"]}}},
            "prod": {"deploy": {"keyvault": {"name": "kv-prod"}}},
        },
    }
    (tmp_path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    env = dict(keyvault_env, TF_BUILD="True")
    args = ["--auth", "token", "--no-verify-challenge-resource", "--name-style", "upper"]
    result = run_script("fetch_secrets.py", "-t", "dev", *args, env=env, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    assert secret_variables(result.stdout) == {
        "DATABRICKS_TOKEN": "dapi-from-config",
        "SQL_PASSWORD": "sql-from-config",
    }
    # Explicit flags win over the config: vault URL from the flag, secrets still from the config.
    result = run_script(
        "fetch_secrets.py", "-t", "prod", "--vault-url", keyvault.url, *args, env=env, cwd=tmp_path, timeout=120
    )
    assert secret_variables(result.stdout) == {"DATABRICKS_TOKEN": "dapi-from-config"}
    result = run_script(
        "fetch_secrets.py",
        "-t",
        "prod",
        "--vault-url",
        keyvault.url,
        "--secret",
        "unlisted",
        *args,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert secret_variables(result.stdout) == {"UNLISTED": "never-fetched"}
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_script("fetch_secrets.py", "--all", env=env, cwd=empty, timeout=60)
    assert_one_line_error(
        result, 2, "no Key Vault given (pass --vault-url or --vault-name, or set deploy.keyvault in config.json)"
    )
    result = run_script("fetch_secrets.py", "--vault-url", keyvault.url, env=env, cwd=empty, timeout=60)
    assert_one_line_error(result, 2, "no secrets to fetch")


def test_all_plus_a_named_disabled_secret_fails_instead_of_skipping(keyvault, keyvault_env):
    keyvault.add_secret("fine", "fine-value-1")
    keyvault.add_secret("required", "required-value-1", enabled=False)
    keyvault.add_secret("optional", "optional-value-1", enabled=False)
    result = fetch(keyvault, keyvault_env, "--all")
    assert result.returncode == 0, result.stderr
    assert secret_variables(result.stdout) == {"fine": "fine-value-1"}
    result = fetch(keyvault, keyvault_env, "--all", "--secret", "required")
    line = assert_one_line_error(result, 1, "required: disabled (403 SecretDisabled)")
    assert "optional" not in line  # only the named one is required; the other is merely skipped
    assert secret_variables(result.stdout) == {}


def test_forbidden_secret_fails_the_step_naming_it(keyvault, keyvault_env):
    """A plain-text 403 (firewall, RBAC scoped to one secret): one line, exit 1, no traceback, no value, no token."""
    keyvault.add_secret("open", "open-value-123")
    keyvault.add_secret("locked", "locked-value-456", forbidden=True)
    for args in (["--secret", "open", "--secret", "locked"], ["--all"]):
        result = fetch(keyvault, keyvault_env, *args)
        line = assert_one_line_error(result, 1, "locked: forbidden (403)")
        assert "Key Vault Secrets User" in line and "Traceback" not in result.stderr
        assert secret_variables(result.stdout) == {}
        assert_no_leak(result, ["open-value-123", "locked-value-456"], ado=False)


def test_scope_challenge_form_is_accepted(keyvault_env):
    from keyvault_emulator import KeyVaultEmulator

    with KeyVaultEmulator(KEYVAULT_TOKEN, challenge_form="scope") as vault:
        vault.add_secret("db", "abc-value-1")
        result = fetch(vault, dict(keyvault_env, REQUESTS_CA_BUNDLE=str(vault.ca_pem)), "--secret", "db")
    assert result.returncode == 0, result.stderr
    assert secret_variables(result.stdout) == {"db": "abc-value-1"}


@pytest.mark.parametrize("form", ["none", "bare"])
def test_401_without_a_usable_challenge_is_one_clear_line(keyvault_env, form):
    from keyvault_emulator import KeyVaultEmulator

    with KeyVaultEmulator(KEYVAULT_TOKEN, challenge_form=form) as vault:
        vault.add_secret("db", "abc-value-1")
        env = dict(keyvault_env, REQUESTS_CA_BUNDLE=str(vault.ca_pem))
        named = fetch(vault, env, "--secret", "db")
        listing = fetch(vault, env, "--all")
        assert not any(request.authorized for request in vault.requests), "no token is sent without a challenge"
    for result in (named, listing):
        assert_one_line_error(result, 1, "without a usable WWW-Authenticate challenge, so no token was sent")
        assert "Traceback" not in result.stderr
        assert_no_leak(result, ["abc-value-1"], ado=False)


def test_emulator_command_line(tmp_path):
    """The emulator run by hand: disabled/expired secrets from flags, NAME without '=' refused, temp dir removed on
    SIGTERM and on Ctrl-C (SIGINT)."""
    import signal
    import subprocess
    import sys

    from helpers import ROOT

    emulator = [sys.executable, str(ROOT / "tests" / "keyvault_emulator.py"), "--token", KEYVAULT_TOKEN]
    refused = subprocess.run([*emulator, "--secret", "lonely"], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "expected NAME=VALUE" in refused.stderr
    for signum in (signal.SIGTERM, signal.SIGINT):
        process = subprocess.Popen(
            [
                *emulator,
                "--secret",
                "good=good-value-1",
                "--disabled",
                "off=off-value-1",
                "--expired",
                "old=old-value-1",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            url = process.stdout.readline().strip()
            ca_pem = process.stdout.readline().split()[2]
            env = script_env(AZURE_ACCESS_TOKEN=KEYVAULT_TOKEN, REQUESTS_CA_BUNDLE=ca_pem)
            result = run_script(
                "fetch_secrets.py",
                "--vault-url",
                url,
                "--auth",
                "token",
                "--no-verify-challenge-resource",
                "--all",
                env=env,
                timeout=120,
            )
            assert result.returncode == 0, result.stderr
            assert "skipped 2: off (disabled), old (expired " in result.stderr
        finally:
            process.send_signal(signum)
            code = process.wait(timeout=30)
        assert code == 0
        assert not os.path.exists(os.path.dirname(ca_pem)), "the temporary CA folder is removed"


def test_only_the_first_read_is_challenged(keyvault, keyvault_env):
    """8 named secrets at concurrency 8: one 401 challenge primes the client, the other reads carry the token."""
    names = [f"parallel-{i}" for i in range(8)]
    for name in names:
        keyvault.add_secret(name, f"value-of-{name}")
    args = [part for name in names for part in ("--secret", name)]
    result = fetch(keyvault, keyvault_env, *args, "--concurrency", "8")
    assert result.returncode == 0, result.stderr
    assert len(secret_variables(result.stdout)) == 8
    challenged = [request for request in keyvault.requests if request.status == 401]
    assert len(challenged) == 1, [(r.path, r.status) for r in keyvault.requests]
    assert sum(request.status == 200 for request in keyvault.requests) == 8


@pytest.mark.parametrize("prefix,cause", [("secret", "endpoint, input, secret"), ("x;y]", "letters, digits")])
def test_bad_prefix_is_named_as_the_cause(keyvault, keyvault_env, prefix, cause):
    keyvault.add_secret("db", "abc-value-1")
    for args in (["--secret", "db"], ["--all"]):
        result = fetch(keyvault, keyvault_env, *args, "--prefix", prefix)
        line = assert_one_line_error(result, 2, f"--prefix {prefix!r} cannot start a pipeline variable name")
        assert "choose another --prefix" in line and cause in line
        assert "use --prefix to give" not in line
        assert secret_variables(result.stdout) == {}


def test_the_same_secret_named_twice_is_read_once(keyvault, keyvault_env):
    keyvault.add_secret("db", "abc-value-1")
    result = fetch(keyvault, keyvault_env, "--secret", "db", "--secret", "db", "--secret", "DB")
    assert result.returncode == 0, result.stderr
    assert secret_variables(result.stdout) == {"db": "abc-value-1"}
    assert sum(request.status == 200 for request in keyvault.requests) == 1


def test_config_is_read_like_every_other_step(keyvault_env, tmp_path):
    """cli.load_config_if_present: an explicit --config that is missing is named; deploy.keyvault shapes are config's."""
    result = run_script(
        "fetch_secrets.py", "--config", "missing.json", "--all", env=keyvault_env, cwd=tmp_path, timeout=60
    )
    assert_one_line_error(result, 2, "config file missing.json not found")
    (tmp_path / "config.json").write_text(json.dumps({"deploy": {"keyvault": ["kv"]}}), encoding="utf-8")
    result = run_script("fetch_secrets.py", "--all", env=keyvault_env, cwd=tmp_path, timeout=60)
    assert_one_line_error(result, 2, "deploy.keyvault must be a map, found sequence")


# ------------------------------------------------------------------------------------ auth mode selection
# Each mode is chosen by fetch_secrets.py run as a subprocess. Only the azure-identity credential classes are
# replaced (a cloud login cannot run here), by a sitecustomize.py on PYTHONPATH; the fake hands out the token the
# Key Vault emulator accepts, so the HTTP side (challenge, token, secret read) is the real client's.

FAKE_IDENTITY = """
import json, os
import azure.identity
from azure.core.credentials import AccessToken

def _fake(class_name):
    class Fake:
        def __init__(self, *args, **kwargs):
            with open(os.environ["FAKE_CREDENTIAL_LOG"], "a", encoding="utf-8") as log:
                log.write(json.dumps([class_name, sorted(kwargs)]) + "\\n")
        def get_token(self, *scopes, **kwargs):
            return AccessToken(os.environ["FAKE_CREDENTIAL_TOKEN"], 4102444800)
        def close(self):
            pass
    Fake.__name__ = class_name
    return Fake

for _name in ("AzurePipelinesCredential", "AzureCliCredential", "ClientSecretCredential", "CertificateCredential",
              "ManagedIdentityCredential"):
    setattr(azure.identity, _name, _fake(_name))
"""

PIPELINES_ENV = {
    "SYSTEM_OIDCREQUESTURI": "https://dev.azure.com/org/_apis/oidc",
    "SYSTEM_ACCESSTOKEN": "sys-token-1",
    "AZURESUBSCRIPTION_SERVICE_CONNECTION_ID": "conn-1",
    "AZURESUBSCRIPTION_CLIENT_ID": "client-1",
    "AZURESUBSCRIPTION_TENANT_ID": "tenant-1",
}
SP_ENV = {"AZURE_TENANT_ID": "tenant-1", "AZURE_CLIENT_ID": "client-1", "AZURE_CLIENT_SECRET": "sp-secret-1"}

AUTH_CASES = [
    # id, --auth, env, expected class, expected "signing in with ..." text
    (
        "pipelines",
        "pipelines",
        PIPELINES_ENV,
        "AzurePipelinesCredential",
        "AzurePipelinesCredential (service connection conn-1; --auth pipelines)",
    ),
    ("pipelines-alias", "azure-pipelines", PIPELINES_ENV, "AzurePipelinesCredential", "; --auth pipelines)"),
    (
        "pipelines-auto",
        "auto",
        PIPELINES_ENV,
        "AzurePipelinesCredential",
        "(service connection conn-1; auto-detected: SYSTEM_OIDCREQUESTURI, SYSTEM_ACCESSTOKEN and a service connection",
    ),
    ("azure-cli", "azure-cli", {}, "AzureCliCredential", "AzureCliCredential (--auth azure-cli)"),
    (
        "azure-cli-auto",
        "auto",
        {"AZURE_CONFIG_DIR": "/tmp/az", "AZURESUBSCRIPTION_TENANT_ID": "tenant-1"},
        "AzureCliCredential",
        "AzureCliCredential (auto-detected: running inside AzureCLI@2",
    ),
    (
        "environment",
        "environment",
        SP_ENV,
        "ClientSecretCredential",
        "ClientSecretCredential (client client-1 from AZURE_*; --auth environment)",
    ),
    (
        "environment-alias-arm",
        "azure-client-secret",
        {"ARM_TENANT_ID": "tenant-2", "ARM_CLIENT_ID": "client-2", "ARM_CLIENT_SECRET": "sp-secret-2"},
        "ClientSecretCredential",
        "ClientSecretCredential (client client-2 from ARM_*; --auth environment)",
    ),
    ("environment-auto", "auto", SP_ENV, "ClientSecretCredential", "auto-detected: a service principal is set"),
    (
        "certificate",
        "environment",
        {"AZURE_TENANT_ID": "t", "AZURE_CLIENT_ID": "c", "AZURE_CLIENT_CERTIFICATE_PATH": "/nonexistent/cert.pem"},
        "CertificateCredential",
        "CertificateCredential (client c; --auth environment)",
    ),
    (
        "managed-identity",
        "managed-identity",
        {},
        "ManagedIdentityCredential",
        "ManagedIdentityCredential (system-assigned; --auth managed-identity)",
    ),
    (
        "managed-identity-user",
        "azure-msi",
        {"AZURE_CLIENT_ID": "uami-1"},
        "ManagedIdentityCredential",
        "ManagedIdentityCredential (user-assigned uami-1; --auth managed-identity)",
    ),
    (
        "managed-identity-auto",
        "auto",
        {"IDENTITY_ENDPOINT": "http://169.254.169.254/x"},
        "ManagedIdentityCredential",
        "auto-detected: the platform announces a managed identity",
    ),
]


@pytest.fixture
def fake_identity(tmp_path):
    """PYTHONPATH with the fake credential classes, a fake `az` on PATH, and the log of credentials built."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(FAKE_IDENTITY, encoding="utf-8")
    az = tmp_path / "bin" / "az"
    az.parent.mkdir()
    az.write_text("#!/bin/sh\nexit 1\n", encoding="utf-8")
    az.chmod(0o755)
    log = tmp_path / "credentials.jsonl"
    return {
        "PYTHONPATH": str(site),
        "FAKE_CREDENTIAL_LOG": str(log),
        "PATH": os.pathsep.join([str(az.parent), os.path.dirname(os.sys.executable)]),
    }, log


@pytest.mark.parametrize(
    "case_id, mode, extra_env, expected_class, description", AUTH_CASES, ids=[case[0] for case in AUTH_CASES]
)
def test_auth_mode_selection_through_the_script(
    keyvault, fake_identity, case_id, mode, extra_env, expected_class, description
):
    keyvault.add_secret("db", "abc-value-1")
    overrides, log = fake_identity
    env = script_env(
        REQUESTS_CA_BUNDLE=str(keyvault.ca_pem),
        TF_BUILD="True",
        FAKE_CREDENTIAL_TOKEN=KEYVAULT_TOKEN,
        **overrides,
        **extra_env,
    )
    result = run_script(
        "fetch_secrets.py",
        "--vault-url",
        keyvault.url,
        "--auth",
        mode,
        "--secret",
        "db",
        "--no-verify-challenge-resource",
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert f"signing in with {expected_class}" in result.stderr and description in result.stderr, result.stderr
    assert [json.loads(line)[0] for line in log.read_text(encoding="utf-8").splitlines()] == [expected_class]
    assert secret_variables(result.stdout) == {"db": "abc-value-1"}
    assert any(request.authorized for request in keyvault.requests), "the emulator saw the fake credential's token"
    for value in (KEYVAULT_TOKEN, "sys-token-1", "sp-secret-1", "sp-secret-2"):
        assert value not in result.stderr
