"""Local workspace: the Clusters (2.0/2.1) and Libraries APIs, with their state machines on a compressed clock.

`_Clusters` is mixed into the emulator (emulator.py); states advance lazily from wall-clock timestamps
(durations scaled by --time-scale). Library artifacts are resolved in the emulator's own stores (files.py).
Shapes and messages follow the public Databricks REST API reference
(https://docs.databricks.com/api/azure/workspace/clusters and .../workspace/libraries).
"""

from __future__ import annotations

import json
import posixpath
import random
import re
import time
from typing import Any

from .state import EmulatorProtocol
from .wire import (
    USER_NAME,
    Request,
    Response,
    invalid,
    invalid_state,
    now_ms,
    ok,
    route,
)

# --------------------------------------------------------------------------------------------------------------
# Clusters and Libraries
# --------------------------------------------------------------------------------------------------------------

CLUSTER_STATES = ("PENDING", "RUNNING", "RESTARTING", "RESIZING", "TERMINATING", "TERMINATED", "ERROR", "UNKNOWN")
# Fields a create/edit request sets; `edit` replaces all of them (omitted ones reset to their defaults).
EDITABLE_FIELDS = (
    "cluster_name",
    "spark_version",
    "node_type_id",
    "driver_node_type_id",
    "num_workers",
    "autoscale",
    "spark_conf",
    "spark_env_vars",
    "custom_tags",
    "init_scripts",
    "azure_attributes",
    "autotermination_minutes",
    "data_security_mode",
    "single_user_name",
    "policy_id",
    "runtime_engine",
    "enable_elastic_disk",
    "instance_pool_id",
    "driver_instance_pool_id",
    "ssh_public_keys",
    "cluster_log_conf",
    "docker_image",
    "apply_policy_default_values",
    "enable_local_disk_encryption",
    "is_single_node",
    "kind",
    "use_ml_runtime",
    "workload_type",
)
CLUSTER_DEFAULTS = {
    "spark_version": "15.4.x-scala2.12",
    "node_type_id": "Standard_DS3_v2",
    "driver_node_type_id": "Standard_DS3_v2",
    "num_workers": 1,
    "autotermination_minutes": 60,
    "spark_conf": {},
    "spark_env_vars": {},
    "custom_tags": {},
    "init_scripts": [],
    "azure_attributes": {"first_on_demand": 1, "availability": "ON_DEMAND_AZURE", "spot_bid_max_price": -1.0},
    "data_security_mode": "SINGLE_USER",
    "runtime_engine": "STANDARD",
    "enable_elastic_disk": True,
}
LIBRARY_TYPES = ("whl", "jar", "egg", "requirements", "pypi", "maven", "cran")
STATE_MESSAGES = {
    "PENDING": "Starting Spark",
    "RESTARTING": "Restarting Spark",
    "TERMINATING": "Terminating the cluster",
}


def runtime_version(spark_version: str) -> tuple[int, int]:
    match = re.match(r"(\d+)\.(\d+)", spark_version or "")
    return (int(match.group(1)), int(match.group(2))) if match else (99, 0)


def library_key(library: dict) -> str:
    return json.dumps(library, sort_keys=True)


class _Clusters(EmulatorProtocol):
    """Cluster state machine and library statuses, advanced lazily from wall-clock timestamps."""

    def add_cluster(self, spec: dict) -> dict:
        cluster_id = spec.get("cluster_id") or f"0101-{self.new_id('cluster'):06d}-local{random.randrange(16**3):03x}"
        cluster = json.loads(json.dumps(CLUSTER_DEFAULTS))
        cluster.update({k: v for k, v in spec.items() if k != "state"})
        cluster["cluster_id"] = cluster_id
        cluster.setdefault("cluster_name", cluster_id)
        cluster.setdefault("driver_node_type_id", cluster.get("node_type_id"))
        if cluster.get("data_security_mode") == "SINGLE_USER":
            cluster.setdefault("single_user_name", USER_NAME)
        cluster.setdefault("cluster_source", "UI")
        cluster["creator_user_name"] = cluster.get("creator_user_name", USER_NAME)
        cluster["default_tags"] = {
            "Vendor": "Databricks",
            "Creator": USER_NAME,
            "ClusterName": cluster["cluster_name"],
            "ClusterId": cluster_id,
        }
        cluster["start_time"] = now_ms()
        cluster["_next"] = None
        state = str(spec.get("state", "TERMINATED")).upper()
        if state not in CLUSTER_STATES:
            raise invalid(f"Unknown cluster state {state}")
        self.clusters[cluster_id] = cluster
        self.libraries.setdefault(cluster_id, [])
        self.enter_state(cluster, state, time.time())
        return cluster

    def get_cluster(self, cluster_id: Any) -> dict:
        cluster = self.clusters.get(str(cluster_id)) if cluster_id else None
        if cluster is None:
            raise invalid(f"Cluster {cluster_id} does not exist")
        self.advance_cluster(cluster)
        return cluster

    def enter_state(self, cluster: dict, state: str, at: float) -> None:
        cluster["state"] = state
        cluster["state_message"] = STATE_MESSAGES.get(state, "")
        if state == "RUNNING":
            cluster["_running_since"] = at
            cluster.pop("terminated_time", None)
            cluster.pop("termination_reason", None)
            libraries = [lib for lib in self.libraries.get(cluster["cluster_id"], []) if not lib["uninstall"]]
            for lib in libraries:  # a (re)start reinstalls everything that is not pending removal
                lib.update(final=None, messages=[], snapshot=None)
            self.libraries[cluster["cluster_id"]] = libraries
        else:
            cluster["_running_since"] = None
        if state == "TERMINATED":
            cluster["terminated_time"] = int(at * 1000)
            cluster.setdefault(
                "termination_reason", {"code": "USER_REQUEST", "type": "SUCCESS", "parameters": {"username": USER_NAME}}
            )
        if state == "ERROR":
            cluster["state_message"] = "Cluster entered the ERROR state (set by the local workspace)."

    def schedule(self, cluster: dict, state: str, then: str, seconds: float) -> None:
        self.enter_state(cluster, state, time.time())
        cluster["_next"] = {"state": then, "due": time.time() + seconds}
        self.mark_dirty()

    def advance_cluster(self, cluster: dict) -> None:
        pending = cluster.get("_next")
        if pending and time.time() >= pending["due"]:
            cluster["_next"] = None
            failure = cluster.pop("_fail_next_start", None)
            if pending["state"] == "RUNNING" and failure:
                # The start fails the way an init script failure does: TERMINATED with a termination_reason.
                cluster["termination_reason"] = failure
                self.enter_state(cluster, "TERMINATED", pending["due"])
                cluster["state_message"] = f"Cluster terminated. Reason: {failure['code'].replace('_', ' ').title()}"
                self.mark_dirty()
                return
            if pending["state"] == "RUNNING":
                cluster["last_restarted_time"] = int(pending["due"] * 1000)
            self.enter_state(cluster, pending["state"], pending["due"])
            self.mark_dirty()

    def fail_next_start(self, cluster_id: str, code: str, message: str) -> None:
        cluster = self.get_cluster(cluster_id)
        cluster["_fail_next_start"] = {
            "code": code,
            "type": "CLIENT_ERROR",
            "parameters": {"databricks_error_message": message, "instance_id": f"local-{cluster_id}"},
        }
        self.mark_dirty()

    def force_cluster_state(self, cluster_id: str, state: str) -> None:
        cluster = self.get_cluster(cluster_id)
        if state not in CLUSTER_STATES:
            raise ValueError(f"unknown cluster state {state}")
        cluster["_next"] = None
        self.enter_state(cluster, state, time.time())
        self.mark_dirty()

    def cluster_details(self, cluster: dict) -> dict:
        self.advance_cluster(cluster)
        details = {k: v for k, v in cluster.items() if not k.startswith("_")}
        details["spec"] = {k: cluster[k] for k in EDITABLE_FIELDS if k in cluster}
        return json.loads(json.dumps(details))

    def start_cluster(self, cluster: dict) -> None:
        self.schedule(cluster, "PENDING", "RUNNING", self.scaled("cluster_start"))

    # ---- libraries ----------------------------------------------------------------------------------------

    def library_status(self, cluster: dict, lib: dict) -> str:
        if lib["uninstall"]:
            return "UNINSTALL_ON_RESTART"
        running_since = cluster.get("_running_since")
        if cluster["state"] != "RUNNING" or running_since is None:
            return "PENDING"
        if lib["final"]:
            return lib["final"]
        elapsed = time.time() - max(lib["requested"], running_since)
        duration = self.scaled("library_install")
        if elapsed < duration * 0.2:
            return "PENDING"
        if elapsed < duration * 0.5:
            return "RESOLVING"
        if elapsed < duration:
            return "INSTALLING"
        self.finish_install(cluster, lib)
        return lib["final"]

    def finish_install(self, cluster: dict, lib: dict) -> None:
        """Resolve the artifact in our own stores: missing files (and DBFS wheels on DBR >= 15.1) fail."""
        kind, value = next(iter(lib["library"].items()))
        lib["final"], lib["messages"] = "INSTALLED", []
        self.mark_dirty()
        if kind not in ("whl", "jar", "egg", "requirements"):
            return
        uri = str(value)
        cluster_id = cluster["cluster_id"]
        version = runtime_version(cluster.get("spark_version", ""))

        def fail(reason: str) -> None:
            lib["final"] = "FAILED"
            lib["messages"] = [
                f"Library installation attempted on the driver node of cluster {cluster_id} and failed. Please refer to "
                f"the following error message to fix the library or contact Databricks support. Error Code: "
                f"DRIVER_LIBRARY_INSTALLATION_FAILURE. Error Message: {reason}"
            ]

        if kind == "egg" and version >= (14, 0):
            return fail("Egg libraries are not supported on Databricks Runtime 14.0 and above.")
        if uri.startswith("dbfs:") and version >= (15, 1):
            return fail("DBFS library installations are not supported on DBR 15 or above.")
        if kind == "requirements" and uri.startswith("dbfs:"):
            return fail("Requirements files must be stored as workspace files or in Unity Catalog volumes.")
        located = self.locate(uri)
        if located is None:
            return  # external storage (abfss://, s3://...): nothing to check here
        data = self.read_uri(uri)
        if data is None:
            return fail(f"java.io.FileNotFoundException: {uri} (No such file or directory)")
        if kind == "whl":
            if not uri.endswith(".whl"):
                return fail(f"{uri} is not a valid wheel file name.")
            lib["snapshot"] = data  # identity is the spec: replacing the file later does not reload it

    def library_statuses(self, cluster_id: str) -> list[dict]:
        cluster = self.get_cluster(cluster_id)
        statuses = []
        for lib in sorted(self.libraries.get(cluster_id, []), key=lambda entry: entry["uninstall"]):
            status = {
                "library": lib["library"],
                "status": self.library_status(cluster, lib),
                "is_library_for_all_clusters": False,
            }
            if status["status"] == "UNINSTALL_ON_RESTART":
                status["messages"] = ["Uninstall pending restart"]
            elif lib["messages"]:
                status["messages"] = list(lib["messages"])
            statuses.append(status)
        return statuses

    def installed_wheels(self, cluster_id: str | None) -> list[tuple[str, bytes]]:
        """(file name, bytes) of wheels INSTALLED on the cluster, as snapshotted at install time."""
        if not cluster_id or cluster_id not in self.clusters:
            return []
        cluster = self.get_cluster(cluster_id)
        wheels = []
        for lib in self.libraries.get(cluster_id, []):
            if (
                "whl" in lib["library"]
                and self.library_status(cluster, lib) in ("INSTALLED", "UNINSTALL_ON_RESTART")
                and lib.get("snapshot")
            ):
                wheels.append((posixpath.basename(str(lib["library"]["whl"])), lib["snapshot"]))
        return wheels


