"""Local workspace state: the stores every API family reads and writes, and what a family may use of the others.

Owns the file `Tree` (workspace, DBFS and volumes are three of them), `WorkspaceState` (the stores, their
lock, the compressed clock, id counters, the dirty flag and --state-dir persistence: state.json replaced
atomically plus content-addressed blobs), the seed clusters, and `EmulatorProtocol`: the state and the few
operations one family calls on another, which every family mixin and `WorkspaceState` subclass so that the
emulator (emulator.py) can compose them without any of them importing it. No HTTP and no API semantics here.
"""

from __future__ import annotations

import base64
import hashlib
import json
import posixpath
import subprocess
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cicdkit import atomic

from .wire import USER_NAME, already_exists, now_ms

# Nominal durations (seconds) before --time-scale; README, "Local workspace" → Flags (--time-scale).
DURATIONS = {
    "cluster_start": 6.0,
    "cluster_restart": 6.0,
    "cluster_terminate": 2.0,
    "library_install": 3.0,
    "run_pending": 1.0,
    "run_terminating": 0.5,
}
SEED_CLUSTERS = [
    {
        "cluster_id": "0101-000000-local001",
        "cluster_name": "ci-cd-dev",
        "spark_version": "15.4.x-scala2.12",
        "state": "RUNNING",
        "data_security_mode": "SINGLE_USER",
    },
    {
        "cluster_id": "0101-000000-local002",
        "cluster_name": "ci-cd-legacy",
        "spark_version": "14.3.x-scala2.12",
        "state": "TERMINATED",
        "data_security_mode": "USER_ISOLATION",
    },
]


class Tree:
    """A file tree keyed by normalised absolute path. Nodes are dicts; `data` holds file/notebook bytes."""

    def __init__(self, roots: tuple[str, ...] = ()):
        self.nodes: dict[str, dict] = {}
        self.children: dict[str, set[str]] = {}
        self._add({"path": "/", "type": "DIRECTORY"})
        for root in roots:
            self.mkdirs(root)

    @staticmethod
    def parent(path: str) -> str:
        return posixpath.dirname(path) or "/"

    def get(self, path: str) -> dict | None:
        return self.nodes.get(path)

    def blocking_prefix(self, path: str) -> str | None:
        """The nearest of `path` and its ancestors that exists and is not a directory, else None.

        Every API refuses to create a folder (or a file) below a file; each words the error its own way.
        """
        prefix = path
        while prefix not in ("/", ""):
            node = self.nodes.get(prefix)
            if node is not None and node["type"] != "DIRECTORY":
                return prefix
            prefix = self.parent(prefix)
        return None

    def _add(self, node: dict) -> dict:
        path = node["path"]
        stamp = now_ms()
        node.setdefault("created_at", stamp)
        node.setdefault("modified_at", stamp)
        node.setdefault("object_id", _next_object_id())
        self.nodes[path] = node
        if path != "/":
            self.children.setdefault(self.parent(path), set()).add(path)
        if node["type"] == "DIRECTORY":
            self.children.setdefault(path, set())
        return node

    def mkdirs(self, path: str) -> dict:
        """mkdir -p; raise ApiError RESOURCE_ALREADY_EXISTS when a prefix is not a directory."""
        existing = self.nodes.get(path)
        if existing is not None:
            if existing["type"] != "DIRECTORY":
                raise already_exists(f"Cannot create directory {path}: a file already exists at {path}")
            return existing
        if path != "/":
            self.mkdirs(self.parent(path))
        return self._add({"path": path, "type": "DIRECTORY"})

    def put(self, path: str, node_type: str, data: bytes, **extra: Any) -> dict:
        """Create or replace a leaf at path (the caller has checked conflicts and the parent)."""
        old = self.nodes.get(path)
        node = {"path": path, "type": node_type, "data": data, **extra}
        if old is not None:
            node["object_id"] = old["object_id"] if old["type"] == node_type else _next_object_id()
            node["created_at"] = old["created_at"]
            node["modified_at"] = now_ms()
            self.nodes[path] = node
            return node
        return self._add(node)

    def list(self, path: str) -> list[dict]:
        return [self.nodes[child] for child in sorted(self.children.get(path, ()))]

    def delete(self, path: str) -> None:
        for child in list(self.children.get(path, ())):
            self.delete(child)
        self.children.pop(path, None)
        self.nodes.pop(path, None)
        if path != "/":
            self.children.get(self.parent(path), set()).discard(path)

    def move(self, source: str, destination: str) -> None:
        subtree = [p for p in self.nodes if p == source or p.startswith(source.rstrip("/") + "/")]
        moved = {p: dict(self.nodes[p]) for p in subtree}
        self.delete(source)
        self.mkdirs(self.parent(destination))
        for old_path in sorted(moved, key=len):
            node = moved[old_path]
            node["path"] = destination + old_path[len(source) :]
            self._add(node)

    def is_empty_dir(self, path: str) -> bool:
        return not self.children.get(path)

    def to_state(self) -> list[dict]:
        out = []
        for path in sorted(self.nodes, key=len):
            live = self.nodes[path]
            node = {k: v for k, v in live.items() if k not in ("data", "_sha")}
            if "data" in live:
                node["sha256"] = self.sha256(live)
            out.append(node)
        return out

    @staticmethod
    def sha256(node: dict) -> str:
        """Content hash, cached on the node (a write always creates a new node, so the cache cannot go stale)."""
        if "_sha" not in node:
            node["_sha"] = hashlib.sha256(node["data"]).hexdigest()
        return node["_sha"]

    @classmethod
    def from_state(cls, nodes: list[dict], read_blob: Callable[[str], bytes]) -> Tree:
        tree = cls()
        for node in nodes:
            if node["path"] == "/":
                continue
            node = dict(node)
            sha = node.pop("sha256", None)
            if sha is not None:
                node["data"] = read_blob(sha)
            tree._add(node)
        return tree


