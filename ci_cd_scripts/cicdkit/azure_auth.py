"""Which Azure identity a step uses: explicit credential selection, never a silent guess.

Owns the choice of an azure-identity ``TokenCredential`` for Key Vault (``fetch_secrets.py``) and for Entra ID
tokens to Azure Databricks (scope `DATABRICKS_SCOPE`, used by ``dbclient``). It does not call any
service itself; it only builds credentials. A bare ``DefaultAzureCredential`` is never used: on a
self-hosted agent running on an Azure VM its chain picks the VM's managed identity before the pipeline's
service connection, and deploys with the wrong principal without saying so.

Modes (``--auth``) and the environment variables each reads (first one set wins):

=================  ==========================================================================================
``pipelines``      ``AzurePipelinesCredential`` — workload identity federation in a plain script step.
                   ``SYSTEM_OIDCREQUESTURI`` (predefined), ``SYSTEM_ACCESSTOKEN`` (map it:
                   ``env: SYSTEM_ACCESSTOKEN: $(System.AccessToken)``), service connection id
                   ``AZURESUBSCRIPTION_SERVICE_CONNECTION_ID`` | ``AZURE_SERVICE_CONNECTION_ID``, client id
                   ``AZURESUBSCRIPTION_CLIENT_ID`` | ``AZURE_CLIENT_ID`` | ``ARM_CLIENT_ID``, tenant id
                   ``AZURESUBSCRIPTION_TENANT_ID`` | ``AZURE_TENANT_ID`` | ``ARM_TENANT_ID``.
``azure-cli``      ``AzureCliCredential`` — inside ``AzureCLI@2`` (which has run ``az login``) or on a developer
                   machine after ``az login``. Optional tenant: ``AZURESUBSCRIPTION_TENANT_ID`` | ``AZURE_TENANT_ID``.
``environment``    ``ClientSecretCredential`` from ``AZURE_TENANT_ID`` + ``AZURE_CLIENT_ID`` + ``AZURE_CLIENT_SECRET``
                   (or ``ARM_TENANT_ID`` + ``ARM_CLIENT_ID`` + ``ARM_CLIENT_SECRET``), or ``CertificateCredential``
                   from ``AZURE_TENANT_ID`` + ``AZURE_CLIENT_ID`` + ``AZURE_CLIENT_CERTIFICATE_PATH``
                   (+ ``AZURE_CLIENT_CERTIFICATE_PASSWORD``).
``managed-identity`` ``ManagedIdentityCredential``; user-assigned when ``AZURE_CLIENT_ID`` is set.
``token``          An access token obtained elsewhere, from ``AZURE_ACCESS_TOKEN`` (returned for any scope:
                   it must already be for the right audience); expiry from the token's ``exp`` claim when it
                   is a JWT, else ``AZURE_ACCESS_TOKEN_EXPIRES_ON`` (Unix seconds), else one hour. An already
                   expired token is refused up front (usage error), never sent.
=================  ==========================================================================================

``auto`` (`detect`) picks the first mode whose evidence is present, in this order, and says why:

1. ``pipelines`` — all five ``pipelines`` values are set;
2. ``azure-cli`` — inside AzureCLI@2 (``AZURE_CONFIG_DIR`` or ``AZURESUBSCRIPTION_SERVICE_CONNECTION_ID`` set)
   and ``az`` is on PATH;
3. ``environment`` — a complete client secret or certificate set;
4. ``managed-identity`` — only where the platform announces one (``IDENTITY_ENDPOINT`` or ``MSI_ENDPOINT``:
   App Service, Functions, Container Apps, Arc). An Azure VM's identity (IMDS) is never picked
   automatically: ask for it with ``--auth managed-identity``;
5. ``token`` — ``AZURE_ACCESS_TOKEN`` is set;
6. ``azure-cli`` — outside Azure Pipelines (no ``TF_BUILD``) when ``az`` is on PATH (a developer's login).

Nothing found is a usage error naming what each mode needs.

Token acquisition has its own bounded policy. azure-identity talks to Entra ID (or the managed-identity endpoint,
or the pipeline's OIDC endpoint) through azure-core, whose defaults are 300 s connect and read timeouts and up to
10 retries. Every credential built here gets `TOKEN_CONNECTION_TIMEOUT`/`TOKEN_READ_TIMEOUT` seconds and at most
`TOKEN_RETRY_TOTAL` retries by azure-core's own retry policy, so a token request fails within about
``(TOKEN_RETRY_TOTAL + 1) * (connect + read)`` seconds plus short backoffs; ``az`` (``azure-cli``) gets
`AZ_CLI_TIMEOUT_SECONDS`. These token requests are the one place outside ``dbclient`` (which retries the
calls to Databricks) and ``keyvault.py`` (azure-core's policy for Key Vault calls) where anything is retried.

One vocabulary for every script: the names above are canonical, and the names the Databricks CLI and SDK use
for ``DATABRICKS_AUTH_TYPE`` are accepted as aliases everywhere (``azure-pipelines`` = ``pipelines``,
``azure-client-secret`` = ``environment``, ``azure-msi`` = ``managed-identity``). ``fetch_secrets.py --auth``
takes `CHOICES`; the Databricks steps (``cli.add_workspace_args``) take `DATABRICKS_CHOICES`, which adds
``pat``. Both parse the option with `argument_type`, so ``--help`` lists the canonical names, an alias
becomes its canonical name, and every hint (``--auth managed-identity``...) is a value both accept.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Callable, Mapping
from typing import Any

from .errors import UsageError

KEYVAULT_SCOPE = "https://vault.azure.net/.default"
DATABRICKS_SCOPE = "2ff814a6-3304-4ab8-85cb-cd0e6f879c1d/.default"

MODES = ("pipelines", "azure-cli", "environment", "managed-identity", "token")
ALIASES = {"azure-pipelines": "pipelines", "azure-client-secret": "environment", "azure-msi": "managed-identity"}
CHOICES = ("auto", *MODES)  # fetch_secrets.py --auth
DATABRICKS_CHOICES = ("auto", "pat", *MODES)  # --auth of the Databricks steps (cli.add_workspace_args)

# Token acquisition (see the module docstring): seconds to connect / to wait for an answer, and retries.
TOKEN_CONNECTION_TIMEOUT = 10
TOKEN_READ_TIMEOUT = 20
TOKEN_RETRY_TOTAL = 2
AZ_CLI_TIMEOUT_SECONDS = 30

_SERVICE_CONNECTION = ("AZURESUBSCRIPTION_SERVICE_CONNECTION_ID", "AZURE_SERVICE_CONNECTION_ID")
_CLIENT_ID = ("AZURESUBSCRIPTION_CLIENT_ID", "AZURE_CLIENT_ID", "ARM_CLIENT_ID")
_TENANT_ID = ("AZURESUBSCRIPTION_TENANT_ID", "AZURE_TENANT_ID", "ARM_TENANT_ID")
# Environment variables whose values are credentials: never printed, and scrubbed from relayed messages.
SECRET_VARIABLES = (
    "SYSTEM_ACCESSTOKEN",
    "AZURE_CLIENT_SECRET",
    "ARM_CLIENT_SECRET",
    "AZURE_ACCESS_TOKEN",
    "AZURE_CLIENT_CERTIFICATE_PASSWORD",
    "DATABRICKS_TOKEN",
    "idToken",
    "servicePrincipalKey",
)
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_BEARER = re.compile(r"(?i)(bearer\s+)[^\s'\",;]+")


def _first(environ: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    for name in names:
        value = (environ.get(name) or "").strip()
        if value:
            return value
    return None


def _has(environ: Mapping[str, str], name: str) -> bool:
    return bool((environ.get(name) or "").strip())


def _az_on_path(environ: Mapping[str, str]) -> bool:
    return shutil.which("az", path=environ.get("PATH", os.defpath)) is not None


def normalise_mode(mode: str | None) -> str:
    """The canonical mode name for `mode` (aliases resolved); ``None``/empty means ``auto``."""
    mode = (mode or "auto").strip().lower()
    mode = ALIASES.get(mode, mode)
    if mode not in CHOICES:
        raise UsageError(f"unknown Azure auth mode {mode!r}", hint=f"use one of {', '.join(CHOICES)}")
    return mode


def argument_type(choices: tuple[str, ...] = CHOICES) -> Callable[[str], str]:
    """An argparse ``type=`` for ``--auth``: the canonical name of one of `choices` or of an alias of one."""

    def auth(text: str) -> str:
        mode = text.strip().lower()
        mode = ALIASES.get(mode, mode)
        if mode not in choices:
            aliases = ", ".join(f"{alias}={name}" for alias, name in ALIASES.items() if name in choices)
            raise argparse.ArgumentTypeError(
                f"invalid choice {text!r} (choose from {', '.join(choices)}; aliases {aliases})"
            )
        return mode

    return auth


def help_text(choices: tuple[str, ...] = CHOICES) -> str:
    """``--help`` wording of the choices and their aliases."""
    aliases = ", ".join(alias for alias, name in ALIASES.items() if name in choices)
    return f"one of {'|'.join(choices)}; the Databricks CLI names {aliases} are accepted too"


def _pipelines_values(environ: Mapping[str, str]) -> dict[str, str | None]:
    return {
        "SYSTEM_OIDCREQUESTURI": (environ.get("SYSTEM_OIDCREQUESTURI") or "").strip() or None,
        "SYSTEM_ACCESSTOKEN": (environ.get("SYSTEM_ACCESSTOKEN") or "").strip() or None,
        "service connection id (AZURESUBSCRIPTION_SERVICE_CONNECTION_ID)": _first(environ, _SERVICE_CONNECTION),
        "client id (AZURESUBSCRIPTION_CLIENT_ID or AZURE_CLIENT_ID)": _first(environ, _CLIENT_ID),
        "tenant id (AZURESUBSCRIPTION_TENANT_ID or AZURE_TENANT_ID)": _first(environ, _TENANT_ID),
    }


def _client_secret_values(environ: Mapping[str, str]) -> tuple[str, str, str, str] | None:
    for prefix in ("AZURE", "ARM"):
        tenant, client, secret = (
            environ.get(f"{prefix}_{key}", "").strip() for key in ("TENANT_ID", "CLIENT_ID", "CLIENT_SECRET")
        )
        if tenant and client and secret:
            return prefix, tenant, client, secret
    return None


def _certificate_values(environ: Mapping[str, str]) -> tuple[str, str, str] | None:
    tenant, client, path = (
        environ.get(key, "").strip() for key in ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_CERTIFICATE_PATH")
    )
    return (tenant, client, path) if tenant and client and path else None


def detect(environ: Mapping[str, str] | None = None) -> str:
    """The mode ``auto`` resolves to for this environment (see the module docstring for the order).

    Pure: looks only at `environ` (default ``os.environ``) and whether ``az`` is on its PATH.
    Raises `UsageError` naming what each mode needs when nothing applies.
    """
    return _detect(os.environ if environ is None else environ)[0]


def _detect(environ: Mapping[str, str]) -> tuple[str, str]:
    """(mode, reason) for ``auto``."""
    if all(_pipelines_values(environ).values()):
        return "pipelines", "SYSTEM_OIDCREQUESTURI, SYSTEM_ACCESSTOKEN and a service connection are set"
    inside_azure_cli = _has(environ, "AZURE_CONFIG_DIR") or _has(environ, "AZURESUBSCRIPTION_SERVICE_CONNECTION_ID")
    if inside_azure_cli and _az_on_path(environ):
        return "azure-cli", "running inside AzureCLI@2 (AZURE_CONFIG_DIR or AZURESUBSCRIPTION_* set)"
    if _client_secret_values(environ) or _certificate_values(environ):
        return "environment", "a service principal is set in the environment"
    if _has(environ, "IDENTITY_ENDPOINT") or _has(environ, "MSI_ENDPOINT"):
        return "managed-identity", "the platform announces a managed identity (IDENTITY_ENDPOINT/MSI_ENDPOINT)"
    if _has(environ, "AZURE_ACCESS_TOKEN"):
        return "token", "AZURE_ACCESS_TOKEN is set"
    if not _has(environ, "TF_BUILD") and _az_on_path(environ):
        return "azure-cli", "az is on PATH outside Azure Pipelines (uses your az login)"
    raise UsageError(
        "no Azure credential found for --auth auto",
        hint=(
            "in a plain pipeline step with a workload-identity service connection map SYSTEM_ACCESSTOKEN and "
            "AZURESUBSCRIPTION_SERVICE_CONNECTION_ID/_CLIENT_ID/_TENANT_ID; or run inside AzureCLI@2; or set "
            "AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET; or set AZURE_ACCESS_TOKEN; "
            "or choose --auth managed-identity explicitly"
        ),
    )


class StaticTokenCredential:
    """A ``TokenCredential`` returning one access token obtained elsewhere, whatever scope is asked for."""

    def __init__(self, token: str, expires_on: int) -> None:
        self._token = token
        self._expires_on = int(expires_on)

    def __repr__(self) -> str:  # never show the token
        return f"StaticTokenCredential(expires_on={self._expires_on})"

    def get_token(self, *scopes: str, claims: str | None = None, tenant_id: str | None = None, **kwargs: Any):
        from azure.core.credentials import AccessToken

        return AccessToken(self._token, self._expires_on)

    def close(self) -> None:
        pass

    def __enter__(self) -> StaticTokenCredential:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass


def header_value_problem(value: str) -> str | None:
    """Why `value` cannot be sent as an HTTP header value, or None when it can. Never quotes the value.

    http.client refuses line breaks and encodes headers as Latin-1: a token pasted with a line break or a
    typographic character would otherwise fail inside the HTTP library with the whole header (and so the
    token) in its message. Whitespace inside a token is refused as well: no token format has any."""
    for position, char in enumerate(value, start=1):
        if char in "\r\n":
            return f"contains a line break (character {position})"
        if ord(char) < 32 or 127 <= ord(char) < 160:
            return f"contains a control character (character {position})"
        if char.isspace():
            return f"contains whitespace (character {position})"
        if ord(char) > 255:
            return f"contains a character HTTP headers cannot carry (non-Latin-1, character {position})"
    return None


def check_header_value(value: str, name: str) -> None:
    """Raise `UsageError` naming `name` (never the value) when `value` cannot be sent in an HTTP header."""
    problem = header_value_problem(value)
    if problem:
        raise UsageError(
            f"{name} {problem}",
            hint=f"set {name} again from the original, without line breaks, spaces or typographic characters",
        )


def header_value_from_environ(environ: Mapping[str, str], name: str) -> str:
    """The value of `name` as it will be sent in a header ('' when unset or empty), checked and never stripped.

    A line break is refused wherever it is, leading or trailing too: stripping it would hide a secret that was
    pasted or mapped wrongly, and the README promises an error naming the variable (`check_header_value`)."""
    value = environ.get(name) or ""
    if value:
        check_header_value(value, name)
    return value


def _token_expiry(token: str, environ: Mapping[str, str]) -> int:
    """``exp`` of a JWT (read, not verified), else AZURE_ACCESS_TOKEN_EXPIRES_ON, else one hour from now."""
    parts = token.split(".")
    if len(parts) == 3:
        try:
            payload = parts[1] + "=" * (-len(parts[1]) % 4)
            exp = json.loads(base64.urlsafe_b64decode(payload))["exp"]
            return int(exp)
        except (ValueError, KeyError, TypeError):
            pass
    text = (environ.get("AZURE_ACCESS_TOKEN_EXPIRES_ON") or "").strip()
    if text:
        try:
            return int(float(text))
        except ValueError:
            raise UsageError("AZURE_ACCESS_TOKEN_EXPIRES_ON is not a number", hint="give Unix seconds") from None
    return int(time.time()) + 3600


def token_request_options() -> dict[str, int]:
    """azure-core keyword arguments bounding a credential's token requests (timeouts and retries)."""
    return {
        "connection_timeout": TOKEN_CONNECTION_TIMEOUT,
        "read_timeout": TOKEN_READ_TIMEOUT,
        "retry_total": TOKEN_RETRY_TOTAL,
    }


