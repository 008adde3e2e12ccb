"""One bounded worker pool for the steps' independent calls, which stops on the first failure.

`run_all` runs callables on at most `workers` threads and returns their results in task order. After the first
failure no further task starts; the ones already running settle (a call in flight cannot be taken back, and its
write may land), then the first failure is raised. Further failures among those in flight are counted in the
message of an `OperationFailed` ("... (and 2 more failed calls)"), so the log says the first one was not alone.

``in_order=True`` raises instead the failure of the earliest task in task order, as `Executor.map` does: the error
a step reports (say, which of two unknown clusters) then does not depend on which call answered first. Every task
before a started one has started too, so that task's outcome is always known.

A site that wants every outcome (every cluster rolled out, every package built, every secret read) makes its
task return the failure as a value instead of raising it: nothing then stops the pool early.

It owns only the scheduling. Retries, rate limits and deadlines belong to the client (`dbclient`), output to
the steps. Built on `concurrent.futures.ThreadPoolExecutor`:
https://docs.python.org/3/library/concurrent.futures.html
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import NoReturn, TypeVar

from .errors import OperationFailed

T = TypeVar("T")


class _NotStarted(Exception):
    """A task whose turn came after a failure: it never ran."""


def run_all(
    tasks: Iterable[Callable[[], T]],
    *,
    workers: int,
    on_done: Callable[[T], None] | None = None,
    in_order: bool = False,
    stop: threading.Event | None = None,
) -> list[T]:
    """Run the tasks, at most `workers` at a time, and return their results in task order.

    ``on_done`` is called in the calling thread with each result as its task succeeds (in completion order), e.g.
    to report progress. The first failure (a task's exception, or one raised by ``on_done``) stops the start of
    further tasks; it is raised once the tasks already running have returned. Which failure is "first": the
    earliest to happen, or with ``in_order`` the one of the earliest task (see the module docstring). ``stop``,
    when given, is the event the pool sets when it stops (a failure, or the caller interrupted): long tasks watch
    it to end early.
    """
    tasks = list(tasks)
    if not tasks:
        return []
    stopped = stop if stop is not None else threading.Event()

    def guarded(task: Callable[[], T]) -> T:
        if stopped.is_set():
            raise _NotStarted
        try:
            return task()
        except BaseException:
            stopped.set()
            raise

    results: list[T] = [None] * len(tasks)  # type: ignore[list-item]  # every slot is filled before returning
    failures: list[tuple[int, BaseException]] = []  # (task index, error) in the order they happened
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(tasks)))) as executor:
        futures = {executor.submit(guarded, task): index for index, task in enumerate(tasks)}
        try:
            for future in as_completed(futures):
                error = future.exception()
                if error is None:
                    results[futures[future]] = result = future.result()
                    if on_done is not None:
                        on_done(result)
                elif not isinstance(error, _NotStarted):
                    failures.append((futures[future], error))
        except BaseException:
            stopped.set()  # on_done failed or the caller was interrupted: start nothing more, let the rest settle
            raise
    if failures:
        if in_order:
            failures.sort(key=lambda failure: failure[0])
        _raise_first([error for _, error in failures])
    return results


def _raise_first(failures: list[BaseException]) -> NoReturn:
    """Raise the first failure, its message counting the others when it is an `OperationFailed`."""
    first = failures[0]
    if len(failures) > 1 and isinstance(first, OperationFailed):
        message = f"{first.message} (and {len(failures) - 1} more failed calls)"
        raise OperationFailed(message, hint=first.hint) from first
    raise first
