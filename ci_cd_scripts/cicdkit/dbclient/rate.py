"""How fast the Databricks REST client sends: one adaptive controller per endpoint family, and optional caps.

Owns two pieces (README "Retries, budgets and rate limits"):

* `AdaptiveRate` — the request window of each endpoint family (`FAMILIES`: notebook import, the rest of the
  workspace API, Files, DBFS, jobs runs, the rest of jobs, clusters, libraries). A family starts at the
  concurrency the step asks for (no throttling at all while the workspace keeps up); on a 429 or
  ``REQUEST_LIMIT_EXCEEDED`` its window is cut multiplicatively (`DEFAULT_DECREASE`) and the whole family holds
  until the answer's ``Retry-After`` (the workspace's token bucket refills meanwhile); after a run of successes
  (`DEFAULT_CLIMB_AFTER` times the window) it climbs back by one, never above the step's concurrency. Only a 429
  for a call sent under the current window cuts it again, so one burst of 429s (all the calls that were in
  flight) counts once — the rule TCP's congestion control uses per round trip.
* `RateLimiter` — fixed caps in requests per second per family (token buckets, burst of one second's worth), from
  ``deploy.rate_limits`` or ``connect(rate_limits=...)``; none by default. A cap applies on top of the window.

Families are path prefixes after ``/api/<version>/``; the most specific one applies, and a path of no family is
neither windowed nor capped. Time comes from an injectable ``clock``/``sleep`` pair (`time.monotonic`/`time.sleep`
by default), so the decisions are tested without sleeping. It does not send nor retry anything: the transport
asks `AdaptiveRate.acquire` before each attempt and tells `AdaptiveRate.release` how it ended.
"""

from __future__ import annotations

import dataclasses
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping

# The endpoint families whose window adapts on its own (most specific prefix wins). Databricks limits requests
# per workspace and endpoint (https://learn.microsoft.com/azure/databricks/resources/limits): imports, Files,
# DBFS and jobs runs are the ones a CI/CD step drives hard.
FAMILIES: tuple[str, ...] = (
    "workspace/import",
    "workspace",
    "fs",
    "dbfs",
    "jobs/runs",
    "jobs",
    "clusters",
    "libraries",
)
# A 429 cuts the family's window to this fraction (at least one call in flight).
DEFAULT_DECREASE = 0.75
# After this many successes per call of window, the window grows by one (towards the step's concurrency).
DEFAULT_CLIMB_AFTER = 8
# How long a family holds after a 429 without ``Retry-After``.
DEFAULT_HOLD_SECONDS = 1.0
# Fixed caps (requests per second per family) in force when neither config nor caller sets any: none, the
# adaptive window finds the workspace's rate. ``deploy.rate_limits`` adds caps (README, "Retries, budgets and
# rate limits").
DEFAULT_RATE_LIMITS: dict[str, float] = {}


def _rest(path: str) -> str:
    match = re.match(r"^/api/[^/]+/(.*)$", path)
    return match.group(1) if match else path.lstrip("/")


def _family_of(path: str, families: Iterable[str]) -> str | None:
    rest = _rest(path)
    for family in families:
        if rest == family or rest.startswith(family + "/"):
            return family
    return None


