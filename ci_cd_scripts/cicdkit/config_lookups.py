"""``lookup`` variables: a cluster, warehouse, job... named in the config, resolved to its id in the workspace.

Part of the config loader (see `config`); README "Configuration", **Lookups**. `resolve` takes the Databricks
client (`dbclient.Client`, made by the caller) and the distinct ``(kind, name)`` pairs, lists each kind once
(`dbclient.Listings`), concurrently on `pool.run_all`, and answers each pair's id. The matching and the messages are
the reference's (databricks/cli ``bundle/config/variable/resolve_*.go`` and the Go SDK's ``GetByName`` helpers): an
exact, case-sensitive name; no match → ``failed to resolve cluster: NAME, err: cluster named 'NAME' does not
exist``; two or more → ``... err: there are 2 instances of clusters named 'NAME'``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .config_types import go_quote
from .errors import ConfigError
from .pool import run_all

# kind: (label in messages, id field, name field, the Go SDK type its GetByName helper names, or None when the
# reference words the errors itself: then `_OWN_MESSAGES`).
KINDS: dict[str, tuple[str, str, str, str | None]] = {
    "alert": ("alert", "id", "display_name", "ListAlertsResponseAlert"),
    "cluster": ("cluster", "cluster_id", "cluster_name", None),
    "cluster_policy": ("cluster-policy", "policy_id", "name", "Policy"),
    "dashboard": ("dashboard", "id", "name", None),
    "instance_pool": ("instance-pool", "instance_pool_id", "instance_pool_name", "InstancePoolAndStats"),
    "job": ("job", "job_id", "settings.name", "BaseJob"),
    "metastore": ("metastore", "metastore_id", "name", None),
    "notification_destination": ("notification-destination", "id", "display_name", None),
    "pipeline": ("pipeline", "pipeline_id", "name", "PipelineStateInfo"),
    "query": ("query", "id", "display_name", "ListQueryObjectsResponseQuery"),
    "service_principal": ("service-principal", "applicationId", "displayName", None),
    "warehouse": ("warehouse", "id", "name", "EndpointInfo"),
}
# (no match, several matches) where the reference has its own words; "{q}" is the name quoted as Go's %q does.
_OWN_MESSAGES = {
    "cluster": ("cluster named '{name}' does not exist", "there are {n} instances of clusters named '{name}'"),
    "dashboard": ("dashboard name '{name}' does not exist", "there are {n} instances of dashboards named '{name}'"),
    "metastore": ("metastore named {q} does not exist", "there are {n} instances of metastores named {q}"),
    # "clusters" is the reference's own wording for several destinations (resolve_notification_destination.go).
    "notification_destination": (
        "notification destination named {q} does not exist",
        "there are {n} instances of clusters named {q}",
    ),
    "service_principal": (
        "service principal named {q} does not exist",
        "multiple service principals found with display name {q}",
    ),
}


def _messages(kind: str) -> tuple[str, str]:
    sdk_type = KINDS[kind][3]
    if sdk_type is None:
        return _OWN_MESSAGES[kind]
    return f"{sdk_type} named '{{name}}' does not exist", f"there are {{n}} instances of {sdk_type} named '{{name}}'"


# The reference lists only clusters users made (not job clusters, which can be thousands).
_CLUSTER_SOURCES = ("API", "UI")


def describe(kind: str, name: str) -> str:
    """``cluster: NAME``, how the reference names a lookup."""
    return f"{KINDS[kind][0]}: {name}"


def _field(item: dict, dotted: str) -> Any:
    for part in dotted.split("."):
        item = item.get(part) if isinstance(item, dict) else None
    return item


def _candidates(client: Any, kind: str, names: list[str]) -> dict[str, list[str]]:
    """The ids per wanted name from one kind's list (service principals: one filtered call per name)."""
    _, id_field, name_field, _ = KINDS[kind]
    found: dict[str, list[str]] = {name: [] for name in names}
    if kind == "service_principal":
        items = [
            item
            for name in names
            for item in client.listings.all(kind, {"filter": "displayName eq '{}'".format(name.replace("'", "\\'"))})
        ]
    elif kind == "job" and len(names) == 1:
        items = list(client.listings.all(kind, {"name": names[0]}))  # the service filters by name
    else:
        items = list(client.listings.all(kind))
    seen: set[tuple[str, str]] = set()
    for item in items:
        if kind == "cluster" and item.get("cluster_source") not in (None, *_CLUSTER_SOURCES):
            continue
        name, identifier = _field(item, name_field), _field(item, id_field)
        if name in found and identifier is not None and (name, str(identifier)) not in seen:
            seen.add((name, str(identifier)))
            found[name].append(str(identifier))
    return found


def resolve(client: Any, wanted: Iterable[tuple[str, str]], *, workers: int = 8) -> dict[tuple[str, str], str]:
    """The id of every ``(kind, name)``; `ConfigError` with the reference's message for a missing or ambiguous
    name (the first in sorted order when several fail). One list per kind, the kinds concurrently."""
    by_kind: dict[str, list[str]] = {}
    for kind, name in sorted(set(wanted)):
        by_kind.setdefault(kind, []).append(name)
    kinds = sorted(by_kind)
    answers = run_all(
        [lambda kind=kind: _candidates(client, kind, by_kind[kind]) for kind in kinds], workers=workers, in_order=True
    )
    resolved: dict[tuple[str, str], str] = {}
    for kind, found in zip(kinds, answers):
        missing, several = _messages(kind)
        for name in by_kind[kind]:
            ids = found[name]
            if len(ids) != 1:
                message = (missing if not ids else several).format(name=name, n=len(ids), q=go_quote(name))
                raise ConfigError(
                    f"failed to resolve {describe(kind, name)}, err: {message}",
                    hint="check the name in the variable's lookup, or set the variable with --var NAME=<id>",
                )
            resolved[(kind, name)] = ids[0]
    return resolved
