"""Reading secrets from Azure Key Vault: which secrets, under which pipeline variable names, and why one failed.

Owns the Key Vault side of ``fetch_secrets.py``: the vault URL, name mapping (``--name-style``/``--prefix``)
with its collision check, the skip rules of ``--all`` (disabled, expired, not yet valid), fetching through the
real ``azure-keyvault-secrets`` ``SecretClient``, and turning SDK errors into reasons that never contain a
secret value, a header or a token. It does not choose the credential (`azure_auth`) and prints nothing
(`ado` does).

HTTP behaviour: every call has a connect and read timeout, and azure-core's retry policy is the one place
that retries (429/5xx/connection errors), within `RETRY_TOTAL` attempts and `RETRY_TIMEOUT` seconds.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import azure_auth
from .errors import OperationFailed, UsageError
from .pool import run_all
from .settings import DEFAULT_CONCURRENCY

NAME_STYLES = ("keep", "underscore", "upper")
CONNECT_TIMEOUT = 10
READ_TIMEOUT = 30
RETRY_TOTAL = 3
RETRY_TIMEOUT = 120
_VAULT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{1,22}[A-Za-z0-9]$")
_SECRET_NAME = re.compile(r"^[A-Za-z0-9-]{1,127}$")


@dataclass(frozen=True)
class SecretRef:
    """A secret asked for by name, optionally pinned to a version (``name/version``)."""

    name: str
    version: str | None = None

    def __str__(self) -> str:
        return f"{self.name}/{self.version}" if self.version else self.name


@dataclass
class Fetched:
    """A secret read from the vault; the value never appears in repr()."""

    ref: SecretRef
    variable: str
    value: str = field(repr=False)
    content_type: str | None = None


@dataclass(frozen=True)
class Skipped:
    name: str
    reason: str


@dataclass(frozen=True)
class Failure:
    name: str
    reason: str


def vault_url(url: str | None = None, name: str | None = None) -> str:
    """The vault URL from ``--vault-url`` or ``--vault-name`` (``https://<name>.vault.azure.net``)."""
    if url:
        url = url.strip().rstrip("/")
        if not url.lower().startswith("https://"):
            raise UsageError(
                f"vault URL {url!r} is not https://",
                hint="Key Vault only accepts TLS, e.g. https://kv-dev.vault.azure.net",
            )
        return url
    if name:
        if not _VAULT_NAME.match(name):
            raise UsageError(
                f"invalid Key Vault name {name!r}", hint="3-24 letters, digits and dashes, starting with a letter"
            )
        return f"https://{name.lower()}.vault.azure.net"
    raise UsageError(
        "no Key Vault given", hint="pass --vault-url or --vault-name, or set deploy.keyvault in the config"
    )


def parse_ref(text: str) -> SecretRef:
    """``name`` or ``name/version`` as given to ``--secret``."""
    name, _, version = text.strip().partition("/")
    if not _SECRET_NAME.match(name) or (version and not re.fullmatch(r"[A-Za-z0-9]{1,64}", version)):
        raise UsageError(
            f"invalid secret name {text!r}",
            hint="Key Vault names are letters, digits and dashes; pin a version as NAME/VERSION",
        )
    return SecretRef(name, version or None)


def variable_name(secret_name: str, style: str = "keep", prefix: str = "") -> str:
    """The pipeline variable a secret becomes: keep ``db-token``; underscore ``db_token``; upper ``DB_TOKEN``."""
    if style == "keep":
        mapped = secret_name
    elif style == "underscore":
        mapped = secret_name.replace("-", "_")
    elif style == "upper":
        mapped = secret_name.replace("-", "_").upper()
    else:
        raise UsageError(f"unknown name style {style!r}", hint=f"use one of {', '.join(NAME_STYLES)}")
    return f"{prefix}{mapped}"


def map_names(refs: Sequence[SecretRef], style: str, prefix: str = "") -> dict[SecretRef, str]:
    """Variable name per secret. Pipeline variable names are case-insensitive, so two secrets whose names map
    to the same name in any case are a collision: `UsageError` naming both."""
    from . import ado

    if prefix:  # a prefix that no name can follow is the prefix's fault, whatever the secrets are
        try:
            ado.check_variable_name(prefix + "x")
        except UsageError as error:
            raise UsageError(
                f"--prefix {prefix!r} cannot start a pipeline variable name",
                hint=f"choose another --prefix (e.g. kv_): {error.hint}",
            ) from None
    mapped: dict[SecretRef, str] = {}
    seen: dict[str, SecretRef] = {}
    for ref in refs:
        variable = variable_name(ref.name, style, prefix)
        other = seen.get(variable.lower())
        if other is not None:
            raise UsageError(
                f"secrets {str(other)!r} and {str(ref)!r} both map to pipeline variable {variable!r}",
                hint="pipeline variable names are case-insensitive; use another --name-style, or fetch one of them in a separate step with --prefix",
            )
        try:
            ado.check_variable_name(variable)
        except UsageError as error:
            raise UsageError(
                f"secret {str(ref)!r}: {error.message}", hint="use --prefix to give the variables a safe prefix"
            ) from None
        seen[variable.lower()] = ref
        mapped[ref] = variable
    return mapped


def skip_reason(
    enabled: bool | None, expires_on: dt.datetime | None, not_before: dt.datetime | None, now: dt.datetime | None = None
) -> str | None:
    """Why `--all` skips a secret (disabled, expired, not yet valid), or None to fetch it."""
    now = now or dt.datetime.now(dt.timezone.utc)
    if enabled is False:
        return "disabled"
    if expires_on is not None and expires_on <= now:
        return f"expired {expires_on.strftime('%Y-%m-%dT%H:%M:%SZ')}"
    if not_before is not None and not_before > now:
        return f"not valid before {not_before.strftime('%Y-%m-%dT%H:%M:%SZ')}"
    return None


def open_client(url: str, credential: Any, *, ca_bundle: str | None = None, verify_challenge_resource: bool = True):
    """A `SecretClient` with timeouts and a bounded retry budget."""
    from azure.keyvault.secrets import SecretClient

    options: dict[str, Any] = {
        "verify_challenge_resource": verify_challenge_resource,
        "connection_timeout": CONNECT_TIMEOUT,
        "read_timeout": READ_TIMEOUT,
        "retry_total": RETRY_TOTAL,
        "timeout": RETRY_TIMEOUT,
    }
    if ca_bundle:
        options["connection_verify"] = ca_bundle
    return SecretClient(vault_url=url, credential=credential, **options)


def list_enabled(client: Any, now: dt.datetime | None = None) -> tuple[list[SecretRef], list[Skipped]]:
    """Every secret of the vault (all pages): the ones to fetch, and the ones skipped with the reason."""
    fetch: list[SecretRef] = []
    skipped: list[Skipped] = []
    for properties in client.list_properties_of_secrets():
        reason = skip_reason(properties.enabled, properties.expires_on, properties.not_before, now)
        if reason:
            skipped.append(Skipped(properties.name, reason))
        else:
            fetch.append(SecretRef(properties.name))
    return fetch, skipped


def fetch(
    client: Any,
    variables: dict[SecretRef, str],
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    now: dt.datetime | None = None,
) -> tuple[list[Fetched], list[Failure]]:
    """Read every secret (concurrently, on at most `concurrency` threads of `pool.run_all`); a missing, disabled,
    forbidden or expired one is a `Failure`, returned next to the others: one failure does not stop the rest."""

    def one(ref: SecretRef) -> Fetched | Failure:
        try:
            secret = client.get_secret(ref.name, ref.version)
        except Exception as error:
            return Failure(str(ref), describe_error(error))
        properties = secret.properties
        reason = skip_reason(properties.enabled, properties.expires_on, properties.not_before, now)
        if reason:
            return Failure(str(ref), reason)
        return Fetched(ref, variables[ref], secret.value or "", properties.content_type)

    refs = list(variables)
    if not refs:
        return [], []
    # The client learns the vault's tenant and scope from a 401 challenge and then caches them; reading the first
    # secret alone means only that request is challenged, instead of every parallel first read.
    results = [one(refs[0])]
    results += run_all([lambda ref=ref: one(ref) for ref in refs[1:]], workers=concurrency)
    return [r for r in results if isinstance(r, Fetched)], [r for r in results if isinstance(r, Failure)]


def describe_error(error: BaseException, secrets: Iterable[str] = ()) -> str:
    """A short, scrubbed reason for an SDK error: status and service code, never headers, bodies or tokens."""
    from azure.core import exceptions as azure_errors

    scrub = [*azure_auth.secret_values(), *secrets]
    text = str(error)
    if isinstance(error, azure_errors.ResourceNotFoundError):
        return "not found in the vault (404 SecretNotFound)"
    if isinstance(error, azure_errors.ClientAuthenticationError) and getattr(error, "status_code", None) is None:
        return "authentication failed: " + _short(azure_auth.scrub(text, scrub))
    if isinstance(error, azure_errors.HttpResponseError) and error.status_code is not None:
        code = getattr(getattr(error, "error", None), "code", None)
        status = f"{error.status_code} {code}" if code else str(error.status_code)
        if error.status_code == 403 and "SecretDisabled" in text:
            return "disabled (403 SecretDisabled)"
        if error.status_code == 403:
            return (
                f"forbidden ({status}): the identity needs the 'Key Vault Secrets User' role or a 'get' access "
                "policy, and the vault firewall must admit the agent"
            )
        if error.status_code == 401:
            if not _has_challenge(error):
                # azure-keyvault sends its first request without a token and waits for the challenge; none came.
                return (
                    f"unauthorized ({status}) without a usable WWW-Authenticate challenge, so no token was sent: "
                    "check that the URL is the vault's (not a proxy or another service)"
                )
            return f"unauthorized ({status}): the token was rejected"
        message = getattr(getattr(error, "error", None), "message", None) or ""
        return _short(azure_auth.scrub(f"HTTP {status}: {message}".rstrip(": "), scrub))
    if isinstance(error, azure_errors.ServiceRequestError) and "CERTIFICATE_VERIFY_FAILED" in text:
        return "TLS certificate not trusted (for a private endpoint or emulator pass --ca-bundle or set REQUESTS_CA_BUNDLE)"
    if isinstance(error, ValueError) and "challenge resource" in text:
        return (
            "the vault's authentication challenge names a resource that does not match its host "
            "(only for private endpoints or emulators: --no-verify-challenge-resource)"
        )
    return _short(azure_auth.scrub(f"{type(error).__name__}: {text}", scrub))


def _has_challenge(error: BaseException) -> bool:
    """Whether a 401 carried a Bearer challenge naming where to sign in (only the header's shape is read)."""
    headers = getattr(getattr(error, "response", None), "headers", None) or {}
    challenge = (headers.get("WWW-Authenticate") or "").lower()
    return challenge.startswith("bearer") and "authorization" in challenge


def _short(text: str, limit: int = 300) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def remote_failure(action: str, url: str, error: BaseException) -> OperationFailed:
    """An `OperationFailed` for a vault-wide failure (listing, login), scrubbed."""
    return OperationFailed(f"{action} {url} failed: {describe_error(error)}")
