"""A local HTTPS Azure Key Vault (secrets only) that the real ``azure-keyvault-secrets`` client accepts unchanged.

Follows the Key Vault secrets REST API (https://learn.microsoft.com/rest/api/keyvault/secrets/) and its
authentication challenge (https://learn.microsoft.com/azure/key-vault/general/authentication-requests-and-responses)
as ``azure-keyvault-secrets`` reads them (README "Private endpoints and emulators"): TLS with a throwaway
certificate for 127.0.0.1 and ``*.vault.azure.net`` (tls.py; the CA is written to ``ca_pem`` for ``REQUESTS_CA_BUNDLE``/``--ca-bundle``), the 401 challenge with
``WWW-Authenticate`` for any request without ``Bearer <token>``, ``api-version`` required, paging with an
absolute ``nextLink`` and ``$skiptoken``, secret versions, 403 ``Forbidden``/``SecretDisabled`` for a disabled
secret, 404 ``SecretNotFound``, and expired secrets still served with 200 (as the real service does).
Faults: a secret added with ``forbidden=True`` answers a plain-text ``403 Forbidden`` (a firewall or an RBAC
scope in front of the vault); ``challenge_form`` chooses the 401 challenge: ``resource`` (default),
``scope``, ``bare`` (``WWW-Authenticate: Bearer`` without parameters) or ``none`` (no header at all).
Every request is logged in ``requests`` (method, path, query, status, authorized) — never the token.

Use::

    with KeyVaultEmulator(token="kv-token") as vault:
        vault.add_secret("databricks-token", "dapi...")
        ... vault.url, vault.ca_pem ...

The local pipeline runner serves it (behind proxy.py); by hand: ``python tests/keyvault_emulator.py --secret databricks-token=dapi123 [--disabled NAME=VALUE]
[--expired NAME=VALUE]`` prints the URL and the CA file, and removes its temporary folder on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import json
import ssl
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

from .tls import LocalCA

TENANT = "72f988bf-0000-4000-8000-000000000001"
RESOURCE = "https://vault.azure.net"
DEFAULT_PAGE_SIZE = 25
CHALLENGE_FORMS = ("resource", "scope", "bare", "none")
# The server certificate covers the loopback address and every vault name (reached through local_cloud's proxy).
HOSTNAMES = ("127.0.0.1", "localhost", "*.vault.azure.net")


@dataclass
class SecretVersion:
    version: str
    value: str
    enabled: bool = True
    content_type: str | None = None
    expires: int | None = None
    not_before: int | None = None
    tags: dict[str, str] = field(default_factory=dict)
    created: int = field(default_factory=lambda: int(time.time()))


@dataclass
class LoggedRequest:
    method: str
    path: str
    query: dict[str, str]
    status: int
    authorized: bool


class KeyVaultEmulator:
    """An HTTPS Key Vault data plane for secrets on an ephemeral loopback port (fresh per instance)."""

    def __init__(
        self,
        token: str = "kv-test-token",
        *,
        tenant: str = TENANT,
        page_size: int = DEFAULT_PAGE_SIZE,
        challenge_form: str = "resource",
        hostnames: tuple[str, ...] = HOSTNAMES,
    ) -> None:
        self.token = token
        self.tenant = tenant
        self.page_size = page_size
        if challenge_form not in CHALLENGE_FORMS:
            raise ValueError(f"challenge_form must be one of {CHALLENGE_FORMS}")
        self.challenge_form = challenge_form
        self.secrets: dict[str, list[SecretVersion]] = {}
        self.forbidden: set[str] = set()  # lower-case names answered with a plain 403
        self.requests: list[LoggedRequest] = []
        self._lock = threading.Lock()
        self._tmp = tempfile.TemporaryDirectory(prefix="kv-emulator-")
        self._ca = LocalCA()
        self.ca_pem = Path(self._tmp.name) / "ca.pem"
        self.ca_pem.write_bytes(self._ca.cert_pem())
        self.hostnames = list(hostnames)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- store ---------------------------------------------------------------------------------------------
    def add_secret(
        self,
        name: str,
        value: str,
        *,
        enabled: bool = True,
        content_type: str | None = "text/plain",
        expires: int | None = None,
        not_before: int | None = None,
        tags: dict[str, str] | None = None,
        forbidden: bool = False,
    ) -> str:
        """Add a new (current) version of `name`; return its version id. `forbidden`: reading it answers 403."""
        version = SecretVersion(uuid.uuid4().hex, value, enabled, content_type, expires, not_before, dict(tags or {}))
        with self._lock:
            self.secrets.setdefault(name, []).append(version)
            if forbidden:
                self.forbidden.add(name.lower())
        return version.version

    def clear_log(self) -> None:
        with self._lock:
            self.requests.clear()

    # -- server ----------------------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        assert self._server is not None, "emulator not started"
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> KeyVaultEmulator:
        context = self._ca.server_context(self.hostnames, Path(self._tmp.name))
        emulator = self

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def finish_request(self, request, client_address):  # TLS handshake in the worker thread
                try:
                    request = context.wrap_socket(request, server_side=True)
                except (ssl.SSLError, OSError):
                    return
                super().finish_request(request, client_address)

            def handle_error(self, request, client_address):  # clients hanging up are not errors here
                pass

        class Handler(_Handler):
            vault = emulator

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="kv-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self._tmp.cleanup()

    def __enter__(self) -> KeyVaultEmulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- protocol --------------------------------------------------------------------------------------------
    def _attributes(self, version: SecretVersion) -> dict:
        attributes = {
            "enabled": version.enabled,
            "created": version.created,
            "updated": version.created,
            "recoveryLevel": "Recoverable+Purgeable",
            "recoverableDays": 90,
        }
        if version.expires is not None:
            attributes["exp"] = version.expires
        if version.not_before is not None:
            attributes["nbf"] = version.not_before
        return attributes

    def _item(self, name: str, version: SecretVersion, with_version: bool) -> dict:
        item = {
            "id": f"{self.url}/secrets/{quote(name)}" + (f"/{version.version}" if with_version else ""),
            "attributes": self._attributes(version),
            "tags": version.tags,
        }
        if version.content_type:
            item["contentType"] = version.content_type
        return item

    def _page(self, items: list[dict], base: str, query: dict[str, str]) -> tuple[int, dict]:
        try:
            size = int(query.get("maxresults") or self.page_size)
            start = int(query.get("$skiptoken") or 0)
        except ValueError:
            return 400, _error("BadParameter", "maxresults and $skiptoken must be integers")
        size = max(1, min(size, DEFAULT_PAGE_SIZE))
        end = start + size
        next_link = None
        if end < len(items):
            next_link = f"{self.url}{base}?api-version={quote(query['api-version'])}&$skiptoken={end}&maxresults={size}"
        return 200, {"value": items[start:end], "nextLink": next_link}

    def respond(
        self, method: str, path: str, query: dict[str, str], authorization: str | None
    ) -> tuple[int, dict | str, dict[str, str]]:
        """(status, JSON body (or plain text), extra headers) for one request."""
        if authorization != f"Bearer {self.token}":
            form = f'scope="{RESOURCE}/.default"' if self.challenge_form == "scope" else f'resource="{RESOURCE}"'
            challenge = f'Bearer authorization="https://login.microsoftonline.com/{self.tenant}", {form}'
            headers = {"none": {}, "bare": {"WWW-Authenticate": "Bearer"}}.get(
                self.challenge_form, {"WWW-Authenticate": challenge}
            )
            return 401, _error("Unauthorized", "AKV10000: Request is missing a Bearer or PoP token."), headers
        if not query.get("api-version"):
            return 400, _error("BadParameter", "The api-version query parameter is required."), {}
        if method != "GET":
            return 405, _error("MethodNotAllowed", f"{method} is not supported by this emulator"), {}
        parts = [unquote(part) for part in path.split("/")]
        # '/secrets' -> ['', 'secrets']; '/secrets/x/' -> ['', 'secrets', 'x', '']
        if len(parts) < 2 or parts[1] != "secrets":
            return 404, _error("NotFound", "unknown path"), {}
        rest = parts[2:]
        if rest and rest[-1] == "":
            rest = rest[:-1]
        with self._lock:
            store = {name: list(versions) for name, versions in self.secrets.items()}
        if not rest:
            items = [self._item(name, store[name][-1], False) for name in sorted(store, key=str.lower)]
            return (*self._page(items, "/secrets", query), {})
        name = rest[0]
        versions = store.get(name) or next((v for k, v in store.items() if k.lower() == name.lower()), None)
        if len(rest) == 2 and rest[1] == "versions":
            if not versions:
                return 404, _not_found(name), {}
            items = [self._item(name, version, True) for version in versions]
            return (*self._page(items, f"/secrets/{quote(name)}/versions", query), {})
        if len(rest) > 2 or not versions:
            return 404, _not_found(name), {}
        if name.lower() in self.forbidden:
            return 403, "Forbidden", {}
        if len(rest) == 2:
            version = next((v for v in versions if v.version == rest[1]), None)
            if version is None:
                return 404, _not_found(f"{name}/{rest[1]}"), {}
        else:
            version = versions[-1]
        if not version.enabled:
            body = _error("Forbidden", "Operation get is not allowed on a disabled secret.")
            body["error"]["innererror"] = {"code": "SecretDisabled"}
            return 403, body, {}
        bundle = self._item(name, version, True)
        bundle["value"] = version.value
        return 200, bundle, {}


def _error(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


def _not_found(name: str) -> dict:
    return _error(
        "SecretNotFound",
        f"A secret with (name/id) {name} was not found in this key vault. If you "
        "recently deleted this secret you may be able to recover it using the correct recovery command.",
    )


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out without the ~40 ms delayed-ACK stall
    vault: KeyVaultEmulator

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        parts = urlsplit(self.path)
        query = {key: values[-1] for key, values in parse_qs(parts.query, keep_blank_values=True).items()}
        authorization = self.headers.get("Authorization")
        status, body, headers = self.vault.respond(self.command, parts.path, query, authorization)
        with self.vault._lock:
            self.vault.requests.append(
                LoggedRequest(self.command, parts.path, query, status, authorization == f"Bearer {self.vault.token}")
            )
        plain = isinstance(body, str)
        payload = (body if plain else json.dumps(body)).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8" if plain else "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("x-ms-keyvault-service-version", "1.9.0.0")
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle
