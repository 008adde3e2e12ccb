"""The exception family every script turns into a one-line ``error: ...`` message and an exit code.

Raise one of these for any failure a user can act on; `cli.entry` prints ``error: <message>`` on stderr
(with the hint, if any) and returns the class's exit code. Anything else is a bug and keeps its traceback.

Exit codes: 2 for bad input (usage, config, local files), 1 when the operation itself failed
(a remote call, a build, a test run).
"""

from __future__ import annotations


class CICDError(Exception):
    """Base class: an expected failure with a message written for the person running the step."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        """The message (and hint) on a single line, whatever the message contains."""
        text = self.message if not self.hint else f"{self.message} ({self.hint})"
        return " ".join(part.strip() for part in text.splitlines() if part.strip())


class UsageError(CICDError):
    """The command line is wrong (unknown flag, missing argument, bad value). Fix the arguments; see --help."""


class ConfigError(CICDError):
    """The configuration cannot be loaded or resolved. The message names the file, field or variable."""


class InputError(CICDError):
    """A local input (file, folder, path) is missing, unreadable or not what the step expects."""


class OperationFailed(CICDError):
    """The step's work itself failed (a remote call, a build, a test run). Exit code 1."""

    exit_code = 1


# --- Databricks API errors ---------------------------------------------------------------------------------
# `cicdkit.dbclient` turns every non-2xx answer into one of these with `api_error(...)`, chosen like databricks-sdk:
# path-specific legacy overrides first, then the body's ``error_code``, then the HTTP status. They carry the
# status, error_code, message and the request's method and path: never headers or bodies (they may hold secrets).


