"""The one rate and retry policy of the Databricks REST client: what is retried, how long to wait, and until when.

Owns two pieces (README "Talking to Databricks", "Retries, budgets and rate limits"; how fast calls are sent is
`rate.py`):

* `classify` — the retry classifier: given an error answer or a transport exception, the method and whether the
  call is idempotent, says whether the call may be sent again, and why. 429 and 503 are retried for every call
  (the request was not processed), and so is any answer whose ``error_code`` is ``REQUEST_LIMIT_EXCEEDED``;
  500/502/504, connection errors and timeouts only for idempotent calls (GET, HEAD, PUT, DELETE, OPTIONS and POSTs declared idempotent); until the host has answered once, a failed connection
  only `FIRST_CONTACT_RETRIES` times (a wrong ``--host`` fails in seconds); a body that cannot be rewound never.
* `RetryPolicy` — when to send again: ``Retry-After`` when the answer has one, else exponential backoff with
  jitter (`DEFAULT_BACKOFF`), all within the call's `RetryWindow`: its retry budget (`DEFAULT_RETRY_BUDGET_SECONDS`)
  or the step's deadline when that comes first, or inside a wait the wait's deadline. Time comes from an injectable
  ``clock``/``sleep`` pair (`time.monotonic`/`time.sleep` by default, the shape of databricks-sdk-py's
  ``retries.py``), so the policy can be tested without sleeping.

It does not send anything, nor raise the step's errors: the loop that sends one attempt after another, and turns a
decision into `StepTimedOut` or the last error, is `transport.Transport.request`.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import Any

import requests

# Per call, never more than the step has left. Two minutes of a call being refused means the workspace is down or
# throttling hard; failing then with the last error beats waiting out the step's whole deadline on one call.
DEFAULT_RETRY_BUDGET_SECONDS = 120.0
DEFAULT_BACKOFF = (1.0, 10.0)
# Shortest socket timeout a call inside a wait is given, even when the wait's deadline is (almost) there.
MIN_CALL_SECONDS = 0.1

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
RETRY_ALWAYS = frozenset({429, 503})
RETRY_IF_IDEMPOTENT = frozenset({500, 502, 504})
# The exceptions of one attempt that mean "no answer" (rather than "the request cannot be built").
TRANSPORT_ERRORS = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)
# Until the host has answered once, a failed connection is retried this many times (then it is most likely a
# wrong host, and the step fails fast).
FIRST_CONTACT_RETRIES = 2


# --- the classifier: may this call be sent again? ------------------------------------------------------------


def is_idempotent(method: str, idempotent: bool | None = None) -> bool:
    """`idempotent` when given, else True for GET/HEAD/PUT/DELETE/OPTIONS and False for POST (and the rest)."""
    return method.upper() in IDEMPOTENT_METHODS if idempotent is None else idempotent


@dataclasses.dataclass(frozen=True)
class Verdict:
    """What `classify` says about a failed attempt: `retry` or not, `why`, and the answer's ``Retry-After``."""

    retry: bool
    why: str
    retry_after: float | None = None


def classify(
    method: str,
    *,
    idempotent: bool | None = None,
    response: Any = None,
    error: BaseException | None = None,
    reached: bool = True,
    attempt: int = 1,
    replayable: bool = True,
    throttled: bool = False,
) -> Verdict:
    """May a call that failed be sent again? Give the error `response` (anything with ``status_code`` and
    ``headers``) or the attempt's `error`; `reached` says whether the host has answered this client before,
    `attempt` which attempt failed, `replayable` whether the body can be sent again (bytes, or a seekable file),
    `throttled` whether the answer's ``error_code`` is ``REQUEST_LIMIT_EXCEEDED`` (retried whatever its status)."""
    idempotent = is_idempotent(method, idempotent)
    retry_after = None
    if response is not None:
        status = response.status_code
        retry_after = _retry_after(response.headers.get("Retry-After"))
        if status in RETRY_ALWAYS:
            retry, why = True, f"HTTP {status}: the request was not processed"
        elif throttled:
            retry, why = True, f"HTTP {status} REQUEST_LIMIT_EXCEEDED: the request was not processed"
        elif status in RETRY_IF_IDEMPOTENT:
            retry = idempotent
            why = (
                f"HTTP {status} on an idempotent call"
                if idempotent
                else f"HTTP {status} on a call that may not be repeated"
            )
        else:
            retry, why = False, f"HTTP {status} is not retried"
    elif isinstance(error, TRANSPORT_ERRORS):
        kind = "timed out" if isinstance(error, requests.Timeout) else "connection failed"
        if not idempotent:
            retry, why = False, f"{kind} on a call that may not be repeated"
        elif not reached and attempt > FIRST_CONTACT_RETRIES:
            retry, why = False, f"{kind} {attempt} times and the host never answered (a wrong host?)"
        else:
            retry, why = True, f"{kind} on an idempotent call"
    else:
        retry, why = False, f"{type(error).__name__} is not a transport failure"
    if retry and not replayable:
        retry, why = False, f"{why}, but the body cannot be sent again (a file that cannot be rewound)"
    return Verdict(retry, why, retry_after)


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delay-seconds or an HTTP date), or None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


