"""The API families of the Databricks REST client, and `Client`: the transport with one helper per family.

Owns small typed helpers over `Transport.request`/`get`/`post`/`poll`, each saying which of its POSTs are
idempotent (and so retried): `Workspace` (Workspace API 2.0), `Dbfs` (DBFS API 2.0, streamed uploads), `Files`
(Files API 2.0 for /Volumes and workspace files), `Clusters` (Clusters API 2.0 and a deadline-bounded wait for a
state), `Libraries` (Libraries API 2.0), `Jobs` (Jobs API 2.1 one-off runs; Jobs API 2.2 jobs: list, get,
create, reset, delete, run-now), `Permissions` (Permissions API 2.0) and `Listings` (every page of the list
endpoints a bundle's ``lookup`` variables search: clusters, cluster policies, instance pools, jobs, metastores,
notification destinations, pipelines, queries, alerts, SQL warehouses, legacy dashboards, service principals). It does not send, retry or time out
anything itself (`transport.py`, `retry.py`), nor decide what to deploy (the steps and their modules do).
"""

from __future__ import annotations

import base64
import dataclasses
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import IO, Any

from ..errors import ConnectionFailed
from .auth import Auth
from .transport import Transport, _json


class Client(Transport):
    """A Databricks workspace: `request` (the one retry loop), `get`/`post`, and typed helpers per API family."""

    def __init__(self, host: str, auth: Auth, **options: Any) -> None:
        """`options` are `Transport`'s: concurrency, timeout, retry_budget_seconds, backoff, rate_limits, ..."""
        super().__init__(host, auth, **options)
        self.workspace = Workspace(self)
        self.dbfs = Dbfs(self)
        self.files = Files(self)
        self.clusters = Clusters(self)
        self.libraries = Libraries(self)
        self.jobs = Jobs(self)
        self.permissions = Permissions(self)
        self.listings = Listings(self)


class _Family:
    def __init__(self, client: Transport) -> None:
        self._client = client


class Workspace(_Family):
    """Workspace API 2.0: notebooks, files and folders under /Workspace (and /Users, /Shared...)."""

    def import_(
        self,
        path: str,
        content: bytes,
        *,
        format: str = "SOURCE",
        language: str | None = None,
        overwrite: bool = True,
    ) -> None:
        """Import one object (JSON, base64). With overwrite the call is idempotent and retried."""
        body = {"path": path, "format": format, "overwrite": overwrite, "content": base64.b64encode(content).decode()}
        if language:
            body["language"] = language
        self._client.post("/api/2.0/workspace/import", body, idempotent=overwrite)

    def export(self, path: str, *, format: str = "SOURCE") -> bytes:
        answer = self._client.get("/api/2.0/workspace/export", {"path": path, "format": format})
        return base64.b64decode(answer.get("content") or "")

    def mkdirs(self, path: str) -> None:
        self._client.post("/api/2.0/workspace/mkdirs", {"path": path}, idempotent=True)

    def list(self, path: str) -> list[dict[str, Any]]:
        """Objects directly in a folder (``objects`` is omitted for an empty folder: then [])."""
        return list(self._client.get("/api/2.0/workspace/list", {"path": path}).get("objects") or [])

    def get_status(self, path: str) -> dict[str, Any]:
        return self._client.get("/api/2.0/workspace/get-status", {"path": path})

    def delete(self, path: str, *, recursive: bool = False) -> None:
        self._client.post("/api/2.0/workspace/delete", {"path": path, "recursive": recursive}, idempotent=True)


DBFS_BLOCK_SIZE = 1024 * 1024
DBFS_UPLOAD_ATTEMPTS = 3