def _validate_libraries(request: Request) -> list[dict]:
    libraries = request.param("libraries")
    if not isinstance(libraries, list) or not libraries:
        raise invalid('libraries must be a non-empty list of Library objects, e.g. [{"whl": "/Volumes/..."}]')
    for library in libraries:
        if not isinstance(library, dict) or len([k for k in library if k in LIBRARY_TYPES]) != 1:
            raise invalid(f"Each library must set exactly one of {', '.join(LIBRARY_TYPES)}: {library!r}")
    return [{k: v for k, v in lib.items() if k in LIBRARY_TYPES} for lib in libraries]


CLUSTER_VERSIONS = ("2.0", "2.1")


@route("GET", "clusters/get", CLUSTER_VERSIONS)
def clusters_get(emu: _Clusters, request: Request) -> Response:
    return ok(emu.cluster_details(emu.get_cluster(request.required("cluster_id"))))


@route("GET", "clusters/list", CLUSTER_VERSIONS)
def clusters_list(emu: _Clusters, request: Request) -> Response:
    clusters = [emu.cluster_details(c) for c in emu.clusters.values()]
    return ok({"clusters": clusters} if clusters else {})


SPARK_VERSIONS = [
    ("16.4.x-scala2.12", "16.4 LTS (includes Apache Spark 3.5.2, Scala 2.12)"),
    ("15.4.x-scala2.12", "15.4 LTS (includes Apache Spark 3.5.0, Scala 2.12)"),
    ("15.4.x-photon-scala2.12", "15.4 LTS Photon (includes Apache Spark 3.5.0, Scala 2.12)"),
    ("14.3.x-scala2.12", "14.3 LTS (includes Apache Spark 3.5.0, Scala 2.12)"),
    ("13.3.x-scala2.12", "13.3 LTS (includes Apache Spark 3.4.1, Scala 2.12)"),
]
NODE_TYPES = [
    ("Standard_DS3_v2", 14336, 4.0, "General Purpose"),
    ("Standard_DS4_v2", 28672, 8.0, "General Purpose"),
    ("Standard_D4ds_v5", 16384, 4.0, "General Purpose (HDD)"),
    ("Standard_E8ds_v4", 65536, 8.0, "Memory Optimized"),
]


