"""The wire of the Databricks REST client: one session per workspace host, one attempt at a time, and deadlines.

Owns `Transport`, the base of `dbclient.Client`: one `requests.Session` with a connection pool sized to the
concurrency, a (connect, read) timeout on every call, `request` (the one place that sends: it paces each attempt
through the adaptive rate controller of `rate.py`, sends it, tells the controller how it ended, maps an error answer to the `errors.ApiError` family, and asks the retry
classifier and policy of `retry.py` whether and when to send again), the step's deadline (`time_left`,
`check_deadline`, `StepTimedOut`), the counters (`Stats`), the deadline-bounded waiter `poll`, and `get`/`post`/`me`.
README "Talking to Databricks" describes the policy. It does not decide what is retried or for how long
(`retry.py`), which credentials or host are used (`auth.py`, `hosts.py`), nor the API families (`api.py`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import IO, Any, NoReturn, TypeVar
from urllib.parse import quote, urlsplit

import requests
from requests.adapters import HTTPAdapter

from .. import azure_auth
from ..errors import ApiError, ConnectionFailed, StepTimedOut, UsageError, WaitTimedOut, api_error
from .auth import Auth
from .hosts import _local_token_hint, _local_workspace_start, _unreachable_hint
from .rate import DEFAULT_RATE_LIMITS, AdaptiveRate, RateLimiter, Ticket
from .retry import (
    DEFAULT_BACKOFF,
    DEFAULT_RETRY_BUDGET_SECONDS,
    STEP,
    TRANSPORT_ERRORS,
    WAIT,
    Decision,
    RetryPolicy,
    RetryWindow,
    Verdict,
    classify,
    is_idempotent,
)

log = logging.getLogger("databricks_client")

DEFAULT_TIMEOUT = (5.0, 60.0)
DEFAULT_POLL_SECONDS = (1.0, 10.0)
# A wait sleeps at most this fraction of the time it has waited so far (within poll_seconds): a state change is seen
# at most ~20% late however long the wait, with few reads for long waits (a 5 s run is seen by 6 s, not 8 s).
POLL_FRACTION = 0.2
# A wait's last status read starts this long (at most a tenth of the wait) before its deadline, so that it is
# answered by the deadline: the wait then ends on time with the state it last saw.
LAST_READ_SECONDS = 1.0
_T = TypeVar("_T")
_Self = TypeVar("_Self", bound="Transport")


@dataclasses.dataclass
class Stats:
    """What a client did, for the scripts' summaries."""

    requests: int = 0
    retries: int = 0
    throttled: int = 0
    most_attempts: int = 0  # the most attempts any one call took


