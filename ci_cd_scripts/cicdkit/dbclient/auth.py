"""Credentials for the Databricks REST client: which `Auth` a step uses and the headers it adds to each request.

Owns the choice of ``--auth`` (else ``DATABRICKS_AUTH_TYPE``, else ``auto``; README "Talking to Databricks",
"Authentication"): a personal access token (`PatAuth`) or a Microsoft Entra ID token for the AzureDatabricks
application, refreshed before it expires (`EntraAuth`), with the service-principal management headers when
``DATABRICKS_AZURE_RESOURCE_ID`` is set. Tokens live only here and in the request headers: never in a repr, an
exception or a log record. It does not build Azure credentials (`azure_auth.credential` does), check hosts
(`hosts.py`) nor send anything (`transport.py`).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from typing import Any

import requests
import requests.auth

from .. import azure_auth
from ..errors import ConfigError, ConnectionFailed, UsageError
from .hosts import _local_token_hint, _local_workspace_start

DATABRICKS_SCOPE = "2ff814a6-3304-4ab8-85cb-cd0e6f879c1d/.default"
MANAGEMENT_SCOPE = "https://management.core.windows.net/.default"
REFRESH_MARGIN_SECONDS = 300
AUTH_CHOICES = azure_auth.DATABRICKS_CHOICES  # and azure_auth.ALIASES (the Databricks CLI names)


class Auth(requests.auth.AuthBase):
    """Adds credentials to each request. `describe` is safe to print; nothing here shows a token."""

    mode = "none"

    def __init__(self, description: str) -> None:
        self.description = description

    def headers(self) -> dict[str, str]:
        raise NotImplementedError

    def secrets(self) -> list[str]:
        """Values that must never be shown (scrubbed from relayed messages)."""
        return []

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers.update(self.headers())
        return request

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.mode}: {self.description}>"


class PatAuth(Auth):
    """A personal access token (or any bearer token given as-is)."""

    mode = "pat"

    def __init__(self, token: str, description: str = "personal access token from DATABRICKS_TOKEN") -> None:
        super().__init__(description)
        self._header = {"Authorization": f"Bearer {token}"}
        self._token = token

    def headers(self) -> dict[str, str]:
        return dict(self._header)

    def secrets(self) -> list[str]:
        return [self._token]


class EntraAuth(Auth):
    """Microsoft Entra ID tokens from an azure-identity credential, refreshed before they expire."""

    mode = "entra"

    def __init__(self, credential: Any, description: str, *, resource_id: str | None = None) -> None:
        super().__init__(description + (" + SP management headers" if resource_id else ""))
        self._credential = credential
        self._resource_id = resource_id
        self._lock = threading.Lock()
        self._tokens: dict[str, Any] = {}

    def _token(self, scope: str) -> str:
        with self._lock:
            cached = self._tokens.get(scope)
            if cached is None or cached.expires_on - time.time() < REFRESH_MARGIN_SECONDS:
                try:
                    cached = self._credential.get_token(scope)
                except Exception as error:  # azure-identity raises several unrelated classes
                    first = azure_auth.scrub(str(error)).strip().splitlines()
                    raise ConnectionFailed(
                        f"Entra ID login failed ({self.description}): {first[0] if first else type(error).__name__}",
                        hint="check the service connection / az login / AZURE_* variables, or use DATABRICKS_TOKEN",
                    ) from None
                problem = azure_auth.header_value_problem(str(cached.token))
                if problem:
                    raise ConnectionFailed(
                        f"Entra ID login ({self.description}) returned a token that cannot be sent: it {problem}",
                        hint="check the credential's source (AZURE_* variables, az login, the service connection)",
                    )
                self._tokens[scope] = cached
            return cached.token

    def headers(self) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self._token(DATABRICKS_SCOPE)}"}
        if self._resource_id:
            headers["X-Databricks-Azure-SP-Management-Token"] = self._token(MANAGEMENT_SCOPE)
            headers["X-Databricks-Azure-Workspace-Resource-Id"] = self._resource_id
        return headers

    def secrets(self) -> list[str]:
        with self._lock:
            return [token.token for token in self._tokens.values()]


def resolve_auth(auth: str | None = None, environ: Mapping[str, str] | None = None, *, host: str | None = None) -> Auth:
    """The `Auth` for ``--auth`` (else ``DATABRICKS_AUTH_TYPE``, else auto); see the module docstring.

    `host` (resolved) only shapes the hint when no credential is set: for the local workspace, its token."""
    environ = os.environ if environ is None else environ
    local = host is not None and _local_workspace_start(host) is not None
    mode = (auth or environ.get("DATABRICKS_AUTH_TYPE") or "auto").strip().lower()
    token = environ.get("DATABRICKS_TOKEN") or ""
    if mode == "auto" and token:
        mode = "pat"
    if mode == "pat":
        if not token:
            raise ConfigError(
                "no Databricks token: DATABRICKS_TOKEN is not set",
                hint=_local_token_hint()
                if local
                else "map the secret into the step's env (env: DATABRICKS_TOKEN: $(databricks-token)) or choose --auth",
            )
        return PatAuth(azure_auth.header_value_from_environ(environ, "DATABRICKS_TOKEN"))
    try:
        azure_mode = azure_auth.normalise_mode(mode)
    except UsageError:
        raise UsageError(
            f"unknown auth type {mode!r}", hint=f"use one of {', '.join(AUTH_CHOICES)} (--auth or DATABRICKS_AUTH_TYPE)"
        ) from None
    if azure_mode == "auto":
        try:
            azure_mode = azure_auth.detect(environ)
        except UsageError as error:
            raise ConfigError(
                "no Databricks credentials found: DATABRICKS_TOKEN is not set and no Entra ID login was detected",
                hint=_local_token_hint()
                if local
                else (
                    f"set DATABRICKS_TOKEN, or {error.hint}" if error.hint else "set DATABRICKS_TOKEN or choose --auth"
                ),
            ) from None
    credential, description = azure_auth.credential(azure_mode, environ)
    resource_id = azure_auth.header_value_from_environ(environ, "DATABRICKS_AZURE_RESOURCE_ID") or None
    return EntraAuth(credential, f"Entra ID via {description}", resource_id=resource_id)
