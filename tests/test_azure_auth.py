"""azure_auth: which credential each --auth mode builds and what auto picks. Only the azure-identity credential
classes are replaced (a cloud login cannot run here); nothing makes HTTP calls."""

from __future__ import annotations

import argparse
import base64
import json
import os
import stat
import time

import azure.identity
import pytest

from cicdkit import azure_auth, keyvault
from cicdkit.errors import UsageError

PIPELINES = {
    "SYSTEM_OIDCREQUESTURI": "https://dev.azure.com/org/_apis/distributedtask/hubs/build/plans/p/jobs/j/oidctoken",
    "SYSTEM_ACCESSTOKEN": "system-access-token-secret",
    "AZURESUBSCRIPTION_SERVICE_CONNECTION_ID": "11111111-2222-3333-4444-555555555555",
    "AZURESUBSCRIPTION_CLIENT_ID": "client-guid",
    "AZURESUBSCRIPTION_TENANT_ID": "tenant-guid",
}
CLIENT_SECRET = {"AZURE_TENANT_ID": "t", "AZURE_CLIENT_ID": "c", "AZURE_CLIENT_SECRET": "client-secret-value"}


class Recorder:
    """Stands in for an azure-identity credential class and records how it was built."""

    calls: list[tuple[str, tuple, dict]] = []

    def __init__(self, *args, **kwargs):
        Recorder.calls.append((type(self).__name__, args, kwargs))


@pytest.fixture
def recorded(monkeypatch):
    Recorder.calls = []
    for name in (
        "AzurePipelinesCredential",
        "AzureCliCredential",
        "ClientSecretCredential",
        "CertificateCredential",
        "ManagedIdentityCredential",
        "DefaultAzureCredential",
    ):
        monkeypatch.setattr(azure.identity, name, type(name, (Recorder,), {}))
    # credential() exports SYSTEM_OIDCREQUESTURI for azure-identity; keep the test process clean.
    monkeypatch.delenv("SYSTEM_OIDCREQUESTURI", raising=False)
    return Recorder.calls


@pytest.fixture
def fake_az(tmp_path):
    """A PATH holding an executable named az (never run: only its presence is detected)."""
    az = tmp_path / "az"
    az.write_text("#!/bin/sh\nexit 1\n")
    az.chmod(az.stat().st_mode | stat.S_IXUSR)
    return str(tmp_path)


@pytest.mark.parametrize(
    "env,expected",
    [
        (PIPELINES, "pipelines"),
        ({**PIPELINES, **CLIENT_SECRET}, "pipelines"),
        (CLIENT_SECRET, "environment"),
        ({"ARM_TENANT_ID": "t", "ARM_CLIENT_ID": "c", "ARM_CLIENT_SECRET": "s"}, "environment"),
        ({"AZURE_TENANT_ID": "t", "AZURE_CLIENT_ID": "c", "AZURE_CLIENT_CERTIFICATE_PATH": "/c.pem"}, "environment"),
        ({"IDENTITY_ENDPOINT": "http://localhost:42356/msi/token"}, "managed-identity"),
        ({"AZURE_ACCESS_TOKEN": "tok"}, "token"),
        ({"AZURE_ACCESS_TOKEN": "tok", **CLIENT_SECRET}, "environment"),
    ],
)
def test_detect_order(env, expected):
    assert azure_auth.detect({"PATH": "/nonexistent", "TF_BUILD": "True", **env}) == expected


def test_detect_azure_cli_needs_az_and_a_reason(fake_az):
    inside_task = {"PATH": fake_az, "TF_BUILD": "True", "AZURE_CONFIG_DIR": "/agent/_temp/.azclitask"}
    assert azure_auth.detect(inside_task) == "azure-cli"
    assert azure_auth.detect({**inside_task, **CLIENT_SECRET}) == "azure-cli"  # AzureCLI@2 beats env secrets
    assert azure_auth.detect({"PATH": fake_az}) == "azure-cli"  # a developer's az login
    # A plain pipeline step with az installed but not logged in: no silent pick.
    with pytest.raises(UsageError, match="no Azure credential found"):
        azure_auth.detect({"PATH": fake_az, "TF_BUILD": "True"})
    with pytest.raises(UsageError):
        azure_auth.detect({"PATH": "/nonexistent", "AZURE_CONFIG_DIR": "/x"})


def test_incomplete_pipelines_values_are_not_detected_and_explicit_mode_names_them(recorded):
    partial = {k: v for k, v in PIPELINES.items() if k != "SYSTEM_ACCESSTOKEN"}
    with pytest.raises(UsageError, match="no Azure credential"):
        azure_auth.detect({"PATH": "/nonexistent", "TF_BUILD": "True", **partial})
    with pytest.raises(UsageError, match="SYSTEM_ACCESSTOKEN") as error:
        azure_auth.credential("pipelines", partial)
    assert "system-access-token-secret" not in error.value.one_line()
    assert recorded == []