def _missing(what: str, names: list[str]) -> UsageError:
    return UsageError(f"--auth {what} needs {', '.join(names)}", hint="set them in the step's env:")


def credential(mode: str | None = "auto", environ: Mapping[str, str] | None = None) -> tuple[Any, str]:
    """Build the credential for `mode` (``auto`` resolved by `detect`); return it with a one-line description.

    The description names the credential class and why it was chosen, and never contains a secret.
    Raises `UsageError` when the mode's environment variables are incomplete.
    """
    environ = os.environ if environ is None else environ
    mode = normalise_mode(mode)
    reason = "--auth " + mode
    if mode == "auto":
        mode, why = _detect(environ)
        reason = f"auto-detected: {why}"
    quiet_sdk_logging()
    import azure.identity as identity

    if mode == "pipelines":
        values = _pipelines_values(environ)
        missing = [name for name, value in values.items() if not value]
        if missing:
            raise _missing("pipelines", missing)
        oidc, system_token, connection, client, tenant = values.values()
        if os.environ.get("SYSTEM_OIDCREQUESTURI") != oidc:
            # azure-identity reads the OIDC endpoint from the process environment when it asks for a token.
            os.environ["SYSTEM_OIDCREQUESTURI"] = oidc
        cred = identity.AzurePipelinesCredential(
            tenant_id=tenant,
            client_id=client,
            service_connection_id=connection,
            system_access_token=system_token,
            **token_request_options(),
        )
        return cred, f"AzurePipelinesCredential (service connection {connection}; {reason})"
    if mode == "azure-cli":
        tenant = _first(environ, ("AZURESUBSCRIPTION_TENANT_ID", "AZURE_TENANT_ID"))
        cred = identity.AzureCliCredential(tenant_id=tenant or "", process_timeout=AZ_CLI_TIMEOUT_SECONDS)
        return cred, f"AzureCliCredential ({reason})"
    if mode == "environment":
        secret = _client_secret_values(environ)
        if secret:
            prefix, tenant, client, value = secret
            cred = identity.ClientSecretCredential(
                tenant_id=tenant, client_id=client, client_secret=value, **token_request_options()
            )
            return cred, f"ClientSecretCredential (client {client} from {prefix}_*; {reason})"
        certificate = _certificate_values(environ)
        if certificate:
            tenant, client, path = certificate
            password = environ.get("AZURE_CLIENT_CERTIFICATE_PASSWORD") or None
            cred = identity.CertificateCredential(
                tenant, client, certificate_path=path, password=password, **token_request_options()
            )
            return cred, f"CertificateCredential (client {client}; {reason})"
        raise _missing("environment", ["AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET (or ARM_*)"])
    if mode == "managed-identity":
        client = (environ.get("AZURE_CLIENT_ID") or "").strip() or None
        options = token_request_options()
        cred = (
            identity.ManagedIdentityCredential(client_id=client, **options)
            if client
            else identity.ManagedIdentityCredential(**options)
        )
        which = f"user-assigned {client}" if client else "system-assigned"
        return cred, f"ManagedIdentityCredential ({which}; {reason})"
    # token
    token = header_value_from_environ(environ, "AZURE_ACCESS_TOKEN")
    if not token:
        raise _missing("token", ["AZURE_ACCESS_TOKEN"])
    expires_on = _token_expiry(token, environ)
    if expires_on <= time.time():
        # Sent anyway it only comes back as "401 the token was rejected", which does not say why.
        expired_at = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(expires_on))
        raise UsageError(
            f"AZURE_ACCESS_TOKEN has expired (at {expired_at}, {_ago(time.time() - expires_on)} ago)",
            hint="get a fresh token right before this step, or let the step sign in itself with another --auth mode",
        )
    return StaticTokenCredential(token, expires_on), f"access token from AZURE_ACCESS_TOKEN ({reason})"


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """Credential values present in the environment (to scrub from any message that is relayed)."""
    environ = os.environ if environ is None else environ
    return [environ[name] for name in SECRET_VARIABLES if (environ.get(name) or "").strip()]


def scrub(text: str, secrets: list[str] | tuple[str, ...] = ()) -> str:
    """`text` with the given secret values, bearer tokens and JWTs replaced by ``***``."""
    text = str(text)
    for value in sorted({s for s in secrets if s}, key=len, reverse=True):
        for line in value.splitlines() or [value]:
            if len(line.strip()) >= 4:
                text = text.replace(line, "***")
        text = text.replace(value, "***")
    text = _JWT.sub("***", text)
    return _BEARER.sub(r"\1***", text)


def quiet_sdk_logging() -> None:
    """Keep azure-core/azure-identity log records off stderr (Python's last-resort handler prints warnings,
    which can quote service responses); the scripts report failures themselves, scrubbed."""
    logger = logging.getLogger("azure")
    if not any(isinstance(handler, logging.NullHandler) for handler in logger.handlers):
        logger.addHandler(logging.NullHandler())
    logger.propagate = False
