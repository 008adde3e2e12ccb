"""Local workspace: the objects a bundle's ``lookup`` variables name, created and listed as the service does.

Cluster policies (Clusters API 2.0 ``policies/clusters``), instance pools (``instance-pools``), SQL warehouses
(``sql/warehouses``), service principals (SCIM ``preview/scim/v2/ServicePrincipals``, with the ``displayName eq
'...'`` filter), Unity Catalog metastores (2.1 ``unity-catalog/metastores``), pipelines (``pipelines``), queries,
alerts and legacy dashboards (``sql/queries``, ``sql/alerts``, ``preview/sql/dashboards``) and notification
destinations. Each family answers ``create`` with the id and its list with the service's item key and paging
(``page_token``/``next_page_token``, SCIM ``startIndex``/``count``, the legacy dashboards' ``page``). Clusters and
jobs are compute.py and jobs.py. Names are not checked for uniqueness (the lookups' "several matches" error needs
two); nothing else of these objects is modelled (no get/edit/delete, no permissions, warehouses never start).
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from .state import EmulatorProtocol
from .wire import Request, Response, invalid, now_ms, ok, paginate, route

# kind: (list path, versions, item key, id field, name field, default page size or None for one page)
KINDS: dict[str, tuple[str, tuple[str, ...], str, str, str, int | None]] = {
    "policies": ("policies/clusters/list", ("2.0",), "policies", "policy_id", "name", None),
    "instance_pools": (
        "instance-pools/list",
        ("2.0",),
        "instance_pools",
        "instance_pool_id",
        "instance_pool_name",
        None,
    ),
    "warehouses": ("sql/warehouses", ("2.0",), "warehouses", "id", "name", 100),
    "metastores": ("unity-catalog/metastores", ("2.1",), "metastores", "metastore_id", "name", None),
    "pipelines": ("pipelines", ("2.0",), "statuses", "pipeline_id", "name", 25),
    "queries": ("sql/queries", ("2.0",), "results", "id", "display_name", 20),
    "alerts": ("sql/alerts", ("2.0",), "results", "id", "display_name", 20),
    "notification_destinations": ("notification-destinations", ("2.0",), "results", "id", "display_name", 20),
}


def _store(emu: EmulatorProtocol, kind: str) -> dict[str, dict]:
    return emu.objects.setdefault(kind, {})


def _add(emu: EmulatorProtocol, kind: str, body: dict, **extra: Any) -> dict:
    id_field, name_field = KINDS[kind][3], KINDS[kind][4]
    if not isinstance(body.get(name_field), str) or not body[name_field]:
        raise invalid(f"Missing required field: {name_field}")
    record = {**body, **extra, id_field: uuid.uuid4().hex[:16] if kind != "metastores" else str(uuid.uuid4())}
    _store(emu, kind)[record[id_field]] = record
    emu.mark_dirty()
    return record


def _lister(kind: str):
    path, versions, items_key, _, _, default_size = KINDS[kind]

    @route("GET", path, versions)
    def list_objects(emu: EmulatorProtocol, request: Request) -> Response:
        items = list(_store(emu, kind).values())
        size = default_size
        for name in ("max_results", "page_size"):
            if request.param(name) not in (None, ""):
                size = int(request.param(name)) or None  # metastores: max_results=0 is "all"
        if size is None:
            return ok({items_key: items} if items else {})
        page, token = paginate(items, request.param("page_token"), size)
        body: dict[str, Any] = {items_key: page} if page else {}
        if token:
            body["next_page_token"] = token
        return ok(body)

    return list_objects


for _kind in KINDS:
    _lister(_kind)


@route("POST", "policies/clusters/create")
def policies_create(emu: EmulatorProtocol, request: Request) -> Response:
    body = request.json()
    record = _add(emu, "policies", body, definition=body.get("definition", "{}"), created_at_timestamp=now_ms())
    return ok({"policy_id": record["policy_id"]})


@route("POST", "instance-pools/create")
def instance_pools_create(emu: EmulatorProtocol, request: Request) -> Response:
    record = _add(emu, "instance_pools", request.json(), state="ACTIVE")
    return ok({"instance_pool_id": record["instance_pool_id"]})


@route("POST", "sql/warehouses")
def warehouses_create(emu: EmulatorProtocol, request: Request) -> Response:
    record = _add(emu, "warehouses", request.json(), state="STOPPED")
    return ok({"id": record["id"]})


@route("POST", "unity-catalog/metastores", ("2.1",))
def metastores_create(emu: EmulatorProtocol, request: Request) -> Response:
    return ok(_add(emu, "metastores", request.json(), created_at=now_ms()))


@route("POST", "pipelines")
def pipelines_create(emu: EmulatorProtocol, request: Request) -> Response:
    body = request.json()
    record = _add(emu, "pipelines", {"name": body.get("name")}, state="IDLE", spec=body)
    return ok({"pipeline_id": record["pipeline_id"]})


@route("POST", "sql/queries")
def queries_create(emu: EmulatorProtocol, request: Request) -> Response:
    return ok(_add(emu, "queries", dict(request.json().get("query") or {}), lifecycle_state="ACTIVE"))


@route("POST", "sql/alerts")
def alerts_create(emu: EmulatorProtocol, request: Request) -> Response:
    return ok(_add(emu, "alerts", dict(request.json().get("alert") or {}), lifecycle_state="ACTIVE"))


@route("POST", "notification-destinations")
def notification_destinations_create(emu: EmulatorProtocol, request: Request) -> Response:
    body = request.json()
    kind = next(iter(body.get("config") or {}), "generic_webhook").upper()
    record = _add(emu, "notification_destinations", {"display_name": body.get("display_name")}, destination_type=kind)
    return ok(record)


# ---- legacy SQL dashboards: page/page_size paging ---------------------------------------------------------------


@route("POST", "preview/sql/dashboards")
def dashboards_create(emu: EmulatorProtocol, request: Request) -> Response:
    body = request.json()
    if not isinstance(body.get("name"), str) or not body["name"]:
        raise invalid("Missing required field: name")
    record = {**body, "id": str(uuid.uuid4()), "created_at": now_ms()}
    _store(emu, "dashboards")[record["id"]] = record
    emu.mark_dirty()
    return ok(record)


@route("GET", "preview/sql/dashboards")
def dashboards_list(emu: EmulatorProtocol, request: Request) -> Response:
    items = list(_store(emu, "dashboards").values())
    page = max(1, int(request.param("page") or 1))
    size = min(250, max(1, int(request.param("page_size") or 25)))
    chosen = items[(page - 1) * size : page * size]
    return ok({"count": len(items), "page": page, "page_size": size, "results": chosen})


# ---- SCIM service principals ------------------------------------------------------------------------------------

SCIM_LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
SCIM_SP = "urn:ietf:params:scim:schemas:core:2.0:ServicePrincipal"
_FILTER = re.compile(r"""^\s*(\w+)\s+eq\s+(?:'([^']*)'|"([^"]*)")\s*$""", re.IGNORECASE)


