"""Local workspace: the emulated Databricks REST API as one object, `Emulator`: every family's state and handlers.

Served under every API-version prefix real clients use (README, "Local workspace"):
Workspace 2.0, DBFS 2.0, Files 2.0 (/Volumes and /Workspace, fs/endpoints discovery), Clusters 2.0+2.1,
Libraries 2.0, Jobs 2.0/2.1/2.2, Permissions 2.0 for jobs (permissions.py), SCIM Me,
/.well-known/databricks-config, and the workspace-files import-file/read endpoints of the new Databricks CLI,
plus Entra ID bearer tokens for service principals. Submitted runs of Python notebooks, Python files and wheel
entry points execute locally in a subprocess (runner.py) with the cluster's installed wheels importable, a dbutils
shim and a lazy local `spark`.

Code layout: `Emulator` composes `WorkspaceState` (state.py: stores, clock, persistence) with one mixin per
API family — workspace_api.py (Workspace), files.py (DBFS, Files), compute.py (Clusters, Libraries),
job_runs.py (runs and their execution; the Jobs endpoints are jobs.py, the run state machine run_state.py) —
plus identity.py (SCIM Me) and lookups.py (policies, pools, warehouses, service principals... created and
listed), and dispatches each /api/ request through the route registry (wire.py). No HTTP
here: server.py serves it (auth, faults, limits, request log, admin); runner.py is the run subprocess; the
command line is ci_cd_scripts/local_workspace.py.

Time: emulated durations (cluster start/restart/terminate, library install phases, run pending/terminating,
scripted run durations) are nominal seconds multiplied by --time-scale (0.01 = 100x faster, 0 = next poll).
A run subprocess always has a deadline (task/run timeout_seconds, else --run-timeout).

NOT implemented (documented behaviours this emulator does not model):
  - Workspace: DBC, HTML and R_MARKDOWN import/export formats; directory import/export; notebooks_modified_after;
    permissions, repos, git folders; the 500 MB total workspace file limit.
  - DBFS: the 503 "re-invoke" answer of very large deletes; list timeouts; mounts.
  - Files API: real multipart/resumable uploads (initiate-upload answers a session token, the presigned-URL
    endpoints answer 501, abort-upload ends the session, so the SDK falls back to a single PUT);
    complete-upload; If-Unmodified-Since; Unity Catalog itself
    (any /Volumes/<catalog>/<schema>/<volume> is accepted without creating catalogs, schemas or volumes).
  - Clusters: create options are stored, not validated; resize/RESIZING, events, pin, permanent-delete,
    policies beyond create and list (lookups.py), policy enforcement; spark-versions and list-node-types are
    short fixed lists; init scripts are stored but never executed or checked (fail_next_start simulates a
    failing one); UC artifact allowlists and data_security_mode enforcement.
  - Libraries: pypi/maven/cran/jar libraries are reported INSTALLED but not installed (only wheels reach
    PYTHONPATH); wheels with compiled extension modules cannot be imported from the zip; requirements files
    are checked for existence, not installed; all-cluster libraries.
  - Jobs: schedules, triggers, queueing, max_concurrent_runs, retries, repair, runs/cancel-all, export,
    for_each/condition/sql/dbt/pipeline/jar/spark_submit tasks (they end FAILED), job clusters
    (tasks run locally with the job cluster's spec), git_source, job-level environments, permissions of
    objects other than jobs,
    notebook `%pip`/`%run`/`%sql` magics (magic lines are comments), dbutils beyond notebook.exit and
    widgets (fs, secrets, notebook.run raise NotImplementedError); runs expiring after 60 days; 2.2 pagination
    applies to tasks and job_clusters only; restart of a TERMINATED cluster answers INVALID_STATE (no knob);
    notebooks run in a scratch folder, so workspace files next to a notebook are not importable.
  - databricks-cli 0.18 fidelity is an optional test: it runs only when that CLI is importable (e.g. from
    $CLI018_PATH) and 127.0.0.2:80 can be bound, because the CLI drops the port from the host.
  - Auth: PATs and unsigned Entra ID JWTs (audience, expiry, service-principal membership and management
    headers checked, signatures not); no OAuth U2M/M2M token endpoints, no per-user permissions; jobs and
    clusters are always owned by the local user whoever calls.
"""

from __future__ import annotations

# identity, jobs, lookups and permissions hold only endpoints: importing them registers those in wire.ROUTES.
from . import identity, jobs, lookups, permissions  # noqa: F401
from .compute import _Clusters
from .files import _Files
from .job_runs import _Runs
from .state import WorkspaceState
from .wire import API_PREFIX, ROUTES, Request, Response, UnknownEndpoint
from .workspace_api import _Workspace


class Emulator(WorkspaceState, _Workspace, _Files, _Clusters, _Runs):
    """Workspace state (trees, clusters, libraries, jobs, runs) and the handlers of the REST API.

    Every handler runs under `self.lock`; time-driven state (clusters, libraries, runs) advances lazily on
    access from wall-clock timestamps, so no background ticking is needed except run execution threads.
    """

    def handle(self, request: Request) -> Response:
        match = API_PREFIX.match(request.path)
        if not match:
            raise UnknownEndpoint(request.method, request.path)
        version, service_path = match.groups()
        request.version = version
        if service_path.startswith(("fs/files/", "fs/directories/")) or service_path in ("fs/files", "fs/directories"):
            if version != "2.0":
                raise UnknownEndpoint(request.method, request.path)
            with self.lock:
                return self.files_api(request, service_path)
        if service_path.startswith("workspace-files/") and version == "2.0":
            with self.lock:
                return self.workspace_files_api(request, service_path[len("workspace-files/") :])
        if service_path.startswith("permissions/") and version == "2.0":
            with self.lock:
                return permissions.permissions_api(self, request, service_path[len("permissions/") :])
        entry = ROUTES.get((request.method, service_path))
        if entry is None or version not in entry[0]:
            if request.method == "HEAD" and (("GET", service_path) in ROUTES):
                entry = ROUTES[("GET", service_path)]
            else:
                raise UnknownEndpoint(request.method, "/" + service_path)
        with self.lock:
            return entry[1](self, request)

    def shutdown(self) -> None:
        self.stopping.set()
        with self.lock:
            self.changed.notify_all()
        self.shutdown_runs()

    def summary(self) -> dict:
        return {
            "workspace_objects": len(self.workspace.nodes),
            "dbfs_objects": len(self.dbfs.nodes),
            "volume_objects": len(self.volumes.nodes),
            "clusters": {cid: self.cluster_details(c)["state"] for cid, c in self.clusters.items()},
            "jobs": len(self.jobs),
            "runs": {rid: r["state"]["life_cycle_state"] for rid, r in self.runs.items() if "_parent" not in r},
            "scripted": sorted(self.scripted),
        }