class Dbfs(_Family):
    """DBFS API 2.0 (legacy; prefer Volumes or workspace files). Paths may carry ``dbfs:``."""

    @staticmethod
    def _path(path: str) -> str:
        return path[len("dbfs:") :] if path.startswith("dbfs:") else path

    def put(self, path: str, content: bytes, *, overwrite: bool = True) -> None:
        """One-call upload of at most 1 MB."""
        body = {"path": self._path(path), "contents": base64.b64encode(content).decode(), "overwrite": overwrite}
        self._client.post("/api/2.0/dbfs/put", body, idempotent=overwrite)

    def create(self, path: str, *, overwrite: bool = True) -> int:
        answer = self._client.post("/api/2.0/dbfs/create", {"path": self._path(path), "overwrite": overwrite})
        return int(answer["handle"])

    def add_block(self, handle: int, data: bytes) -> None:
        """Append a block (≤ 1 MB). Not idempotent: retried only on 429/503, never after a lost connection."""
        self._client.post("/api/2.0/dbfs/add-block", {"handle": handle, "data": base64.b64encode(data).decode()})

    def close(self, handle: int) -> None:
        self._client.post("/api/2.0/dbfs/close", {"handle": handle})

    def upload(self, path: str, stream: IO[bytes], *, overwrite: bool = True, block_size: int = DBFS_BLOCK_SIZE) -> int:
        """Streamed create → add-block per 1 MB → close; memory independent of the file size. Returns bytes sent.

        An ``add-block`` whose answer was lost cannot be repeated (it appends), so after a lost connection a
        seekable, overwriting upload starts again from ``create`` — at most `DBFS_UPLOAD_ATTEMPTS` times."""
        try:
            start = stream.tell() if overwrite and stream.seekable() else None
        except (AttributeError, OSError):
            start = None
        for attempt in range(1, DBFS_UPLOAD_ATTEMPTS + 1):
            try:
                return self._upload_once(path, stream, overwrite=overwrite, block_size=block_size)
            except ConnectionFailed:
                if start is None or attempt == DBFS_UPLOAD_ATTEMPTS:
                    raise
                self._client._count(retries=1)
                stream.seek(start)
        raise AssertionError("unreachable")

    def _upload_once(self, path: str, stream: IO[bytes], *, overwrite: bool, block_size: int) -> int:
        handle = self.create(path, overwrite=overwrite)
        sent = 0
        while True:
            block = stream.read(block_size)
            if not block:
                break
            self.add_block(handle, block)
            sent += len(block)
        self.close(handle)
        return sent

    def get_status(self, path: str) -> dict[str, Any]:
        return self._client.get("/api/2.0/dbfs/get-status", {"path": self._path(path)})

    def list(self, path: str) -> list[dict[str, Any]]:
        return list(self._client.get("/api/2.0/dbfs/list", {"path": self._path(path)}).get("files") or [])

    def mkdirs(self, path: str) -> None:
        self._client.post("/api/2.0/dbfs/mkdirs", {"path": self._path(path)}, idempotent=True)

    def delete(self, path: str, *, recursive: bool = False) -> None:
        self._client.post("/api/2.0/dbfs/delete", {"path": self._path(path), "recursive": recursive}, idempotent=True)

    def read(self, path: str, *, offset: int = 0, length: int = DBFS_BLOCK_SIZE) -> bytes:
        answer = self._client.get("/api/2.0/dbfs/read", {"path": self._path(path), "offset": offset, "length": length})
        return base64.b64decode(answer.get("data") or "")


@dataclasses.dataclass(frozen=True)
class FileMetadata:
    """What ``HEAD fs/files`` says about a file."""

    path: str
    size: int | None
    last_modified: str | None
    content_type: str | None


class Files(_Family):
    """Files API 2.0 for /Volumes/... and /Workspace/... files: streamed uploads and downloads."""

    @staticmethod
    def _url(kind: str, path: str) -> str:
        return f"/api/2.0/fs/{kind}{path if path.startswith('/') else '/' + path}"

    def upload(self, path: str, content: bytes | IO[bytes], *, overwrite: bool = True) -> None:
        """PUT the bytes or the (seekable) file, streamed; with overwrite the call is retried after a failure."""
        self._client.request(
            "PUT",
            self._url("files", path),
            params={"overwrite": overwrite},
            data=content,
            headers={"Content-Type": "application/octet-stream"},
            idempotent=overwrite,
        )

    def head(self, path: str) -> FileMetadata | None:
        """Metadata of a file, or None when it does not exist."""
        from ..errors import NotFound

        try:
            response = self._client.request("HEAD", self._url("files", path))
        except NotFound:
            return None
        size = response.headers.get("Content-Length")
        return FileMetadata(
            path=path,
            size=int(size) if size and size.isdigit() else None,
            last_modified=response.headers.get("Last-Modified"),
            content_type=response.headers.get("Content-Type"),
        )

    def get(self, path: str) -> bytes:
        return self._client.request("GET", self._url("files", path)).content

    def download(self, path: str, destination: IO[bytes], *, chunk_size: int = DBFS_BLOCK_SIZE) -> int:
        """Stream a file into `destination`; returns the bytes written."""
        written = 0
        with self._client.request("GET", self._url("files", path), stream=True) as response:
            for chunk in response.iter_content(chunk_size):
                destination.write(chunk)
                written += len(chunk)
                self._client.check_deadline(f"GET {self._url('files', path)} (download)")
        return written

    def mkdirs(self, path: str) -> None:
        self._client.request("PUT", self._url("directories", path))

    def list_directory(self, path: str) -> Iterator[dict[str, Any]]:
        """Entries of a directory (``path``, ``name``, ``is_directory``, ``file_size``, ``last_modified``), all pages."""
        token = None
        while True:
            answer = self._client.get(self._url("directories", path), {"page_token": token})
            yield from answer.get("contents") or []
            token = answer.get("next_page_token")
            if not token:
                return

    def delete(self, path: str) -> None:
        self._client.request("DELETE", self._url("files", path))

    def delete_directory(self, path: str) -> None:
        """Delete an empty directory (the service refuses one that is not empty: DIRECTORY_NOT_EMPTY)."""
        self._client.request("DELETE", self._url("directories", path))