def test_an_azure_vm_identity_is_never_picked_automatically(recorded):
    with pytest.raises(UsageError) as error:
        azure_auth.credential("auto", {"PATH": "/nonexistent", "TF_BUILD": "True"})
    assert "--auth managed-identity explicitly" in error.value.one_line()
    assert recorded == []


# Token requests are bounded by our own small timeouts and retry count, not azure-core's 300 s / 10 retries.
BOUNDED = {"connection_timeout": 10, "read_timeout": 20, "retry_total": 2}


def test_token_requests_are_bounded_by_small_documented_values():
    assert azure_auth.token_request_options() == BOUNDED
    for name in ("TOKEN_CONNECTION_TIMEOUT", "TOKEN_READ_TIMEOUT", "TOKEN_RETRY_TOTAL", "AZ_CLI_TIMEOUT_SECONDS"):
        assert name in azure_auth.__doc__


def test_pipelines_credential_arguments(recorded):
    cred, description = azure_auth.credential("auto", {"PATH": "/nonexistent", **PIPELINES})
    assert recorded == [
        (
            "AzurePipelinesCredential",
            (),
            {
                "tenant_id": "tenant-guid",
                "client_id": "client-guid",
                "service_connection_id": "11111111-2222-3333-4444-555555555555",
                "system_access_token": "system-access-token-secret",
                **BOUNDED,
            },
        )
    ]
    assert os.environ["SYSTEM_OIDCREQUESTURI"] == PIPELINES["SYSTEM_OIDCREQUESTURI"]
    assert description.startswith("AzurePipelinesCredential (service connection 11111111-")
    assert "auto-detected" in description and "system-access-token-secret" not in description


def test_pipelines_accepts_azure_variable_names_and_alias(recorded):
    env = {
        "SYSTEM_OIDCREQUESTURI": "https://x",
        "SYSTEM_ACCESSTOKEN": "s",
        "AZURE_SERVICE_CONNECTION_ID": "sc",
        "AZURE_CLIENT_ID": "c",
        "AZURE_TENANT_ID": "t",
    }
    azure_auth.credential("azure-pipelines", env)
    assert recorded[0][2]["service_connection_id"] == "sc" and recorded[0][2]["client_id"] == "c"


def test_other_modes_build_the_named_credential(recorded, fake_az):
    _, description = azure_auth.credential("azure-cli", {"AZURESUBSCRIPTION_TENANT_ID": "tid"})
    assert recorded[-1] == ("AzureCliCredential", (), {"tenant_id": "tid", "process_timeout": 30})
    assert description == "AzureCliCredential (--auth azure-cli)"

    _, description = azure_auth.credential("environment", CLIENT_SECRET)
    assert recorded[-1] == (
        "ClientSecretCredential",
        (),
        {"tenant_id": "t", "client_id": "c", "client_secret": "client-secret-value", **BOUNDED},
    )
    assert "client-secret-value" not in description

    azure_auth.credential(
        "azure-client-secret", {"ARM_TENANT_ID": "at", "ARM_CLIENT_ID": "ac", "ARM_CLIENT_SECRET": "as"}
    )
    assert recorded[-1] == (
        "ClientSecretCredential",
        (),
        {"tenant_id": "at", "client_id": "ac", "client_secret": "as", **BOUNDED},
    )

    azure_auth.credential(
        "environment", {"AZURE_TENANT_ID": "t", "AZURE_CLIENT_ID": "c", "AZURE_CLIENT_CERTIFICATE_PATH": "/c.pem"}
    )
    assert recorded[-1] == (
        "CertificateCredential",
        ("t", "c"),
        {"certificate_path": "/c.pem", "password": None, **BOUNDED},
    )

    _, description = azure_auth.credential("managed-identity", {})
    assert recorded[-1] == ("ManagedIdentityCredential", (), BOUNDED) and "system-assigned" in description
    _, description = azure_auth.credential("azure-msi", {"AZURE_CLIENT_ID": "uami"})
    assert (
        recorded[-1] == ("ManagedIdentityCredential", (), {"client_id": "uami", **BOUNDED})
        and "user-assigned uami" in description
    )

    with pytest.raises(UsageError, match="AZURE_CLIENT_SECRET"):
        azure_auth.credential("environment", {"AZURE_TENANT_ID": "t"})
    assert not any(name == "DefaultAzureCredential" for name, _, _ in recorded)


def _jwt(exp: int) -> str:
    def part(data):
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none'})}.{part({'exp': exp, 'aud': 'https://vault.azure.net'})}.sig"


def test_token_mode(recorded):
    jwt = _jwt(2_000_000_000)
    cred, description = azure_auth.credential("token", {"AZURE_ACCESS_TOKEN": jwt})
    token = cred.get_token(azure_auth.DATABRICKS_SCOPE, tenant_id="x", enable_cae=True)
    assert (token.token, token.expires_on) == (jwt, 2_000_000_000)
    assert jwt not in repr(cred) and jwt not in description
    cred, _ = azure_auth.credential(
        "token", {"AZURE_ACCESS_TOKEN": "opaque", "AZURE_ACCESS_TOKEN_EXPIRES_ON": "4102444800"}
    )
    assert cred.get_token("s").expires_on == 4102444800
    cred, _ = azure_auth.credential("token", {"AZURE_ACCESS_TOKEN": "opaque"})
    assert cred.get_token("s").expires_on > time.time() + 3000
    with pytest.raises(UsageError, match="AZURE_ACCESS_TOKEN"):
        azure_auth.credential("token", {})
    with pytest.raises(UsageError, match="unknown Azure auth mode"):
        azure_auth.credential("default", {})
    assert recorded == []


