"""Local workspace fault injection, rate limits and latency: the rules, their syntax, and the per-request decision.

--faults SPEC: rules separated by ';', each a ','-separated list of key=value: path=GLOB (fnmatch on the URL
path, default *), method=VERB (default any), fault=KIND (429, 500, 502, 503, 504 or reset), rate=P (0..1, drawn
from --seed), skip=N, times=N, retry_after=S (default 1 for 429, 'none' omits it). --rate-limit GLOB=N/s or
N/min: one token bucket per rule (burst N). --latency-ms MS or GLOB=MS. The full table is README, "Local
workspace" → Fault spec syntax; the entry script's --help repeats it. `Impairments` holds the rules in force;
the server (server.py) asks it before serving each /api/ request and answers what it decides.
"""

from __future__ import annotations

import fnmatch
import math
import random
import threading
import time
from dataclasses import dataclass
from typing import Any

FAULT_KINDS = ("429", "500", "502", "503", "504", "reset", "reset-after")
FAULT_BODIES = {
    429: ("REQUEST_LIMIT_EXCEEDED", "Workspace request rate exceeded: RPC token bucket limit has been exceeded."),
    500: ("INTERNAL_ERROR", "Internal error (injected by the local workspace)."),
    502: ("BAD_GATEWAY", "Bad gateway (injected by the local workspace)."),
    503: ("TEMPORARILY_UNAVAILABLE", "The service is temporarily unavailable (injected by the local workspace)."),
    504: ("DEADLINE_EXCEEDED", "Gateway timeout (injected by the local workspace)."),
}


@dataclass
class FaultRule:
    path: str = "*"
    method: str | None = None
    fault: str = "503"
    rate: float = 1.0
    skip: int = 0
    times: int | None = None
    retry_after: int | None = None
    seen: int = 0
    fired: int = 0

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and fnmatch.fnmatchcase(path, self.path)


def parse_faults(spec: str | None) -> list[FaultRule]:
    """Parse a --faults SPEC (syntax in the module docstring); raise ValueError with the offending part."""
    rules: list[FaultRule] = []
    for text in (spec or "").split(";"):
        if not text.strip():
            continue
        rule = FaultRule()
        retry_after_set = False
        for item in text.split(","):
            key, sep, value = item.strip().partition("=")
            key, value = key.strip(), value.strip()
            if not sep or not value:
                raise ValueError(f"fault rule field {item.strip()!r} is not key=value")
            if key == "path":
                rule.path = value
            elif key == "method":
                rule.method = value.upper()
            elif key == "fault":
                if value.lower() not in FAULT_KINDS:
                    raise ValueError(f"fault={value} is not one of {', '.join(FAULT_KINDS)}")
                rule.fault = value.lower()
            elif key == "rate":
                rule.rate = _number(value, f"rate={value}", float)
                if not 0 <= rule.rate <= 1:
                    raise ValueError(f"rate={value} must be between 0 and 1")
            elif key in ("skip", "times"):
                number = _number(value, f"{key}={value}", int)
                if number < 0:
                    raise ValueError(f"{key}={value} must be >= 0")
                setattr(rule, key, number)
            elif key == "retry_after":
                retry_after_set = True
                rule.retry_after = None if value.lower() == "none" else _number(value, f"retry_after={value}", int)
            else:
                raise ValueError(
                    f"unknown fault rule field {key!r} (path, method, fault, rate, skip, times, retry_after)"
                )
        if not retry_after_set and rule.fault == "429":
            rule.retry_after = 1
        rules.append(rule)
    return rules


def _number(text: str, what: str, kind: type = float) -> Any:
    """`kind(text)`, or a ValueError that names the field instead of Python's 'could not convert ...'."""
    try:
        value = kind(text.strip())
    except ValueError:
        noun = "a whole number" if kind is int else "a number"
        raise ValueError(f"{what}: {text.strip()!r} is not {noun}") from None
    if kind is float and (value != value or value in (float("inf"), float("-inf"))):
        raise ValueError(f"{what}: {text.strip()!r} is not a finite number")
    return value


@dataclass
class RateLimit:
    pattern: str
    per_second: float
    capacity: float
    tokens: float = 0.0
    updated: float = 0.0