# --- the policy: when, and until when ------------------------------------------------------------------------


BUDGET, STEP, WAIT = "budget", "step", "wait"


@dataclasses.dataclass(frozen=True)
class Decision:
    """`retry` after `delay` seconds, or not; when not, `bound_by` says which deadline ended the retries and
    `delay` is how long to wait before giving up (a wait's deadline is used to the end, the others are not)."""

    retry: bool
    delay: float
    bound_by: str


class RetryPolicy:
    """Backoff (``Retry-After``, else exponential with jitter) and deadlines for the calls of one client.

    `backoff` is (initial, maximum) seconds; `budget_seconds` bounds the retries of one call. `clock` and `sleep`
    are the time source (monotonic seconds) and the way to wait; inject both to test without sleeping.
    """

    def __init__(
        self,
        *,
        budget_seconds: float = DEFAULT_RETRY_BUDGET_SECONDS,
        backoff: tuple[float, float] = DEFAULT_BACKOFF,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.budget_seconds = float(budget_seconds)
        self.backoff = backoff
        self.clock = clock
        self.sleep = sleep

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt`: ``Retry-After`` plus up to a second of jitter,
        else a random time in the upper half of initial × 2^(attempt-1), capped at the maximum."""
        initial, maximum = self.backoff
        if retry_after is not None:
            return retry_after + random.uniform(0, min(1.0, initial))
        ceiling = min(maximum, initial * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)

    def window(self, *, step_deadline: float | None = None, wait_deadline: float | None = None) -> RetryWindow:
        """The retry window of a call starting now: until its budget runs out, or the step's deadline when that
        comes first (a budget never outlasts the step), or inside a wait the wait's deadline (never past the
        step's). Deadlines are `clock` readings."""
        started = self.clock()
        deadline, bound_by = started + self.budget_seconds, BUDGET
        if step_deadline is not None and step_deadline < deadline:
            deadline, bound_by = step_deadline, STEP
        if wait_deadline is not None and wait_deadline <= deadline:
            deadline, bound_by = wait_deadline, WAIT
        return RetryWindow(self, started, deadline, bound_by)


@dataclasses.dataclass(frozen=True)
class RetryWindow:
    """The time one call may spend on retries: from `started` to `deadline`, which `bound_by` (budget, step or wait)."""

    policy: RetryPolicy
    started: float
    deadline: float
    bound_by: str

    def socket_timeout(self, timeout: tuple[float, float], now: float) -> tuple[float, float]:
        """The (connect, read) timeout of an attempt sent at `now`: as given when the budget bounds the call, else
        cut to the time left (at least `MIN_CALL_SECONDS`), so no answer is awaited past the step's or wait's deadline."""
        if self.bound_by == BUDGET:
            return timeout
        left = max(MIN_CALL_SECONDS, self.deadline - now)
        return (min(timeout[0], left), min(timeout[1], left))

    def next(self, attempt: int, retry_after: float | None = None) -> Decision:
        """After failed attempt `attempt` (which `classify` said may be retried): retry when the delay ends inside
        the window; else give up, at once or (inside a wait) once the wait's deadline has come."""
        delay = self.policy.delay(attempt, retry_after)
        now = self.policy.clock()
        if now + delay <= self.deadline:
            return Decision(True, delay, self.bound_by)
        return Decision(False, max(0.0, self.deadline - now) if self.bound_by == WAIT else 0.0, self.bound_by)

    def give_up_note(self, attempts: int, retried: bool) -> str:
        """The hint's preface when a call fails after several attempts: how many, in how long, within which budget."""
        note = f"gave up after {attempts} attempts in {self.policy.clock() - self.started:.0f}s"
        if retried:
            note += f", retry budget {self.policy.budget_seconds:g}s"
        return note