@pytest.mark.parametrize("mode", ["token", "auto"])
def test_an_expired_access_token_is_refused_up_front_without_showing_it(recorded, mode):
    expired = _jwt(int(time.time()) - 120)
    with pytest.raises(UsageError, match="AZURE_ACCESS_TOKEN has expired") as caught:
        azure_auth.credential(mode, {"AZURE_ACCESS_TOKEN": expired, "PATH": "/nonexistent", "TF_BUILD": "True"})
    assert expired not in caught.value.one_line() and caught.value.exit_code == 2
    with pytest.raises(UsageError, match="has expired"):
        azure_auth.credential("token", {"AZURE_ACCESS_TOKEN": "opaque", "AZURE_ACCESS_TOKEN_EXPIRES_ON": "1234"})
    cred, _ = azure_auth.credential("token", {"AZURE_ACCESS_TOKEN": _jwt(int(time.time()) + 120)})  # not yet: fine
    assert recorded == []


def test_scrub_removes_known_secrets_bearer_tokens_and_jwts():
    jwt = _jwt(1)
    text = f"failed: Authorization: Bearer abc.def; token {jwt}; secret s3cr3t-value in body"
    clean = azure_auth.scrub(text, ["s3cr3t-value"])
    assert "abc.def" not in clean and jwt not in clean and "s3cr3t-value" not in clean
    assert clean.startswith("failed: Authorization: Bearer ***")


@pytest.mark.parametrize(
    "name,style,prefix,expected",
    [
        ("databricks-token", "keep", "", "databricks-token"),
        ("databricks-token", "underscore", "", "databricks_token"),
        ("databricks-token", "upper", "", "DATABRICKS_TOKEN"),
        ("sql-pw", "upper", "KV_", "KV_SQL_PW"),
    ],
)
def test_variable_name(name, style, prefix, expected):
    assert keyvault.variable_name(name, style, prefix) == expected


def test_map_names_collisions_are_case_insensitive():
    refs = [keyvault.SecretRef("Db-Token"), keyvault.SecretRef("db-token", "abc")]
    with pytest.raises(UsageError, match="both map to pipeline variable"):
        keyvault.map_names(refs, "keep")
    assert keyvault.map_names([keyvault.SecretRef("a-b"), keyvault.SecretRef("a-c")], "upper") == {
        keyvault.SecretRef("a-b"): "A_B",
        keyvault.SecretRef("a-c"): "A_C",
    }


def test_skip_reason():
    import datetime as dt

    now = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    day = dt.timedelta(days=1)
    assert keyvault.skip_reason(True, None, None, now) is None
    assert keyvault.skip_reason(False, None, None, now) == "disabled"
    assert keyvault.skip_reason(True, now - day, None, now) == "expired 2025-12-31T00:00:00Z"
    assert keyvault.skip_reason(True, now + day, now + day, now) == "not valid before 2026-01-02T00:00:00Z"
    assert keyvault.skip_reason(None, now + day, now - day, now) is None


def test_every_auth_value_a_hint_names_is_accepted_by_both_option_parsers(recorded):
    """One vocabulary: fetch_secrets (CHOICES) and the Databricks steps (DATABRICKS_CHOICES) accept the same Azure
    names and aliases, so a hint such as '--auth managed-identity' is right whichever script shows it."""
    import re

    keyvault_auth = azure_auth.argument_type(azure_auth.CHOICES)
    databricks_auth = azure_auth.argument_type(azure_auth.DATABRICKS_CHOICES)
    hints = []
    with pytest.raises(UsageError) as error:
        azure_auth.credential("auto", {"PATH": "/nonexistent", "TF_BUILD": "True"})
    hints.append(error.value.one_line())
    for mode in ("pipelines", "environment", "token"):
        with pytest.raises(UsageError) as error:
            azure_auth.credential(mode, {})
        hints.append(error.value.one_line())
    named = {value for hint in hints for value in re.findall(r"--auth ([a-z-]+)", hint)} - {"auto"}
    assert named >= {"managed-identity", "pipelines", "environment", "token"}
    for value in named | set(azure_auth.ALIASES):
        assert keyvault_auth(value) == databricks_auth(value) == azure_auth.ALIASES.get(value, value)
    assert databricks_auth("pat") == "pat"
    with pytest.raises(argparse.ArgumentTypeError, match="invalid choice 'pat'.*aliases azure-pipelines=pipelines"):
        keyvault_auth("pat")  # Key Vault has no personal access tokens