def parse_rate_limit(text: str) -> RateLimit:
    """`GLOB=N/s` or `GLOB=N/min` (a bare N means per second)."""
    pattern, sep, rate = text.rpartition("=")
    if not sep or not pattern:
        raise ValueError(f"rate limit {text!r} is not ENDPOINT=N/s")
    number, _, unit = rate.strip().partition("/")
    per = {"": 1.0, "s": 1.0, "sec": 1.0, "min": 60.0, "m": 60.0}.get(unit.strip().lower())
    if per is None:
        raise ValueError(f"rate limit {text!r}: unit must be /s or /min")
    value = _number(number, f"rate limit {text!r}: N", float)
    if value <= 0:
        raise ValueError(f"rate limit {text!r}: rate must be positive")
    if not pattern.startswith(("/", "*")):
        pattern = "*/" + pattern
    return RateLimit(
        pattern,
        value / per,
        max(1.0, value if per == 1.0 else value / 60.0),
        tokens=max(1.0, value if per == 1.0 else value / 60.0),
        updated=time.monotonic(),
    )


def parse_latency(values: Any) -> tuple[float, list[tuple[str, float]]]:
    """Latency as a number (ms, every endpoint), a dict {glob: ms} or a list of 'ms'/'GLOB=ms' strings."""
    default = 0.0
    rules: list[tuple[str, float]] = []
    if values is None:
        return default, rules
    if isinstance(values, (int, float)):
        return float(values), rules
    if isinstance(values, dict):
        items = [f"{k}={v}" for k, v in values.items()]
    elif isinstance(values, str):
        items = [values]
    else:
        items = list(values)
    for item in items:
        pattern, sep, ms = str(item).rpartition("=")
        milliseconds = _number(str(ms), f"latency {str(item)!r}: MS", float)
        if milliseconds < 0:
            raise ValueError(f"latency {str(item)!r}: MS must be >= 0")
        if not sep:
            default = milliseconds
        else:
            if not pattern.startswith(("/", "*")):
                pattern = "*/" + pattern
            rules.append((pattern, milliseconds))
    return default, rules


class Impairments:
    """The faults, rate limits and latency in force, changed at run time (tests, /__local__/) under one lock."""

    def __init__(
        self,
        faults: str | None = None,
        rate_limits: list[str] | None = None,
        latency_ms: Any = 0,
        seed: int | None = None,
    ):
        self._lock = threading.Lock()
        self.random = random.Random(seed)
        self.faults = parse_faults(faults)
        self.rate_limits = [parse_rate_limit(text) for text in rate_limits or []]
        self.latency_default, self.latency_rules = parse_latency(latency_ms)

    def set_faults(self, spec: str | None) -> None:
        with self._lock:
            self.faults = parse_faults(spec)

    def set_rate_limits(self, limits: list[str] | None) -> None:
        with self._lock:
            self.rate_limits = [parse_rate_limit(text) for text in limits or []]

    def set_latency(self, latency_ms: Any) -> None:
        with self._lock:
            self.latency_default, self.latency_rules = parse_latency(latency_ms)

    def latency_for(self, path: str) -> float:
        """Seconds to wait before serving `path`: the first matching GLOB=MS rule, else the default."""
        for pattern, ms in self.latency_rules:
            if fnmatch.fnmatchcase(path, pattern):
                return ms / 1000.0
        return self.latency_default / 1000.0

    def fault_for(self, method: str, path: str) -> FaultRule | None:
        """The first rule that fires for this request (counting seen/fired), None to serve it normally."""
        with self._lock:
            for rule in self.faults:
                if not rule.matches(method, path):
                    continue
                rule.seen += 1
                if rule.seen <= rule.skip or (rule.times is not None and rule.fired >= rule.times):
                    continue
                if rule.rate < 1.0 and self.random.random() >= rule.rate:
                    continue
                rule.fired += 1
                return rule
        return None

    def rate_limited(self, path: str) -> int | None:
        """Take a token from every bucket matching path; the Retry-After seconds when one is empty."""
        with self._lock:
            clock = time.monotonic()
            for bucket in self.rate_limits:
                if not fnmatch.fnmatchcase(path, bucket.pattern):
                    continue
                bucket.tokens = min(bucket.capacity, bucket.tokens + (clock - bucket.updated) * bucket.per_second)
                bucket.updated = clock
                if bucket.tokens < 1.0:
                    return max(1, math.ceil((1.0 - bucket.tokens) / bucket.per_second))
                bucket.tokens -= 1.0
        return None
