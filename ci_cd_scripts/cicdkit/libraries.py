"""Decisions of a library rollout on a cluster, and the rollout itself (`roll_out`) on top of a client.

The decisions are pure functions with fast unit tests:

* `Library` — one entry of the Libraries API (``{"whl": path}``, ``{"pypi": {"package": spec}}``, ...) with the
  normalised distribution name it provides (from the wheel file name or the requirement, never a repo name);
* `plan_cluster` — given what the cluster reports and what should be installed: which installed libraries of the
  same distributions to uninstall (all in one call), what to install (one call), what is already there;
* `next_action` — restart, start or nothing (exactly one restart per cluster, and only if something was
  uninstalled; start a TERMINATED cluster that has changes; nothing with ``--no-restart``);
* `library_progress` — whether every wanted library is INSTALLED, which failed (with the service's messages).

`roll_out` does the I/O for one cluster with a `dbclient.Client` passed in (this module never imports it), and
reports what landed even when it fails half-way, so a failed step's summary counts exactly what was written.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from . import requirements, wheels
from .errors import CICDError, InputError, InvalidState, OperationFailed, ResourceDoesNotExist, WaitTimedOut

INSTALLED_STATES = ("INSTALLED", "RESTORED")
FAILED_STATES = ("FAILED", "SKIPPED")
PENDING_REMOVAL = "UNINSTALL_ON_RESTART"
SETTLED_CLUSTER_STATES = ("RUNNING", "TERMINATED")


@dataclasses.dataclass(frozen=True)
class Library:
    """One library spec. `kind` is whl/jar/egg/requirements/pypi/maven/cran; `location` the path or requirement."""

    kind: str
    location: str
    repo: str | None = None

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Library:
        for kind in ("whl", "jar", "egg", "requirements"):
            if kind in spec:
                return cls(kind, str(spec[kind]))
        for kind, key in (("pypi", "package"), ("cran", "package"), ("maven", "coordinates")):
            if kind in spec:
                body = spec[kind] or {}
                return cls(kind, str(body.get(key, "")), body.get("repo"))
        return cls("other", json.dumps(dict(spec), sort_keys=True))

    def spec(self) -> dict[str, Any]:
        if self.kind in ("whl", "jar", "egg", "requirements"):
            return {self.kind: self.location}
        if self.kind in ("pypi", "cran"):
            return {self.kind: {"package": self.location, **({"repo": self.repo} if self.repo else {})}}
        if self.kind == "maven":
            return {"maven": {"coordinates": self.location, **({"repo": self.repo} if self.repo else {})}}
        return json.loads(self.location)

    @property
    def distribution(self) -> str | None:
        """The normalised Python distribution this library provides (None when it is not a Python package)."""
        if self.kind == "whl":
            return wheel_distribution(self.location, strict=False)
        if self.kind == "pypi":
            try:
                return canonicalize_name(Requirement(self.location).name)
            except InvalidRequirement:
                return None
        return None

    def __str__(self) -> str:
        return f"{self.kind} {self.location}"


def wheel_distribution(path: str, *, strict: bool = True) -> str | None:
    """The normalised distribution name of a wheel file (``My_Pkg-1.0-py3-none-any.whl`` → ``my-pkg``)."""
    try:
        return wheels.parse_name(path.rsplit("/", 1)[-1]).distribution
    except wheels.InvalidWheelFilename:
        if strict:
            raise InputError(
                f"{path!r} is not a wheel file name", hint="expected <name>-<version>-<python>-<abi>-<platform>.whl"
            ) from None
        return None


def workspace_library_path(path: str) -> str:
    """Library paths for workspace files must start with /Workspace (``/Users/x.whl`` → ``/Workspace/Users/x.whl``)."""
    if path.startswith(("/Users/", "/Shared/", "/Repos/")):
        return "/Workspace" + path
    return path


# What a local requirements file's pip options become as cluster libraries. A PyPI library of the Libraries API
# has exactly one `repo` (it replaces PyPI), so only --index-url can be honoured; the rest either only choose
# between a wheel and an sdist of the same version (ignored, with a notice) or change which packages or
# versions pip may pick (refused: the cluster would install something else than pip does on the agent).
_IGNORED_OPTIONS = ("--prefer-binary", "--only-binary", "--no-binary")
_REFUSED_OPTIONS = {
    "--extra-index-url": "a cluster PyPI library has one repo, so packages cannot come from PyPI and a second index",
    "--trusted-host": "a cluster PyPI library cannot trust a host",
    "--pre": "a cluster PyPI library cannot allow pre-releases (pin the pre-release version instead)",
}


def requirements_libraries(path: Path) -> tuple[list[Library], list[str]]:
    """PyPI libraries from a local requirements file, and notices about what was ignored.

    The file is read by `requirements.read_files` (the parser merge_requirements.py uses: continuations, ``-r``
    includes, one ``--index-url``, conflicting pins refused) and merged, so each distribution is one library.
    ``--index-url`` becomes every library's ``repo``; binary options and the lines requirements.py drops are
    ignored with a notice; ``--extra-index-url``, ``--trusted-host`` and ``--pre`` are refused (upload the file
    and pass its remote path: a ``requirements`` library is installed by pip, honouring every option)."""
    parsed = requirements.read_files([path])
    merged = requirements.merge(parsed)  # de-duplicates, refuses conflicting pins and two different --index-url
    notices = list(merged.warnings)
    repo = None
    for option in parsed.options:
        if option.name == "--index-url":
            repo = option.value
        elif option.name in _REFUSED_OPTIONS:
            raise InputError(
                f"{option.origin}: {option.name} cannot be installed as a cluster library: {_REFUSED_OPTIONS[option.name]}",
                hint="upload the requirements file and pass its /Volumes or /Workspace path to --requirements",
            )
        elif option.name in _IGNORED_OPTIONS:
            notices.append(
                f"{option.origin}: ignored {option.line()}: cluster PyPI libraries cannot choose wheels or sdists"
            )
        else:
            raise InputError(
                f"{option.origin}: {option.name} cannot be installed as a cluster library",
                hint="upload the requirements file and pass its /Volumes or /Workspace path to --requirements",
            )
    return [Library("pypi", requirement, repo) for requirement in merged.requirements], notices


@dataclasses.dataclass(frozen=True)
class ClusterPlan:
    """What to do on one cluster: uninstall (one call), install (one call), and what is already in place."""

    cluster_id: str
    uninstall: tuple[Library, ...]
    install: tuple[Library, ...]
    keep: tuple[Library, ...]
    pending_removal: tuple[Library, ...] = ()

    @property
    def changes(self) -> bool:
        return bool(self.uninstall or self.install)

    @property
    def needs_restart(self) -> bool:
        """Old versions stay loaded until a restart: after an uninstall, or one left pending by an earlier run."""
        return bool(self.uninstall or self.pending_removal)


def plan_cluster(cluster_id: str, statuses: Iterable[Mapping[str, Any]], wanted: Iterable[Library]) -> ClusterPlan:
    """Decide the calls for one cluster from its ``library_statuses`` and the wanted libraries.

    An installed library of a wanted distribution but another spec (older wheel, other pin) is uninstalled; an
    identical one that is installed (or on its way) is kept; one that FAILED is uninstalled and installed again.
    Libraries of other distributions are left alone.
    """
    wanted = list(dict.fromkeys(wanted))
    wanted_distributions = {library.distribution for library in wanted if library.distribution}
    uninstall: list[Library] = []
    keep: list[Library] = []
    pending_removal: list[Library] = []
    for status in statuses:
        library = Library.from_spec(status.get("library") or {})
        state = status.get("status", "")
        if state == PENDING_REMOVAL:
            if library.distribution in wanted_distributions:
                pending_removal.append(library)
            continue
        if library in wanted and state not in FAILED_STATES:
            keep.append(library)
        elif library in wanted or library.distribution in wanted_distributions:
            uninstall.append(library)
    install = tuple(library for library in wanted if library not in keep)
    return ClusterPlan(cluster_id, tuple(dict.fromkeys(uninstall)), install, tuple(keep), tuple(pending_removal))


def next_action(state: str, plan: ClusterPlan, *, no_restart: bool) -> str:
    """``restart``, ``start`` or ``none`` for a cluster in `state` (RUNNING or TERMINATED) with `plan`."""
    if no_restart:
        return "none"
    if state == "TERMINATED":
        return "start" if plan.changes or plan.needs_restart else "none"
    if state == "RUNNING":
        return "restart" if plan.needs_restart else "none"
    raise ValueError(f"cluster state {state} is not settled")


@dataclasses.dataclass(frozen=True)
class LibraryProgress:
    """Where the wanted libraries are: all INSTALLED (`done`), which FAILED (with messages), which are pending."""

    done: bool
    failed: tuple[tuple[Library, str], ...]
    pending: tuple[tuple[Library, str], ...]

    def describe(self) -> str:
        if not self.pending:
            return "installed"
        return ", ".join(f"{library.location.rsplit('/', 1)[-1]} {state}" for library, state in self.pending)


def library_progress(statuses: Iterable[Mapping[str, Any]], wanted: Iterable[Library]) -> LibraryProgress:
    """Compare the cluster's statuses with the wanted libraries (a wanted library not listed yet is pending)."""
    by_library: dict[Library, Mapping[str, Any]] = {}
    for status in statuses:
        if status.get("status") != PENDING_REMOVAL:
            by_library[Library.from_spec(status.get("library") or {})] = status
    failed, pending = [], []
    for library in dict.fromkeys(wanted):
        status = by_library.get(library)
        state = status.get("status", "PENDING") if status else "not listed"
        if state in INSTALLED_STATES:
            continue
        if state in FAILED_STATES:
            messages = " ".join(" ".join(str(m).split()) for m in (status or {}).get("messages") or []) or state
            failed.append((library, messages))
        else:
            pending.append((library, state))
    return LibraryProgress(not failed and not pending, tuple(failed), tuple(pending))