class Transport:
    """A Databricks workspace on the wire: `request` (the one retry loop), `get`/`post`/`me`, `poll`, the deadline."""

    def __init__(
        self,
        host: str,
        auth: Auth,
        *,
        concurrency: int = 8,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        retry_budget_seconds: float = DEFAULT_RETRY_BUDGET_SECONDS,
        backoff: tuple[float, float] = DEFAULT_BACKOFF,
        rate_limits: Mapping[str, float | None] | None = None,
        poll_seconds: tuple[float, float] = DEFAULT_POLL_SECONDS,
        read_only: bool = False,
        step_timeout: float | None = None,
    ) -> None:
        self.host = host
        self.auth = auth
        self.concurrency = max(1, int(concurrency))
        self.timeout = timeout
        self.retry_policy = RetryPolicy(budget_seconds=retry_budget_seconds, backoff=backoff)
        self._clock, self._sleep = self.retry_policy.clock, self.retry_policy.sleep
        # The step's deadline (None: no deadline), counted from now: every call made through this client ends by it.
        self.step_timeout = float(step_timeout) if step_timeout is not None else None
        self.step_deadline = self._clock() + self.step_timeout if self.step_timeout is not None else None
        self.poll_seconds = poll_seconds
        self.read_only = read_only
        self.stats = Stats()
        self._reached = False
        self._unreachable_hint = _unreachable_hint(host)
        self._local = _local_workspace_start(host) is not None
        self._stats_lock = threading.Lock()
        self._waiting = threading.local()  # .deadline: the monotonic deadline of the wait this thread is in
        limits = dict(DEFAULT_RATE_LIMITS)
        limits.update(rate_limits or {})
        self.rate_limiter = RateLimiter(limits, clock=self._clock, sleep=self._sleep)
        self.rate = AdaptiveRate(self.concurrency, caps=self.rate_limiter, clock=self._clock, sleep=self._sleep)
        self._session = requests.Session()
        self._session.trust_env = True
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=self.concurrency, pool_block=True, max_retries=0)
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        self._session.headers["User-Agent"] = f"databricks-ci-cd/1.0 python-requests/{requests.__version__}"

    @property
    def retry_budget_seconds(self) -> float:
        return self.retry_policy.budget_seconds

    @property
    def backoff(self) -> tuple[float, float]:
        return self.retry_policy.backoff

    def __repr__(self) -> str:
        return f"<dbclient.{type(self).__name__} {self.host} auth={self.auth.description!r}>"

    def close(self) -> None:
        self._session.close()

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the step's deadline --

    def time_left(self) -> float | None:
        """Seconds until the step's deadline (negative once passed), or None when the client has no deadline."""
        return None if self.step_deadline is None else self.step_deadline - self._clock()

    def check_deadline(self, what: str) -> None:
        """Raise `StepTimedOut` if the step's deadline has passed (long loops call this between their calls)."""
        left = self.time_left()
        if left is not None and left <= 0:
            raise self._step_timed_out(f"{what} was not done")

    def _step_timed_out(self, what: str, attempts: int = 0) -> StepTimedOut:
        tried = f" after {attempts} attempts" if attempts > 1 else ""
        return StepTimedOut(
            f"step deadline reached (--timeout {round(self.step_timeout or 0, 1):g}s){tried}: {what}",
            hint="raise --timeout (or deploy.timeout_seconds), or run the step again when the workspace answers",
        )

    # -- the one place that sends and retries --

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        data: bytes | IO[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        stream: bool = False,
    ) -> requests.Response:
        """Send one API call, retrying per `retry.classify` and `retry.RetryPolicy`; return the 2xx response or raise
        `ApiError` (or `ConnectionFailed`, or `StepTimedOut` at the step's deadline).

        `body` is sent as JSON, `data` as raw bytes or a file (streamed; rewound before a retry if seekable).
        `idempotent` defaults to True for GET/HEAD/PUT/DELETE and False for POST.
        """
        method = method.upper()
        if self.read_only and method not in ("GET", "HEAD"):
            raise RuntimeError(f"dry run: refusing to send {method} {path}")  # a bug in the caller, not a user error
        idempotent = is_idempotent(method, idempotent)
        rewind_to = None
        if data is not None and hasattr(data, "read"):
            try:
                rewind_to = data.tell() if data.seekable() else None
            except (AttributeError, OSError):
                rewind_to = None
        replayable = data is None or isinstance(data, (bytes, bytearray)) or rewind_to is not None
        url = self.host + quote(path, safe="/:@!$&'()*+,;=-._~")
        clean_params = {key: _param(value) for key, value in (params or {}).items() if value is not None}
        options = {  # the arguments of `requests.Session.request` that are the same for every attempt
            "params": clean_params or None,
            "json": body if data is None and body is not None else None,
            "data": data,
            "headers": dict(headers or {}),
            "stream": stream,
        }
        window = self.retry_policy.window(
            step_deadline=self.step_deadline, wait_deadline=getattr(self._waiting, "deadline", None)
        )
        what = f"{method} {path}"
        attempt = 0
        while True:
            attempt += 1
            ticket = self._pace(path, what, attempt)
            if attempt > 1 and rewind_to is not None:
                data.seek(rewind_to)  # type: ignore[union-attr]
            now = self._clock()
            if self.step_deadline is not None and now >= self.step_deadline:
                self.rate.release(ticket, sent=False)
                raise self._step_timed_out(f"{what} was not sent", attempt - 1)
            timeout = window.socket_timeout(self.timeout, now)
            cut = timeout != self.timeout
            self._count(requests=1, retries=1 if attempt > 1 else 0)
            if attempt > self.stats.most_attempts:
                with self._stats_lock:
                    self.stats.most_attempts = max(self.stats.most_attempts, attempt)
            timed_out = held = False
            try:
                response = self._attempt(method, url, what, timeout=timeout, options=options)
            except TRANSPORT_ERRORS as error:
                self.rate.release(ticket, sent=False)  # no answer: neither a success nor a 429 for the window
                timed_out = isinstance(error, requests.Timeout)
                kind = "timed out" if timed_out else "connection failed"
                failure: Exception = ConnectionFailed(
                    f"{what}: {kind} ({type(error).__name__}) talking to {self.host}", hint=self._unreachable_hint
                )
                verdict = classify(
                    method,
                    idempotent=idempotent,
                    error=error,
                    reached=self._reached,
                    attempt=attempt,
                    replayable=replayable,
                )
            except BaseException:
                self.rate.release(ticket, sent=False)  # not sent (UsageError), or interrupted
                raise
            else:
                self._reached = True
                log.debug("%s %s -> %s (attempt %d)", method, path, response.status_code, attempt)
                if response.status_code < 300:
                    self.rate.release(ticket)
                    return response  # redirects are not followed: a workspace API never redirects, a login page does
                failure = self._error(response, method, path)
                throttled = response.status_code == 429 or failure.error_code == "REQUEST_LIMIT_EXCEEDED"
                if throttled:
                    self._count(throttled=1)
                verdict = classify(
                    method, idempotent=idempotent, response=response, replayable=replayable, throttled=throttled
                )
                self.rate.release(ticket, throttled=throttled, retry_after=verdict.retry_after)
                held = throttled and ticket.family is not None
                response.close()
            decision = window.next(attempt, verdict.retry_after) if verdict.retry else None
            if decision is not None and decision.retry:
                log.info("retrying %s %s in %.1fs after: %s", method, path, decision.delay, failure)
                if not held:
                    self._sleep(decision.delay)
                # else the rate controller holds the call's whole family for the Retry-After (in `_pace`), so
                # this worker queues for the family's reduced window instead of sleeping on its own.
                continue
            self._give_up(failure, attempt, window, verdict, decision, cut_short=timed_out and cut)

    def _give_up(
        self,
        failure: Exception,
        attempt: int,
        window: RetryWindow,
        verdict: Verdict,
        decision: Decision | None,
        *,
        cut_short: bool,
    ) -> NoReturn:
        """End a call that will not be sent again: `failure` is the last attempt's error, `decision` the policy's
        (None when `verdict` said no retry), `cut_short` whether the attempt timed out at a timeout cut to the deadline."""
        if decision is not None and decision.bound_by == WAIT:
            # The wait ends at its deadline, not earlier: use the time left, then let `poll` report it.
            self._sleep(decision.delay)
            raise _WaitDeadlinePassed(failure, attempt)
        if decision is not None and decision.bound_by == STEP:
            # No retry fits before the step's deadline: end now, saying so, instead of waiting for it.
            raise self._step_timed_out(getattr(failure, "message", str(failure)), attempt) from None
        if window.bound_by == STEP and cut_short:
            # A call that may not be repeated (a POST) got no answer because its timeout was cut to the deadline.
            raise self._step_timed_out(getattr(failure, "message", str(failure)), attempt) from None
        if attempt > 1 and isinstance(failure, (ApiError, ConnectionFailed)):
            note = window.give_up_note(attempt, verdict.retry)
            failure.hint = f"{note}; {failure.hint}" if failure.hint else note
        raise failure

    def _attempt(
        self, method: str, url: str, what: str, *, timeout: tuple[float, float], options: Mapping[str, Any]
    ) -> requests.Response:
        """Send the call once. `TRANSPORT_ERRORS` when no answer came; `UsageError` when it cannot be sent."""
        try:
            return self._session.request(method, url, timeout=timeout, auth=self.auth, allow_redirects=False, **options)
        except TRANSPORT_ERRORS:
            raise
        except (ValueError, UnicodeError) as error:
            # The request could not even be built or sent (a header value HTTP cannot carry, a bad URL). The
            # library's message may quote the header, i.e. the token: say what kind of problem it is instead.
            raise UsageError(
                f"{what}: the request cannot be sent: {self._unsendable(error)}",
                hint="check DATABRICKS_TOKEN, DATABRICKS_AZURE_RESOURCE_ID and the host for stray characters",
            ) from None

    def _pace(self, path: str, what: str, attempt: int) -> Ticket:
        """Wait for the rate controller's go (its window, a hold after a 429, a configured cap), unless that lies
        past the step's deadline; the ticket goes back to `rate.release` once the attempt has ended."""
        granted = self.rate.acquire(path, deadline=self.step_deadline)
        if isinstance(granted, Ticket):
            return granted
        raise self._step_timed_out(
            f"{what} was not sent (the client-side rate limit holds it past the deadline)", attempt - 1
        )

    def _unsendable(self, error: Exception) -> str:
        text = str(error)
        if isinstance(error, (UnicodeError, requests.exceptions.InvalidHeader)) or "header" in text.lower():
            return f"a header value has a character HTTP does not allow ({type(error).__name__})"
        lines = azure_auth.scrub(text, self.auth.secrets()).strip().splitlines()
        return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__

    def _count(self, **increments: int) -> None:
        with self._stats_lock:
            for name, value in increments.items():
                setattr(self.stats, name, getattr(self.stats, name) + value)

    def _error(self, response: requests.Response, method: str, path: str) -> ApiError:
        error_code, message = None, ""
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if isinstance(payload, dict):
            error_code = payload.get("error_code")
            message = str(payload.get("message") or payload.get("error") or "")
        if not message:
            text = response.text or ""
            found = re.search(r"<pre>(.*?)</pre>", text, re.S) or re.search(r"<title>(.*?)</title>", text, re.S)
            message = (found.group(1) if found else text).strip() or response.reason or f"HTTP {response.status_code}"
        message = " ".join(message.split())
        if len(message) > 500:
            message = message[:500] + "..."
        message = azure_auth.scrub(message, self.auth.secrets())
        error = api_error(response.status_code, error_code, message, method=method, path=path)
        if self._local and response.status_code in (401, 403):
            error.hint = _local_token_hint()
        return error

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """GET a JSON API; `{}` for an empty body."""
        return _json(self.request("GET", path, params=params))

    def post(self, path: str, body: Mapping[str, Any] | None = None, *, idempotent: bool = False) -> dict[str, Any]:
        """POST JSON; say `idempotent=True` when repeating the call has the same effect (then it is retried)."""
        return _json(self.request("POST", path, body=dict(body or {}), idempotent=idempotent))

    def me(self) -> dict[str, Any]:
        """The calling identity (SCIM Me): ``userName``, ``id``, ``displayName``..."""
        return self.get("/api/2.0/preview/scim/v2/Me")

    # -- waiting --

    @contextlib.contextmanager
    def _within(self, deadline: float) -> Iterator[None]:
        """Calls made by this thread inside the block retry no later than `deadline` (nested waits: the earlier)."""
        outer = getattr(self._waiting, "deadline", None)
        self._waiting.deadline = deadline if outer is None else min(outer, deadline)
        try:
            yield
        finally:
            self._waiting.deadline = outer

    def poll(
        self,
        fetch: Callable[[], _T],
        done: Callable[[_T], bool],
        *,
        timeout: float,
        what: str,
        describe: Callable[[_T], str] = str,
        on_poll: Callable[[_T, float], None] | None = None,
    ) -> _T:
        """Call `fetch` until `done(value)` is true (it may raise to fail early), or raise `WaitTimedOut`.

        The wait's deadline is `timeout` from now, or the step's deadline when that comes first (then it raises
        `StepTimedOut`, a `WaitTimedOut`). Sleeps grow from `poll_seconds[0]` to `poll_seconds[1]` with the time waited
        (`POLL_FRACTION` of it), so a change is seen at most about a fifth of the wait late; the last status
        read starts `LAST_READ_SECONDS` (at most a tenth of the wait) before the deadline, so the wait ends at its
        deadline with the state that read saw. Each `fetch` retries only until the deadline: a status call still
        refused (503/429/timeouts) when it comes ends the wait then, not after the call's own retry budget.
        `on_poll(value, elapsed_seconds)` is called after every fetch (progress reporting).
        """
        started = self._clock()
        deadline = started + timeout
        step_bound = self.step_deadline is not None and self.step_deadline <= deadline
        if step_bound:
            deadline = self.step_deadline
        last_read = deadline - min(LAST_READ_SECONDS, max(0.0, deadline - started) / 10)
        limit = (
            f"{round(self.step_timeout or 0, 1):g}s, the step's --timeout" if step_bound else f"{round(timeout, 1):g}s"
        )
        timed_out = StepTimedOut if step_bound else WaitTimedOut
        interval, maximum = self.poll_seconds
        while True:
            try:
                with self._within(deadline):
                    value = fetch()
            except _WaitDeadlinePassed as passed:
                raise timed_out(
                    f"{what}: the workspace was still refusing at the deadline ({limit}; the last call "
                    f"tried {passed.attempts} times): {passed.failure.message}",
                    hint="raise --timeout, or run the step again when the workspace answers",
                ) from None
            if done(value):
                return value
            now = self._clock()
            if on_poll is not None:
                on_poll(value, now - started)
            if now >= last_read:
                raise timed_out(
                    f"{what}: still {describe(value)} after {now - started:.0f}s (deadline {limit})",
                    hint="raise --timeout, or look at it in the workspace",
                )
            self._sleep(min(interval, last_read - now))
            interval = min(maximum, max(self.poll_seconds[0], POLL_FRACTION * (self._clock() - started)))


class _WaitDeadlinePassed(Exception):
    """Internal: a call inside `Transport.poll` was still failing (retryably) when the wait's deadline came."""

    def __init__(self, failure: Exception, attempts: int) -> None:
        super().__init__(str(failure))
        self.failure = failure
        self.attempts = attempts


def _param(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _json(response: requests.Response) -> dict[str, Any]:
    if not response.content:
        return {}
    try:
        payload = response.json()
    except ValueError:
        raise ApiError(
            "the answer is not JSON (is --host a Databricks workspace?)",
            status=response.status_code,
            method=response.request.method or "",
            path=urlsplit(response.request.url or "").path,
        ) from None
    return payload if isinstance(payload, dict) else {"value": payload}