class RateLimiter:
    """Token buckets per endpoint family (requests per second, burst of one second's worth): fixed caps.

    A caller reserves a token and sleeps until its slot, so concurrent threads are spaced out evenly. Families are
    path prefixes after ``/api/<version>/``; the most specific one applies.
    """

    def __init__(
        self,
        limits: Mapping[str, float | None],
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._rates = {family.strip("/"): float(rate) for family, rate in limits.items() if rate}
        self._tokens = {family: max(1.0, rate) for family, rate in self._rates.items()}
        self._stamp = {family: clock() for family in self._rates}
        self._families = sorted(self._rates, key=len, reverse=True)

    def family(self, path: str) -> str | None:
        return _family_of(path, self._families)

    def reserve(self, path: str) -> float:
        """Take a token for `path`; return how many seconds to wait before sending."""
        family = self.family(path)
        if family is None:
            return 0.0
        rate = self._rates[family]
        with self._lock:
            now = self._clock()
            self._tokens[family] = min(max(1.0, rate), self._tokens[family] + (now - self._stamp[family]) * rate)
            self._stamp[family] = now
            self._tokens[family] -= 1.0
            return 0.0 if self._tokens[family] >= 0 else -self._tokens[family] / rate

    def wait(self, path: str) -> None:
        delay = self.reserve(path)
        if delay > 0:
            self._sleep(delay)


@dataclasses.dataclass
class FamilyState:
    """One family's window: `window` calls may be in flight (`in_flight`), none sent before `hold_until`."""

    window: float
    in_flight: int = 0
    hold_until: float = 0.0
    successes: int = 0
    epoch: int = 0  # bumped at every cut: a 429 for a call sent under an older window does not cut again
    throttled: int = 0
    cuts: int = 0


@dataclasses.dataclass(frozen=True)
class Ticket:
    """A granted send: its `family` (None: not controlled) and the window `epoch` it was sent under."""

    family: str | None
    epoch: int = 0


class AdaptiveRate:
    """The adaptive windows of a client's endpoint families (see the module docstring).

    `concurrency` is where every window starts and the most it climbs to; `decrease` the multiplicative cut on a
    429, `climb_after` the successes per unit of window before it grows by one, `caps` a `RateLimiter` applied on
    top. `try_acquire` is the decision (no waiting), `acquire` waits for it, `release` reports the outcome.
    """

    def __init__(
        self,
        concurrency: int,
        *,
        families: Iterable[str] = FAMILIES,
        decrease: float = DEFAULT_DECREASE,
        climb_after: float = DEFAULT_CLIMB_AFTER,
        hold_seconds: float = DEFAULT_HOLD_SECONDS,
        caps: RateLimiter | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.concurrency = max(1, int(concurrency))
        self.decrease = decrease
        self.climb_after = climb_after
        self.hold_seconds = hold_seconds
        self.caps = caps
        self._clock = clock
        self._sleep = sleep
        self._families = sorted({f.strip("/") for f in families}, key=len, reverse=True)
        self._states = {family: FamilyState(float(self.concurrency)) for family in self._families}
        self._changed = threading.Condition()

    def family(self, path: str) -> str | None:
        return _family_of(path, self._families)

    def state(self, family: str) -> FamilyState:
        """A copy of `family`'s state (tests, summaries)."""
        with self._changed:
            return dataclasses.replace(self._states[family])

    def try_acquire(self, path: str) -> tuple[Ticket | None, float | None]:
        """A `Ticket` to send `path` now, or (None, seconds to wait) while the family holds after a 429, or
        (None, None) while its window is full (wait for a `release`)."""
        family = self.family(path)
        if family is None:
            return Ticket(None), 0.0
        with self._changed:
            state = self._states[family]
            now = self._clock()
            if now < state.hold_until:
                return None, state.hold_until - now
            if state.in_flight + 1 > max(1, math.floor(state.window)):
                return None, None
            state.in_flight += 1
            return Ticket(family, state.epoch), 0.0

    def acquire(self, path: str, *, deadline: float | None = None) -> Ticket | float:
        """Wait for a `Ticket` for `path`, then for the cap's slot. Returns the ticket, or — when the wait would pass
        `deadline` (a `clock` reading) — the seconds it would still have taken, having acquired nothing."""
        while True:
            ticket, wait = self.try_acquire(path)
            if ticket is not None:
                break
            now = self._clock()
            left = None if deadline is None else deadline - now
            if wait is not None:
                if left is not None and wait >= left:
                    return wait
                self._sleep(wait)
                continue
            if left is not None and left <= 0:
                return float("inf")
            with self._changed:
                self._changed.wait(timeout=min(1.0, left) if left is not None else 1.0)
        if self.caps is not None:
            delay = self.caps.reserve(path)
            if delay > 0:
                left = None if deadline is None else deadline - self._clock()
                if left is not None and delay >= left:
                    self.release(ticket, sent=False)
                    return delay
                self._sleep(delay)
        return ticket

    def release(
        self, ticket: Ticket, *, throttled: bool = False, retry_after: float | None = None, sent: bool = True
    ) -> None:
        """Report how the call of `ticket` ended: `throttled` (429 / REQUEST_LIMIT_EXCEEDED, with its
        `retry_after` seconds), else answered; `sent=False` when no answer came (never sent, or the connection
        failed): the slot is freed and the window left as it is."""
        if ticket.family is None:
            return
        with self._changed:
            state = self._states[ticket.family]
            state.in_flight = max(0, state.in_flight - 1)
            if not sent:
                pass
            elif throttled:
                state.throttled += 1
                hold = self.hold_seconds if retry_after is None else retry_after
                state.hold_until = max(state.hold_until, self._clock() + hold)
                if ticket.epoch == state.epoch:
                    state.window = max(1.0, state.window * self.decrease)
                    state.epoch += 1
                    state.cuts += 1
                    state.successes = 0
            elif ticket.epoch == state.epoch and state.window < self.concurrency:
                state.successes += 1
                if state.successes >= self.climb_after * max(1.0, math.floor(state.window)):
                    state.window = min(float(self.concurrency), math.floor(state.window) + 1.0)
                    state.successes = 0
            self._changed.notify_all()
