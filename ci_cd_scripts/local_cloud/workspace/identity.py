"""Local workspace identity: who may call (PATs, Microsoft Entra ID tokens of service principals) and who they are
(SCIM Me, the anonymous /.well-known/databricks-config discovery).

`Credentials` checks a request's bearer token: a PAT from its set, or a JWT-shaped Entra ID token with the Azure
Databricks audience that is not about to expire, from a service principal already in the workspace or one that
joins by sending the Azure management headers (first-login provisioning). Signatures are not checked: the
emulator trusts its local callers. Flags: README, "Local workspace" → Flags (--service-principal,
--azure-resource-id); the service's behaviour: https://learn.microsoft.com/azure/databricks/dev-tools/auth/service-prin-aad-token.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time

from .state import EmulatorProtocol
from .wire import ORG_ID, USER_ID, USER_NAME, ApiError, Request, Response, ok, route

ANONYMOUS_PATHS = ("/.well-known/databricks-config",)
AZURE_DATABRICKS_APP_ID = "2ff814a6-3304-4ab8-85cb-cd0e6f879c1d"
ENTRA_AUDIENCES = (AZURE_DATABRICKS_APP_ID, f"api://{AZURE_DATABRICKS_APP_ID}")


def jwt_claims(token: str) -> dict | None:
    """The payload of a JWT-shaped token (signature not checked: the emulator trusts its test callers)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    return claims if isinstance(claims, dict) else None


class Credentials:
    """The PATs and Entra ID service principals the workspace accepts; `authenticate` sets `request.principal`.

    azure_resource_id, when set, must match X-Databricks-Azure-Workspace-Resource-Id.
    """

    def __init__(self, tokens: set[str], service_principals: set[str], azure_resource_id: str | None = None):
        self.tokens = tokens
        self.service_principals = service_principals
        self.azure_resource_id = azure_resource_id
        self._lock = threading.Lock()

    def authenticate(self, request: Request) -> None:
        """PATs from `self.tokens`; JWT-shaped bearer tokens go through the Entra ID rules (`_entra`)."""
        header = request.headers.get("Authorization") or ""
        scheme, _, credential = header.partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise ApiError(401, 401, "Credential was not sent or was of an unsupported type for this API.")
        if credential in self.tokens:
            request.principal = USER_NAME
            return
        claims = jwt_claims(credential)
        if claims is None:
            raise ApiError(403, 403, "Invalid access token.", {"X-Databricks-Reason-Phrase": "Invalid access token."})
        request.principal = self._entra(request, claims)

    def _entra(self, request: Request, claims: dict) -> str:
        """An Entra ID token is accepted with the Azure Databricks audience, not expiring within 30 s, from a known
        service principal — or a new one that sends both management headers (first-login provisioning)."""
        if claims.get("aud") not in ENTRA_AUDIENCES:
            raise ApiError(401, 401, "Credential was not sent or was of an unsupported type for this API.")
        expires = claims.get("exp")
        if isinstance(expires, (int, float)) and expires < time.time() + 30:
            raise ApiError(403, 403, "Token is expiring within 30 seconds. (token expired)")
        principal = str(claims.get("appid") or claims.get("azp") or claims.get("oid") or "")
        if not principal:
            raise ApiError(403, 403, "Invalid access token.", {"X-Databricks-Reason-Phrase": "Invalid access token."})
        resource_id = request.headers.get("X-Databricks-Azure-Workspace-Resource-Id")
        if resource_id and self.azure_resource_id and resource_id.lower() != self.azure_resource_id.lower():
            raise ApiError(
                404, "RESOURCE_DOES_NOT_EXIST", f"The workspace with resource ID {resource_id} could not be found."
            )
        if principal not in self.service_principals:
            if not (resource_id and request.headers.get("X-Databricks-Azure-SP-Management-Token")):
                raise ApiError(
                    403, 403, "Invalid access token.", {"X-Databricks-Reason-Phrase": "Invalid access token."}
                )
            with self._lock:
                self.service_principals.add(principal)
        return principal


def discovery(base_url: str) -> Response:
    """GET /.well-known/databricks-config (anonymous): where the workspace's OIDC endpoints are."""
    return ok({"oidc_endpoint": f"{base_url}/oidc", "workspace_id": ORG_ID})


@route("GET", "preview/scim/v2/Me")
def scim_me(emu: EmulatorProtocol, request: Request) -> Response:
    if request.principal != USER_NAME:  # a service principal: its application id is its userName
        me = {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "id": str(int(hashlib.sha256(request.principal.encode()).hexdigest()[:13], 16)),
            "userName": request.principal,
            "displayName": request.principal,
            "active": True,
        }
        response = ok(me)
        response.headers["X-Databricks-Org-Id"] = ORG_ID
        return response
    me = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "id": USER_ID,
        "userName": USER_NAME,
        "displayName": "Local User",
        "active": True,
        "emails": [{"type": "work", "value": USER_NAME, "primary": True}],
        "groups": [{"display": "admins", "type": "direct", "value": "1", "$ref": "Groups/1"}],
        "entitlements": [{"value": "workspace-access"}, {"value": "allow-cluster-create"}],
    }
    response = ok(me)
    response.headers["X-Databricks-Org-Id"] = ORG_ID
    return response
