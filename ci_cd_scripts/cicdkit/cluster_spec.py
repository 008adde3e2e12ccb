"""Pure edits of a cluster specification: the fields clusters/edit accepts, and attaching an init script.

clusters/edit REPLACES the configuration (omitted fields are reset), so an edit starts from every editable field
of the clusters/get answer. No I/O here; `attach_init_script.py` does the get and the edit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import InputError

EDITABLE_FIELDS = (
    "cluster_id",
    "cluster_name",
    "spark_version",
    "spark_conf",
    "node_type_id",
    "driver_node_type_id",
    "num_workers",
    "autoscale",
    "autotermination_minutes",
    "azure_attributes",
    "aws_attributes",
    "gcp_attributes",
    "ssh_public_keys",
    "custom_tags",
    "cluster_log_conf",
    "init_scripts",
    "spark_env_vars",
    "instance_pool_id",
    "driver_instance_pool_id",
    "policy_id",
    "apply_policy_default_values",
    "enable_elastic_disk",
    "enable_local_disk_encryption",
    "data_security_mode",
    "single_user_name",
    "runtime_engine",
    "docker_image",
    "workload_type",
    "kind",
    "use_ml_runtime",
    "is_single_node",
    "remote_disk_throughput",
    "total_initial_remote_disk_size",
)


def editable_spec(details: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a clusters/get answer that clusters/edit accepts (num_workers dropped when autoscaling)."""
    spec = {key: details[key] for key in EDITABLE_FIELDS if key in details}
    if "autoscale" in spec:
        spec.pop("num_workers", None)
    return spec


def init_script_entry(kind: str, path: str) -> dict[str, dict[str, str]]:
    """The InitScriptInfo for a checked remote path (`kind` workspace or volumes); DBFS is refused."""
    if kind == "dbfs":
        raise InputError(
            f"init scripts on DBFS are end-of-life and disabled on Azure Databricks ({path})",
            hint="upload the script to /Workspace/... or /Volumes/... and attach that path",
        )
    if kind not in ("workspace", "volumes"):
        raise InputError(f"cannot attach an init script from {path}", hint="use /Workspace/... or /Volumes/...")
    return {kind: {"destination": path}}


def _destination(info: Mapping[str, Any]) -> tuple[str, str] | None:
    for kind, body in info.items():
        destination = str((body or {}).get("destination", "")).rstrip("/")
        if kind == "workspace" and destination.startswith("/Workspace/"):
            destination = destination[len("/Workspace") :]  # /Workspace/Shared/x and /Shared/x are the same file
        return kind, destination
    return None


def with_init_script(details: Mapping[str, Any], entry: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """The full edit spec with `entry` appended to init_scripts (existing order kept), and whether it changed.

    An entry with the same destination already present means no change (no duplicates)."""
    spec = editable_spec(details)
    scripts = list(spec.get("init_scripts") or [])
    if any(_destination(existing) == _destination(entry) for existing in scripts):
        return spec, False
    spec["init_scripts"] = scripts + [dict(entry)]
    return spec, True


def without_init_script(details: Mapping[str, Any], path: str) -> tuple[dict[str, Any], bool]:
    """The full edit spec with every init_scripts entry whose destination is `path` removed (the others kept in
    their order), and whether one was there."""
    spec = editable_spec(details)
    scripts = list(spec.get("init_scripts") or [])
    target = _destination({"workspace" if not path.startswith("/Volumes/") else "volumes": {"destination": path}})
    kept = [entry for entry in scripts if _destination(entry) != target]
    if len(kept) == len(scripts):
        return spec, False
    spec["init_scripts"] = kept
    return spec, True