# --- the rollout (I/O) -------------------------------------------------------------------------------------


def planned_writes(plan: ClusterPlan, action: str) -> list[str]:
    """The write calls a rollout makes, in order: ``uninstall``, ``install``, then ``restart`` or ``start``."""
    return [
        name
        for name, wanted in (("uninstall", plan.uninstall), ("install", plan.install), (action, action != "none"))
        if wanted
    ]


@dataclasses.dataclass
class ClusterResult:
    """What happened on one cluster, for the summary: the writes the workspace confirmed (`landed`, named as in
    `planned_writes`), and the error that ended the rollout early, if any (the writes before it still landed)."""

    cluster_id: str
    name: str
    plan: ClusterPlan
    action: str
    state_before: str
    notices: list[str] = dataclasses.field(default_factory=list)
    landed: list[str] = dataclasses.field(default_factory=list)
    error: CICDError | None = None


def inspect(client: Any, cluster_id: str, wanted: list[Library], *, timeout: float) -> tuple[dict, ClusterPlan]:
    """Read the cluster (waiting for a transitional state to settle) and plan it. No writes."""
    try:
        details = client.clusters.get(cluster_id)
    except ResourceDoesNotExist:
        raise InputError(
            f"cluster {cluster_id} does not exist in {client.host}", hint="check --cluster-id / deploy.clusters"
        ) from None
    if details.get("state") == "ERROR":
        raise OperationFailed(f"cluster {cluster_id} is in ERROR: {details.get('state_message', '')}".rstrip(": "))
    if details.get("state") not in SETTLED_CLUSTER_STATES:
        details = client.clusters.wait_for_state(
            cluster_id, SETTLED_CLUSTER_STATES, timeout=timeout, fail_states=("ERROR", "UNKNOWN")
        )
    statuses = client.libraries.cluster_status(cluster_id)
    return details, plan_cluster(cluster_id, statuses, wanted)