_object_ids = iter(range(1_000_000_000, 1 << 62))
_object_lock = threading.Lock()


def _next_object_id() -> int:
    with _object_lock:
        return next(_object_ids)


@dataclass
class ScriptedOutcome:
    """What a run of a notebook path does instead of executing it (tests use it for speed). `result_state` is a
    result (SUCCESS, FAILED, TIMEDOUT...) of a TERMINATED run, or SKIPPED / INTERNAL_ERROR: the run then ends in
    that life-cycle state (`error` becomes its state message)."""

    result_state: str = "SUCCESS"
    duration_seconds: float = 0.0
    result: str | None = None
    error: str | None = None
    error_trace: str | None = None


# --------------------------------------------------------------------------------------------------------------
# What a family may use of the emulator it is mixed into
# --------------------------------------------------------------------------------------------------------------


class EmulatorProtocol(Protocol):
    """The emulator as an API family sees it: the stores of `WorkspaceState` and the operations another family
    provides. Each family mixin subclasses this protocol, so its methods and handlers are typed against it
    while the emulator (emulator.py) supplies the implementations by composing every mixin."""

    lock: threading.RLock
    changed: threading.Condition  # notified under `lock` whenever the state changes
    stopping: threading.Event
    dirty: bool
    base_url: str
    time_scale: float
    run_timeout: float
    dbfs_handle_timeout: float
    dbfs_delete_missing_ok: bool
    work_dir: Path
    persist_hook: Callable[[], None]
    workspace: Tree
    dbfs: Tree
    volumes: Tree
    dbfs_handles: dict[int, dict]
    upload_sessions: dict[str, str]
    clusters: dict[str, dict]
    libraries: dict[str, list[dict]]
    jobs: dict[int, dict]
    runs: dict[int, dict]
    idempotency: dict[str, int]
    next_id: dict[str, int]
    objects: dict[str, dict[str, dict]]  # lookups.py
    scripted: dict[str, ScriptedOutcome]
    processes: dict[int, subprocess.Popen]
    threads: list[threading.Thread]

    # ---- WorkspaceState ----
    def scaled(self, name_or_seconds: str | float) -> float: ...
    def new_id(self, kind: str) -> int: ...
    def mark_dirty(self) -> None: ...

    # ---- Files (files.py), for compute and runs ----
    def locate(self, uri: str) -> tuple[Tree, str] | None: ...
    def read_uri(self, uri: str) -> bytes | None: ...

    # ---- Clusters (compute.py), for runs and the state's reset ----
    def add_cluster(self, spec: dict) -> dict: ...
    def advance_cluster(self, cluster: dict) -> None: ...
    def start_cluster(self, cluster: dict) -> None: ...
    def installed_wheels(self, cluster_id: str | None) -> list[tuple[str, bytes]]: ...

    # ---- Runs (job_runs.py), for loading persisted state ----
    def after_load(self) -> None: ...


# --------------------------------------------------------------------------------------------------------------
# The stores, the clock, persistence
# --------------------------------------------------------------------------------------------------------------

STATE_VERSION = 1


def _state_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"__bytes__": base64.b64encode(value).decode("ascii")}
    raise TypeError(f"not serialisable: {type(value).__name__}")


def _state_hook(value: dict) -> Any:
    if set(value) == {"__bytes__"}:
        return base64.b64decode(value["__bytes__"])
    return value