class ApiError(OperationFailed):
    """The Databricks REST API refused a call. The message is the service's own; the class says what kind."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_code: str | None = None,
        method: str = "",
        path: str = "",
        hint: str | None = None,
    ) -> None:
        self.service_message = message
        self.status = status
        self.error_code = error_code
        self.method = method
        self.path = path
        where = f"{method} {path}".strip()
        parts = [str(status)] if status is not None else []
        if error_code not in (None, "") and str(error_code) not in parts:
            parts.append(str(error_code))
        code = " ".join(parts)
        text = f"{where}: {message}" if where else message
        super().__init__(f"{text} [{code}]" if code else text, hint=hint if hint is not None else self.default_hint)

    default_hint: str | None = None

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status!r}, error_code={self.error_code!r}, "
            f"method={self.method!r}, path={self.path!r}, message={self.service_message!r})"
        )


class BadRequest(ApiError):
    """400: the service rejected the request as malformed. Usually a wrong argument; the message says which."""


class InvalidParameterValue(BadRequest):
    """A parameter has a value the service does not accept (bad path, unknown language, malformed spec).
    Fix the argument named in the message."""


class InvalidState(BadRequest):
    """The resource is in a state that does not allow the call (e.g. starting a cluster that is RUNNING).
    Wait for the resource to settle, or check who else is changing it."""


class Unauthenticated(ApiError):
    """401: no usable credential reached the workspace."""

    default_hint = "set DATABRICKS_TOKEN, or choose Entra ID login with --auth / DATABRICKS_AUTH_TYPE"


class PermissionDenied(ApiError):
    """403: the credential was rejected (invalid, expired, other workspace) or lacks a permission."""

    default_hint = (
        "check that DATABRICKS_TOKEN (or the --auth identity) is valid for this workspace and allowed to do this; "
        "a service principal that is not yet a workspace member needs DATABRICKS_AZURE_RESOURCE_ID"
    )


class NotFound(ApiError):
    """404: the path or resource does not exist (or the host is not a Databricks workspace). Check the path and --host."""


class ResourceDoesNotExist(NotFound):
    """The named resource (path, cluster, run, job) does not exist. Legacy endpoints answer 400 for this
    (clusters/get, jobs/get, runs/get); it is mapped here all the same. Check the id or path."""


class ResourceConflict(ApiError):
    """409: the call conflicts with the current state of the resource."""


class ResourceAlreadyExists(ResourceConflict):
    """The target already exists (import without overwrite, or an object of another type is in the way).
    Delete it or choose another path."""


class Aborted(ResourceConflict):
    """A concurrent change aborted the call. Run the step again."""


class TooManyRequests(ApiError):
    """429: the workspace throttled the client. It is retried automatically within the retry budget; seeing it
    means the budget ran out. Lower --concurrency or the rate limits, or run the step again later."""


class InternalError(ApiError):
    """500: the service failed. Idempotent calls are retried; seeing it means the retries ran out. Run again later."""


class Unimplemented(ApiError):
    """501: the workspace does not support this API (an older or restricted deployment)."""


class TemporarilyUnavailable(ApiError):
    """503: the service is temporarily unavailable. It is retried automatically; seeing it means the retry
    budget ran out. Run the step again later."""


class DeadlineExceeded(ApiError):
    """504: the service timed out. Idempotent calls are retried; seeing it means the retries ran out."""


class ConnectionFailed(OperationFailed):
    """The workspace could not be reached (DNS, refused or reset connection, TLS, timeout), also after retries.
    Check --host / DATABRICKS_HOST and the network."""


class WaitTimedOut(OperationFailed):
    """A wait (cluster start, library install, job run) did not finish before its deadline. The message says
    what state it was left in; raise --timeout or look at the resource in the workspace."""


class StepTimedOut(WaitTimedOut):
    """The step's own deadline (``--timeout``, else ``deploy.timeout_seconds``) came while a call to the workspace
    was unanswered, still being retried, or not yet sent. The message names the call and its last error; what the
    step had written by then is in its summary. Raise --timeout, or run the step again when the workspace answers."""


_BY_ERROR_CODE: dict[str, type[ApiError]] = {
    "INVALID_PARAMETER_VALUE": InvalidParameterValue,
    "INVALID_STATE": InvalidState,
    "RESOURCE_DOES_NOT_EXIST": ResourceDoesNotExist,
    "NOT_FOUND": NotFound,
    "RESOURCE_ALREADY_EXISTS": ResourceAlreadyExists,
    "ALREADY_EXISTS": ResourceAlreadyExists,
    "ABORTED": Aborted,
    "RESOURCE_CONFLICT": ResourceConflict,
    "RESOURCE_EXHAUSTED": TooManyRequests,
    "REQUEST_LIMIT_EXCEEDED": TooManyRequests,
    "TOO_MANY_REQUESTS": TooManyRequests,
    "UNAUTHENTICATED": Unauthenticated,
    "PERMISSION_DENIED": PermissionDenied,
    "UNKNOWN": InternalError,
    "DATA_LOSS": InternalError,
    "INTERNAL_ERROR": InternalError,
    "NOT_IMPLEMENTED": Unimplemented,
    "TEMPORARILY_UNAVAILABLE": TemporarilyUnavailable,
    "DEADLINE_EXCEEDED": DeadlineExceeded,
}

_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthenticated,
    403: PermissionDenied,
    404: NotFound,
    409: ResourceConflict,
    429: TooManyRequests,
    500: InternalError,
    501: Unimplemented,
    503: TemporarilyUnavailable,
    504: DeadlineExceeded,
}

# Legacy endpoints answer 400 INVALID_PARAMETER_VALUE for a missing resource (databricks-sdk errors/overrides.py).
_MISSING_RESOURCE_OVERRIDES: tuple[tuple[str, str], ...] = (
    (r"^/api/2\.\d/clusters/get", r"^Cluster .+ does not exist"),
    (r"^/api/2\.\d/jobs/get", r"^Job .+ does not exist"),
    (r"^/api/2\.\d/jobs/runs/get", r"^(Run .+ does not exist|Run: .+ in job: .+ doesn't exist)"),
)


def api_error(status: int, error_code: object, message: str, *, method: str, path: str) -> ApiError:
    """The exception for an error answer: legacy path overrides, then ``error_code``, then status."""
    import re

    code = "" if error_code is None else str(error_code)
    cls: type[ApiError] | None = None
    if status == 400 and code == "INVALID_PARAMETER_VALUE":
        for path_pattern, message_pattern in _MISSING_RESOURCE_OVERRIDES:
            if re.match(path_pattern, path) and re.match(message_pattern, message or ""):
                cls = ResourceDoesNotExist
                break
    if cls is None:
        cls = _BY_ERROR_CODE.get(code.upper()) if code and not code.isdigit() else None
    if cls is None:
        cls = _BY_STATUS.get(status)
    if cls is None:
        cls = BadRequest if 400 <= status < 500 else InternalError if status >= 500 else ApiError
    return cls(message or f"HTTP {status}", status=status, error_code=code or None, method=method, path=path)