@route("GET", "clusters/spark-versions", CLUSTER_VERSIONS)
def clusters_spark_versions(emu: _Clusters, request: Request) -> Response:
    return ok({"versions": [{"key": key, "name": name} for key, name in SPARK_VERSIONS]})


@route("GET", "clusters/list-node-types", CLUSTER_VERSIONS)
def clusters_node_types(emu: _Clusters, request: Request) -> Response:
    node_types = [
        {
            "node_type_id": node_id,
            "memory_mb": memory,
            "num_cores": cores,
            "category": category,
            "description": node_id,
            "instance_type_id": node_id,
            "is_deprecated": False,
            "node_info": {},
        }
        for node_id, memory, cores, category in NODE_TYPES
    ]
    return ok({"node_types": node_types})


@route("POST", "clusters/create", CLUSTER_VERSIONS)
def clusters_create(emu: _Clusters, request: Request) -> Response:
    spec = {k: v for k, v in request.json().items() if k in EDITABLE_FIELDS}
    if not spec.get("spark_version"):
        raise invalid("Missing required field: spark_version")
    cluster = emu.add_cluster({**spec, "state": "TERMINATED"})
    cluster.pop("terminated_time", None)
    cluster.pop("termination_reason", None)
    emu.start_cluster(cluster)
    return ok({"cluster_id": cluster["cluster_id"]})


@route("POST", "clusters/start", CLUSTER_VERSIONS)
def clusters_start(emu: _Clusters, request: Request) -> Response:
    cluster = emu.get_cluster(request.required("cluster_id"))
    if cluster["state"] != "TERMINATED":
        raise invalid_state(f"Cluster {cluster['cluster_id']} is in unexpected state {cluster['state'].title()}.")
    emu.start_cluster(cluster)
    return ok()


@route("POST", "clusters/restart", CLUSTER_VERSIONS)
def clusters_restart(emu: _Clusters, request: Request) -> Response:
    cluster = emu.get_cluster(request.required("cluster_id"))
    if cluster["state"] != "RUNNING":
        raise invalid_state(f"Cluster {cluster['cluster_id']} is in unexpected state {cluster['state'].title()}.")
    emu.schedule(cluster, "RESTARTING", "RUNNING", emu.scaled("cluster_restart"))
    return ok()


@route("POST", "clusters/delete", CLUSTER_VERSIONS)
def clusters_delete(emu: _Clusters, request: Request) -> Response:
    cluster = emu.get_cluster(request.required("cluster_id"))
    if cluster["state"] in ("TERMINATED", "TERMINATING"):
        return ok()
    cluster["termination_reason"] = {"code": "USER_REQUEST", "type": "SUCCESS", "parameters": {"username": USER_NAME}}
    emu.schedule(cluster, "TERMINATING", "TERMINATED", emu.scaled("cluster_terminate"))
    return ok()