@route("POST", "preview/scim/v2/ServicePrincipals")
def service_principals_create(emu: EmulatorProtocol, request: Request) -> Response:
    body = request.json()
    if not isinstance(body.get("displayName"), str) or not body["displayName"]:
        raise invalid("Missing required field: displayName")
    record = {
        **body,
        "id": str(emu.new_id("cluster") + 7_000_000_000_000),
        "applicationId": body.get("applicationId") or str(uuid.uuid4()),
        "active": body.get("active", True),
        "schemas": [SCIM_SP],
    }
    _store(emu, "service_principals")[record["id"]] = record
    emu.mark_dirty()
    return ok(record, status=201)


@route("GET", "preview/scim/v2/ServicePrincipals")
def service_principals_list(emu: EmulatorProtocol, request: Request) -> Response:
    items = list(_store(emu, "service_principals").values())
    text = request.param("filter")
    if text:
        match = _FILTER.match(str(text))
        if not match or match.group(1) not in ("displayName", "applicationId", "id"):
            raise invalid(f"Unsupported filter: {text}")
        wanted = match.group(2) if match.group(2) is not None else match.group(3)
        field = match.group(1)
        # SCIM compares strings case-insensitively (RFC 7644 3.4.2.2) for displayName.
        items = [i for i in items if str(i.get(field, "")).lower() == wanted.lower()]
    start = max(1, int(request.param("startIndex") or 1))
    count = max(0, int(request.param("count") or 10000))
    page = items[start - 1 : start - 1 + count]
    body: dict[str, Any] = {
        "schemas": [SCIM_LIST],
        "totalResults": len(items),
        "startIndex": start,
        "itemsPerPage": len(page),
    }
    if page:
        body["Resources"] = page
    return ok(body)