class Clusters(_Family):
    """Clusters API 2.0: read, start, restart, edit, and wait for a state under a deadline."""

    def get(self, cluster_id: str) -> dict[str, Any]:
        """The cluster's details; `ResourceDoesNotExist` for an unknown id (the service answers 400)."""
        return self._client.get("/api/2.0/clusters/get", {"cluster_id": cluster_id})

    def start(self, cluster_id: str) -> None:
        """Start a TERMINATED cluster (a start that raced with another answers `InvalidState`)."""
        self._transition("/api/2.0/clusters/start", cluster_id)

    def restart(self, cluster_id: str) -> None:
        """Restart a RUNNING cluster."""
        self._transition("/api/2.0/clusters/restart", cluster_id)

    def _transition(self, path: str, cluster_id: str) -> None:
        # start/restart are not idempotent (a second restart is a second restart), so a lost answer is not
        # blindly repeated: look at the cluster first, and send again only if the first call did not land.
        try:
            self._client.post(path, {"cluster_id": cluster_id})
        except ConnectionFailed:
            if self.get(cluster_id).get("state") in ("PENDING", "RESTARTING"):
                return
            self._client.post(path, {"cluster_id": cluster_id})

    def edit(self, spec: Mapping[str, Any]) -> None:
        """Replace the cluster's configuration with `spec` (a full spec: start from `cluster_spec.editable_spec`)."""
        self._client.post("/api/2.0/clusters/edit", dict(spec), idempotent=True)

    def wait_for_state(
        self,
        cluster_id: str,
        states: tuple[str, ...] = ("RUNNING",),
        *,
        timeout: float,
        fail_states: tuple[str, ...] = ("ERROR", "TERMINATED", "TERMINATING", "UNKNOWN"),
        on_poll: Callable[[dict[str, Any], float], None] | None = None,
    ) -> dict[str, Any]:
        """Poll until the cluster is in one of `states`; `OperationFailed` in a fail state, `WaitTimedOut` at the deadline."""
        from ..errors import OperationFailed

        def done(details: dict[str, Any]) -> bool:
            state = details.get("state", "UNKNOWN")
            if state in states:
                return True
            if state in fail_states:
                reason = details.get("state_message") or (details.get("termination_reason") or {}).get("code") or ""
                raise OperationFailed(
                    f"cluster {cluster_id} is {state} while waiting for {'/'.join(states)}"
                    + (f": {' '.join(str(reason).split())}" if reason else "")
                )
            return False

        return self._client.poll(
            lambda: self.get(cluster_id),
            done,
            timeout=timeout,
            what=f"cluster {cluster_id} did not reach {'/'.join(states)}",
            describe=lambda details: details.get("state", "UNKNOWN"),
            on_poll=on_poll,
        )