class WorkspaceState(EmulatorProtocol):
    """The stores (trees, clusters, libraries, jobs, runs), their lock and clock, and their persistence in
    --state-dir: metadata in state.json (replaced atomically), file contents in blobs/<sha256> (written once)."""

    def __init__(
        self,
        *,
        base_url: str = "http://127.0.0.1",
        time_scale: float = 1.0,
        clusters: list[dict] | None = None,
        run_timeout: float = 600.0,
        dbfs_handle_timeout: float = 600.0,
        dbfs_delete_missing_ok: bool = False,
        work_dir: Path | None = None,
    ):
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.base_url = base_url
        self.time_scale = max(0.0, float(time_scale))
        self.run_timeout = run_timeout
        self.dbfs_handle_timeout = dbfs_handle_timeout
        self.dbfs_delete_missing_ok = dbfs_delete_missing_ok
        self.work_dir = work_dir or Path(tempfile.mkdtemp(prefix="local-workspace-"))
        self.stopping = threading.Event()
        self.dirty = False
        self.scripted = {}
        self.processes = {}
        self.threads = []
        self.persist_hook = lambda: None
        self.saved_blobs: set[str] = set()
        self.seed_clusters = [dict(c) for c in (SEED_CLUSTERS if clusters is None else clusters)]
        self.reset()

    # ---- state lifecycle -----------------------------------------------------------------------------------

    def reset(self) -> None:
        with self.lock:
            self.workspace = Tree(("/Users", f"/Users/{USER_NAME}", "/Shared", "/Repos"))
            self.dbfs = Tree(("/FileStore", "/tmp"))
            self.volumes = Tree(("/Volumes",))
            self.dbfs_handles = {}
            self.clusters = {}
            self.libraries = {}
            self.jobs = {}
            self.runs = {}
            self.idempotency = {}
            self.next_id = {"handle": 1, "job": 1001, "run": 5001, "cluster": 1}
            self.upload_sessions = {}
            self.objects = {}  # lookups.py: policies, pools, warehouses... by kind, then id
            for spec in self.seed_clusters:
                self.add_cluster(spec)
            self.dirty = True

    def scaled(self, name_or_seconds: str | float) -> float:
        seconds = DURATIONS[name_or_seconds] if isinstance(name_or_seconds, str) else float(name_or_seconds)
        return seconds * self.time_scale

    def new_id(self, kind: str) -> int:
        value = self.next_id[kind]
        self.next_id[kind] = value + 1
        return value

    def mark_dirty(self) -> None:
        with self.lock:
            self.dirty = True
            self.changed.notify_all()

    # ---- persistence (--state-dir) ---------------------------------------------------------------------------

    def save_state(self, state_dir: Path) -> None:
        with self.lock:
            blobs = state_dir / "blobs"
            trees = {}
            for name in ("workspace", "dbfs", "volumes"):
                tree: Tree = getattr(self, name)
                trees[name] = tree.to_state()
                for node in tree.nodes.values():
                    if "data" in node:
                        sha = Tree.sha256(node)
                        if sha not in self.saved_blobs:
                            target = blobs / sha
                            if not target.exists():
                                atomic.write_bytes(target, node["data"])
                            self.saved_blobs.add(sha)
            state = {
                "version": STATE_VERSION,
                "trees": trees,
                "clusters": list(self.clusters.values()),
                "libraries": self.libraries,
                "jobs": list(self.jobs.values()),
                "runs": list(self.runs.values()),
                "idempotency": self.idempotency,
                "next_id": self.next_id,
                "objects": self.objects,
            }
            text = json.dumps(state, separators=(",", ":"), default=_state_default)
            atomic.write_bytes(state_dir / "state.json", text.encode("utf-8"))
            self.dirty = False

    def load_state(self, state_dir: Path) -> None:
        path = state_dir / "state.json"
        if not path.exists():
            state_dir.mkdir(parents=True, exist_ok=True)
            return
        state = json.loads(path.read_text(encoding="utf-8"), object_hook=_state_hook)
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"{path}: unsupported state version {state.get('version')!r}")
        blobs = state_dir / "blobs"
        with self.lock:
            for name, nodes in state["trees"].items():
                setattr(self, name, Tree.from_state(nodes, lambda sha: (blobs / sha).read_bytes()))
            self.clusters = {c["cluster_id"]: c for c in state["clusters"]}
            self.libraries = state["libraries"]
            self.jobs = {int(j["job_id"]): j for j in state["jobs"]}
            self.runs = {int(r["run_id"]): r for r in state["runs"]}
            self.idempotency = state["idempotency"]
            self.next_id.update(state["next_id"])
            self.objects = state.get("objects") or {}
            self.after_load()
            self.dirty = False
        # Drop blobs nothing refers to any more (replaced or deleted content).
        used = {node.get("sha256") for nodes in state["trees"].values() for node in nodes}
        if blobs.is_dir():
            for blob in blobs.iterdir():
                if blob.name not in used and not blob.name.startswith("."):
                    blob.unlink(missing_ok=True)


def load_cluster_seed(path: Path) -> list[dict]:
    """A seed file is a JSON list of cluster specs, or {"clusters": [...]}."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(data, dict):
        data = data.get("clusters", [])
    if not isinstance(data, list) or not all(isinstance(c, dict) for c in data):
        raise ValueError(f'{path}: expected a JSON list of cluster objects or {{"clusters": [...]}}')
    return data
