"""Local workspace: the Permissions API for jobs: GET, PUT (replace) and PATCH (add) of
``/api/2.0/permissions/jobs/{job_id}``, and ``/api/2.0/permissions/jobs/{job_id}/permissionLevels``.

A job's direct permissions are kept on its record (``_acl``: one entry per principal and level, the creator
IS_OWNER); the answer adds the ``admins`` group's CAN_MANAGE, inherited from ``/jobs/``. Levels and the
one-owner rule follow the public Permissions API reference
(https://docs.databricks.com/api/azure/workspace/permissions): a job has exactly one owner, a user or a service
principal, never a group; a PUT that names no owner keeps the current one (as the service does for the
creator). Other object types (clusters, notebooks, ...) are not served.
"""

from __future__ import annotations

from typing import Any

from .state import EmulatorProtocol
from .wire import ApiError, Request, Response, UnknownEndpoint, invalid, ok

LEVELS = {
    "CAN_VIEW": "Can view job",
    "CAN_MANAGE_RUN": "Can manage runs of job",
    "CAN_MANAGE": "Can manage job",
    "IS_OWNER": "Is owner of job",
}
PRINCIPALS = ("user_name", "group_name", "service_principal_name")


def permissions_api(emu: EmulatorProtocol, request: Request, rest: str) -> Response:
    """`rest` is the path after ``permissions/``: ``jobs/<id>`` or ``jobs/<id>/permissionLevels``."""
    parts = rest.strip("/").split("/")
    if parts[0] != "jobs" or len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "permissionLevels"):
        raise UnknownEndpoint(request.method, request.path)
    job = emu.jobs.get(int(parts[1])) if parts[1].isdigit() else None
    if job is None:
        raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Job {parts[1]} does not exist.")
    if len(parts) == 3:
        if request.method != "GET":
            raise UnknownEndpoint(request.method, request.path)
        levels = [{"permission_level": level, "description": text} for level, text in LEVELS.items()]
        return ok({"permission_levels": levels})
    if request.method == "GET":
        return ok(_view(job))
    if request.method not in ("PUT", "PATCH"):
        raise UnknownEndpoint(request.method, request.path)
    entries = _entries(request.json().get("access_control_list"))
    current = list(job.get("_acl") or [])
    if request.method == "PATCH":
        merged = current + [e for e in entries if e not in current]
        if any(e["permission_level"] == "IS_OWNER" for e in entries):  # a new owner replaces the old one
            new_owner = next(e for e in reversed(entries) if e["permission_level"] == "IS_OWNER")
            merged = [e for e in merged if e["permission_level"] != "IS_OWNER" or e == new_owner]
    else:
        merged = entries
        if not any(e["permission_level"] == "IS_OWNER" for e in entries):
            merged = [e for e in current if e["permission_level"] == "IS_OWNER"] + entries
    owners = {_principal(e) for e in merged if e["permission_level"] == "IS_OWNER"}
    if len(owners) != 1:
        raise invalid("The job must have exactly one owner.")
    job["_acl"] = merged
    emu.mark_dirty()
    return ok(_view(job))


def _entries(value: Any) -> list[dict]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid("access_control_list must be a list.")
    entries: list[dict] = []
    for item in value:
        if not isinstance(item, dict):
            raise invalid("Each access control entry must be an object.")
        named = [key for key in PRINCIPALS if item.get(key)]
        if len(named) != 1:
            raise invalid(
                "Each access control entry must name exactly one of user_name, group_name or service_principal_name."
            )
        level = item.get("permission_level")
        if level not in LEVELS:
            raise invalid(f"Permission {level} is not supported for jobs; use one of {', '.join(LEVELS)}.")
        if level == "IS_OWNER" and named[0] == "group_name":
            raise invalid(f"Group {item['group_name']} cannot be the owner of a job (use a user or service principal).")
        entry = {named[0]: str(item[named[0]]), "permission_level": level}
        if entry not in entries:
            entries.append(entry)
    return entries


def _principal(entry: dict) -> tuple[str, str]:
    key = next(k for k in PRINCIPALS if k in entry)
    return key, entry[key]


def _view(job: dict) -> dict:
    by_principal: dict[tuple[str, str], list[dict]] = {}
    for entry in job.get("_acl") or []:
        level = {"permission_level": entry["permission_level"], "inherited": False}
        by_principal.setdefault(_principal(entry), []).append(level)
    acl = [{key: name, "all_permissions": levels} for (key, name), levels in by_principal.items()]
    inherited = {"permission_level": "CAN_MANAGE", "inherited": True, "inherited_from_object": ["/jobs/"]}
    acl.append({"group_name": "admins", "all_permissions": [inherited]})
    return {"object_id": f"/jobs/{job['job_id']}", "object_type": "job", "access_control_list": acl}