class Libraries(_Family):
    """Libraries API 2.0. A library is a dict like ``{"whl": "/Volumes/.../x.whl"}`` or ``{"pypi": {"package": ...}}``."""

    def install(self, cluster_id: str, libraries: list[Mapping[str, Any]]) -> None:
        self._client.post(
            "/api/2.0/libraries/install", {"cluster_id": cluster_id, "libraries": list(libraries)}, idempotent=True
        )

    def uninstall(self, cluster_id: str, libraries: list[Mapping[str, Any]]) -> None:
        self._client.post(
            "/api/2.0/libraries/uninstall", {"cluster_id": cluster_id, "libraries": list(libraries)}, idempotent=True
        )

    def cluster_status(self, cluster_id: str) -> list[dict[str, Any]]:
        """``library_statuses`` of the cluster ([] when none): each has ``library``, ``status``, ``messages``."""
        answer = self._client.get("/api/2.0/libraries/cluster-status", {"cluster_id": cluster_id})
        return list(answer.get("library_statuses") or [])


RUN_TERMINAL_STATES = ("TERMINATED", "SKIPPED", "INTERNAL_ERROR")


class Jobs(_Family):
    """Jobs API 2.1: one-off runs (``runs/submit`` with an idempotency token), their state and output; Jobs API
    2.2: the jobs themselves (list, get, create, reset, delete) and ``run-now``."""

    def list_jobs(self, *, name: str | None = None) -> Iterator[dict[str, Any]]:
        """Every job (``job_id``, ``settings`` without tasks: ``expand_tasks=false``), all pages, 100 a page;
        `name` filters on the exact name, case-insensitively (the service's filter)."""
        token = None
        while True:
            params = {"limit": 100, "expand_tasks": "false", "page_token": token, "name": name}
            answer = self._client.get("/api/2.2/jobs/list", {k: v for k, v in params.items() if v is not None})
            yield from answer.get("jobs") or []
            token = answer.get("next_page_token")
            if not token or not answer.get("has_more", True):
                return

    def get_job(self, job_id: int) -> dict[str, Any]:
        """The job with all its settings: Jobs 2.2 pages ``tasks`` and ``job_clusters`` (100 a page); merged here."""
        job = self._client.get("/api/2.2/jobs/get", {"job_id": job_id})
        token = job.pop("next_page_token", None)
        while token:
            page = self._client.get("/api/2.2/jobs/get", {"job_id": job_id, "page_token": token})
            for key in ("tasks", "job_clusters", "parameters", "environments"):
                if (page.get("settings") or {}).get(key):
                    job["settings"].setdefault(key, []).extend(page["settings"][key])
            token = page.get("next_page_token")
        return job

    def create(self, settings: Mapping[str, Any]) -> int:
        """Create a job; returns its job_id. Not retried after a lost answer (a repeat would make a second job):
        the caller finds the job by its identity on the next run."""
        return int(self._client.post("/api/2.2/jobs/create", dict(settings))["job_id"])

    def reset(self, job_id: int, settings: Mapping[str, Any]) -> None:
        """Replace every setting of the job (omitted fields go back to their defaults)."""
        self._client.post("/api/2.2/jobs/reset", {"job_id": job_id, "new_settings": dict(settings)}, idempotent=True)

    def delete(self, job_id: int) -> None:
        self._client.post("/api/2.2/jobs/delete", {"job_id": job_id}, idempotent=True)

    def run_now(
        self, job_id: int, *, job_parameters: Mapping[str, str] | None = None, idempotency_token: str | None = None
    ) -> int:
        """Start a run of the job; returns its run_id. The idempotency token (a fresh one unless given) makes a
        retried call answer the same run."""
        body: dict[str, Any] = {"job_id": job_id, "idempotency_token": idempotency_token or uuid.uuid4().hex}
        if job_parameters:
            body["job_parameters"] = dict(job_parameters)
        return int(self._client.post("/api/2.2/jobs/run-now", body, idempotent=True)["run_id"])

    def submit(self, spec: Mapping[str, Any], *, idempotency_token: str | None = None) -> int:
        """Submit a one-time run; returns its run_id. The idempotency token (a fresh one unless given) makes the
        call safe to retry: the service answers a repeated submit with the same run."""
        body = dict(spec)
        body["idempotency_token"] = idempotency_token or body.get("idempotency_token") or uuid.uuid4().hex
        answer = self._client.post("/api/2.1/jobs/runs/submit", body, idempotent=True)
        return int(answer["run_id"])

    def get_run(self, run_id: int) -> dict[str, Any]:
        return self._client.get("/api/2.1/jobs/runs/get", {"run_id": run_id})

    def get_output(self, run_id: int) -> dict[str, Any]:
        """Output of a task run (for a multi-task run, call it with each ``tasks[i].run_id``)."""
        return self._client.get("/api/2.1/jobs/runs/get-output", {"run_id": run_id})

    def cancel_run(self, run_id: int) -> None:
        self._client.post("/api/2.1/jobs/runs/cancel", {"run_id": run_id}, idempotent=True)

    def wait_for_run(
        self, run_id: int, *, timeout: float, on_poll: Callable[[dict[str, Any], float], None] | None = None
    ) -> dict[str, Any]:
        """Poll until the run is in a terminal life-cycle state; returns the run (check ``state.result_state``)."""
        return self._client.poll(
            lambda: self.get_run(run_id),
            lambda run: (run.get("state") or {}).get("life_cycle_state") in RUN_TERMINAL_STATES,
            timeout=timeout,
            what=f"run {run_id} did not finish",
            describe=lambda run: (run.get("state") or {}).get("life_cycle_state", "UNKNOWN"),
            on_poll=on_poll,
        )