@route("POST", "clusters/edit", CLUSTER_VERSIONS)
def clusters_edit(emu: _Clusters, request: Request) -> Response:
    cluster = emu.get_cluster(request.required("cluster_id"))
    request.required("spark_version")
    if cluster["state"] not in ("RUNNING", "TERMINATED"):
        raise invalid_state(f"Cluster {cluster['cluster_id']} is in unexpected state {cluster['state'].title()}.")
    body = request.json()
    for key in EDITABLE_FIELDS:  # edit replaces the whole spec
        cluster.pop(key, None)
    cluster.update(json.loads(json.dumps(CLUSTER_DEFAULTS)))
    cluster.update({k: v for k, v in body.items() if k in EDITABLE_FIELDS})
    cluster.setdefault("cluster_name", cluster["cluster_id"])
    cluster.setdefault("driver_node_type_id", cluster.get("node_type_id"))
    if "autoscale" in body:
        cluster.pop("num_workers", None)
    if cluster["state"] == "RUNNING":
        emu.schedule(cluster, "RESTARTING", "RUNNING", emu.scaled("cluster_restart"))
    emu.mark_dirty()
    return ok()


@route("POST", "clusters/update", ("2.1",))
def clusters_update(emu: _Clusters, request: Request) -> Response:
    """The partial alternative to edit: only the fields named in `update_mask` change."""
    cluster = emu.get_cluster(request.required("cluster_id"))
    mask = [name.strip() for name in str(request.required("update_mask")).split(",") if name.strip()]
    unknown = [name for name in mask if name not in EDITABLE_FIELDS]
    if unknown:
        raise invalid(f"update_mask names fields that cannot be updated: {', '.join(unknown)}")
    if cluster["state"] not in ("RUNNING", "TERMINATED"):
        raise invalid_state(f"Cluster {cluster['cluster_id']} is in unexpected state {cluster['state'].title()}.")
    spec = request.param("cluster") or {}
    if not isinstance(spec, dict):
        raise invalid("cluster must be an object")
    for name in mask:
        if name in spec:
            cluster[name] = json.loads(json.dumps(spec[name]))
        else:
            cluster.pop(name, None)
    if cluster["state"] == "RUNNING":
        emu.schedule(cluster, "RESTARTING", "RUNNING", emu.scaled("cluster_restart"))
    emu.mark_dirty()
    return ok()


@route("POST", "libraries/install")
def libraries_install(emu: _Clusters, request: Request) -> Response:
    cluster = emu.get_cluster(request.required("cluster_id"))
    libraries = _validate_libraries(request)
    entries = emu.libraries.setdefault(cluster["cluster_id"], [])
    known = {library_key(lib["library"]): lib for lib in entries}
    for library in libraries:
        existing = known.get(library_key(library))
        if existing is not None:
            existing["uninstall"] = False  # re-installing cancels a pending uninstall; otherwise a no-op
            continue
        entry = {
            "library": library,
            "requested": time.time(),
            "final": None,
            "messages": [],
            "uninstall": False,
            "snapshot": None,
        }
        entries.append(entry)
        known[library_key(library)] = entry
    emu.mark_dirty()
    return ok()


@route("POST", "libraries/uninstall")
def libraries_uninstall(emu: _Clusters, request: Request) -> Response:
    cluster = emu.get_cluster(request.required("cluster_id"))
    wanted = {library_key(lib) for lib in _validate_libraries(request)}
    for entry in emu.libraries.get(cluster["cluster_id"], []):
        if library_key(entry["library"]) in wanted:
            entry["uninstall"] = True
    emu.mark_dirty()
    return ok()


@route("GET", "libraries/cluster-status")
def libraries_cluster_status(emu: _Clusters, request: Request) -> Response:
    cluster_id = str(request.required("cluster_id"))
    statuses = emu.library_statuses(cluster_id)
    body: dict[str, Any] = {"cluster_id": cluster_id}
    if statuses:
        body["library_statuses"] = statuses
    return ok(body)


@route("GET", "libraries/all-cluster-statuses")
def libraries_all_statuses(emu: _Clusters, request: Request) -> Response:
    statuses = []
    for cluster_id in emu.clusters:
        library_statuses = emu.library_statuses(cluster_id)
        if library_statuses:
            statuses.append({"cluster_id": cluster_id, "library_statuses": library_statuses})
    return ok({"statuses": statuses} if statuses else {})