def roll_out(
    client: Any,
    details: dict,
    plan: ClusterPlan,
    wanted: list[Library],
    *,
    no_restart: bool,
    deadline: float,
    on_poll: Callable[[str, str], None] | None = None,
) -> ClusterResult:
    """Uninstall (one call), install (one call), restart or start at most once, then wait until every wanted
    library is INSTALLED on a RUNNING cluster, all before `deadline` (a ``time.monotonic()`` value).

    An expected failure (`errors.CICDError`: an API error, a FAILED library, the deadline) does not raise: it is
    the result's `error`, next to the writes that had landed before it."""
    state = details.get("state", "UNKNOWN")
    action = next_action(state, plan, no_restart=no_restart)
    result = ClusterResult(plan.cluster_id, details.get("cluster_name") or plan.cluster_id, plan, action, state)
    try:
        _roll_out(client, result, wanted, no_restart=no_restart, deadline=deadline, on_poll=on_poll)
    except CICDError as error:
        result.error = error
    return result


def _roll_out(
    client: Any,
    result: ClusterResult,
    wanted: list[Library],
    *,
    no_restart: bool,
    deadline: float,
    on_poll: Callable[[str, str], None] | None,
) -> None:
    cluster_id, plan, action, state = result.cluster_id, result.plan, result.action, result.state_before
    if plan.uninstall:
        client.libraries.uninstall(cluster_id, [library.spec() for library in plan.uninstall])
        result.landed.append("uninstall")
    if plan.install:
        client.libraries.install(cluster_id, [library.spec() for library in plan.install])
        result.landed.append("install")
    if action == "restart":
        client.clusters.restart(cluster_id)
        result.landed.append("restart")
    elif action == "start":
        try:
            client.clusters.start(cluster_id)
            result.landed.append("start")
        except InvalidState:
            pass  # someone else started it meanwhile; the wait below sees it either way
    if no_restart and plan.needs_restart:
        result.notices.append(
            f"cluster {cluster_id}: not restarted (--no-restart); old versions stay loaded until the next restart"
        )
    if no_restart and state == "TERMINATED" and plan.changes:
        result.notices.append(f"cluster {cluster_id}: left TERMINATED (--no-restart); libraries install at next start")
    if no_restart and (plan.needs_restart or state == "TERMINATED"):
        return
    if state == "TERMINATED" and action == "none":
        return

    def remaining() -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise WaitTimedOut(f"cluster {cluster_id}: deadline reached", hint="raise --timeout")
        return left

    def report(what: str) -> Callable[[Any, float], None]:
        return lambda value, elapsed: on_poll(cluster_id, what) if on_poll else None

    if action in ("restart", "start"):
        client.clusters.wait_for_state(cluster_id, ("RUNNING",), timeout=remaining(), on_poll=report("starting"))

    def check(statuses: list) -> bool:
        progress = library_progress(statuses, wanted)
        if progress.failed:
            raise OperationFailed(
                f"cluster {cluster_id}: "
                + "; ".join(f"{library.location} failed to install: {message}" for library, message in progress.failed)
            )
        return progress.done

    client.poll(
        lambda: client.libraries.cluster_status(cluster_id),
        check,
        timeout=remaining(),
        what=f"cluster {cluster_id}: libraries not installed",
        describe=lambda statuses: library_progress(statuses, wanted).describe(),
        on_poll=report("installing libraries"),
    )