class Permissions(_Family):
    """Permissions API 2.0 of an object (``jobs``, ``clusters``, ...): read, and replace the direct permissions."""

    def get(self, object_type: str, object_id: str | int) -> dict[str, Any]:
        """``{"object_id", "object_type", "access_control_list": [{<principal>, "all_permissions": [...]}]}``."""
        return self._client.get(f"/api/2.0/permissions/{object_type}/{object_id}")

    def set(
        self, object_type: str, object_id: str | int, access_control_list: list[Mapping[str, Any]]
    ) -> dict[str, Any]:
        """Replace the direct permissions (PUT: idempotent, retried); returns the new permissions."""
        body = {"access_control_list": [dict(entry) for entry in access_control_list]}
        return _json(self._client.request("PUT", f"/api/2.0/permissions/{object_type}/{object_id}", body=body))


# What each list endpoint is called, where its items are and how it pages: "token" (page_token/next_page_token),
# "page" (the legacy dashboards' page numbers, until a page is empty), "scim" (startIndex/count), None (one answer).
LISTINGS: dict[str, tuple[str, str, str | None, dict[str, Any]]] = {
    "cluster": ("/api/2.1/clusters/list", "clusters", "token", {"page_size": 100}),
    "cluster_policy": ("/api/2.0/policies/clusters/list", "policies", None, {}),
    "instance_pool": ("/api/2.0/instance-pools/list", "instance_pools", None, {}),
    "job": ("/api/2.2/jobs/list", "jobs", "token", {"limit": 100}),
    "metastore": ("/api/2.1/unity-catalog/metastores", "metastores", "token", {}),
    "notification_destination": ("/api/2.0/notification-destinations", "results", "token", {"page_size": 100}),
    "pipeline": ("/api/2.0/pipelines", "statuses", "token", {"max_results": 100}),
    "query": ("/api/2.0/sql/queries", "results", "token", {"page_size": 100}),
    "alert": ("/api/2.0/sql/alerts", "results", "token", {"page_size": 100}),
    "warehouse": ("/api/2.0/sql/warehouses", "warehouses", "token", {}),
    "dashboard": ("/api/2.0/preview/sql/dashboards", "results", "page", {"page_size": 250}),
    "service_principal": ("/api/2.0/preview/scim/v2/ServicePrincipals", "Resources", "scim", {"count": 100}),
}


class Listings(_Family):
    """Every item of one list endpoint (`LISTINGS`), page after page, as the service returns them."""

    def all(self, kind: str, params: Mapping[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """The items of the `kind` list (``cluster``, ``warehouse``...); `params` narrow it (``name`` for jobs,
        ``filter`` for service principals)."""
        path, key, paging, defaults = LISTINGS[kind]
        query: dict[str, Any] = {**defaults, **(params or {})}
        if paging == "page":
            query["page"] = 1
        if paging == "scim":
            query["startIndex"] = 1
        while True:
            answer = self._client.get(path, query)
            items = list(answer.get(key) or [])
            yield from items
            if paging == "token" and answer.get("next_page_token"):
                query["page_token"] = answer["next_page_token"]
            elif paging == "page" and items:
                query["page"] += 1
            elif (
                paging == "scim"
                and items
                and query["startIndex"] - 1 + len(items) < int(answer.get("totalResults") or 0)
            ):
                query["startIndex"] += len(items)
            else:
                return
