"""The steps' one worker pool, `pool.run_all`: results in task order, at most `workers` tasks at a time, no task
started after the first failure, the tasks in flight settled before it is raised. run_all has no deadline of its
own (the client's step deadline bounds the calls), so there is none to test here.

Waits on events carry a timeout only so that a broken pool fails the test instead of hanging it; no assertion
depends on timing."""

from __future__ import annotations

import threading

import pytest

from cicdkit import pool
from cicdkit.errors import InputError, OperationFailed

WAIT = 10  # seconds: a safety net against a hang, never reached when the pool works


class InFlight:
    """Counts the tasks running at once, and the most ever seen."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.peak = 0

    def __enter__(self) -> InFlight:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
        return self

    def __exit__(self, *exc_info: object) -> None:
        with self.lock:
            self.now -= 1


def test_no_tasks_no_results():
    assert pool.run_all([], workers=4) == []


def test_results_come_in_task_order_whatever_the_completion_order():
    # Task i waits until on_done has seen task i+1's result: they complete, and are reported, last to first.
    reported = [threading.Event() for _ in range(4)]
    seen: list[int] = []

    def task(i: int):
        def run() -> int:
            if i + 1 < len(reported):
                assert reported[i + 1].wait(WAIT)
            return i

        return run

    def on_done(result: int) -> None:
        seen.append(result)
        reported[result].set()

    assert pool.run_all([task(i) for i in range(4)], workers=4, on_done=on_done) == [0, 1, 2, 3]
    assert seen == [3, 2, 1, 0]  # on_done: as each task succeeds


def test_on_done_runs_in_the_calling_thread():
    threads: list[threading.Thread] = []
    pool.run_all([lambda: 1, lambda: 2], workers=2, on_done=lambda _result: threads.append(threading.current_thread()))
    assert threads == [threading.current_thread()] * 2


@pytest.mark.parametrize("workers", [1, 3, 4])
def test_at_most_workers_tasks_run_at_once_and_that_many_do(workers):
    # Each task waits at a barrier for `workers` tasks: it lets them through only if that many run together, and
    # the counter shows that no more ever did.
    barrier = threading.Barrier(workers, timeout=WAIT)
    counter = InFlight()

    def task(i: int):
        def run() -> int:
            with counter:
                barrier.wait()
            return i

        return run

    assert pool.run_all([task(i) for i in range(workers * 3)], workers=workers) == list(range(workers * 3))
    assert counter.peak == workers


def test_the_pool_is_no_larger_than_the_task_list_and_at_least_one_thread():
    names: set[str] = set()
    lock = threading.Lock()

    def task() -> None:
        with lock:
            names.add(threading.current_thread().name)

    pool.run_all([task] * 3, workers=64)
    assert 1 <= len(names) <= 3
    counter = InFlight()

    def counted() -> None:
        with counter:
            pass

    pool.run_all([counted] * 5, workers=0)
    assert counter.peak == 1


def test_the_first_failure_stops_the_tasks_not_yet_started():
    ran: list[int] = []

    def task(i: int):
        def run() -> int:
            ran.append(i)
            if i == 2:
                raise InputError("task 2 failed")
            return i

        return run

    with pytest.raises(InputError, match="task 2 failed"):
        pool.run_all([task(i) for i in range(10)], workers=1)
    assert ran == [0, 1, 2]


def test_tasks_in_flight_settle_before_the_failure_is_raised():
    failing_done = threading.Event()
    landed: list[str] = []

    def slow_write() -> str:
        assert failing_done.wait(WAIT)  # still running when the other task fails
        landed.append("write")
        return "written"

    def failing() -> str:
        failing_done.set()
        raise InputError("refused")

    with pytest.raises(InputError, match="refused"):
        pool.run_all([slow_write, failing], workers=2)
    assert landed == ["write"]  # run_all returned only after the write in flight had landed


def test_further_failures_in_flight_are_counted_in_an_operation_failed():
    both = threading.Barrier(2, timeout=WAIT)

    def failing(name: str):
        def run() -> None:
            both.wait()  # both are in flight before either fails
            raise OperationFailed(f"{name} failed", hint="try again")

        return run

    with pytest.raises(OperationFailed) as caught:
        pool.run_all([failing("a"), failing("b")], workers=2)
    assert caught.value.message in ("a failed (and 1 more failed calls)", "b failed (and 1 more failed calls)")
    assert caught.value.hint == "try again"
    assert isinstance(caught.value.__cause__, OperationFailed)


def test_other_failures_are_raised_as_they_are():
    both = threading.Barrier(2, timeout=WAIT)
    errors = [ValueError("a"), ValueError("b")]

    def failing(error: ValueError):
        def run() -> None:
            both.wait()
            raise error

        return run

    with pytest.raises(ValueError) as caught:
        pool.run_all([failing(e) for e in errors], workers=2)
    assert any(caught.value is error for error in errors)


@pytest.mark.parametrize("trial", range(10))
def test_in_order_raises_the_failure_of_the_earliest_task(trial):
    # Task 1 fails first; task 0, in flight, fails after it. in_order reports task 0, as Executor.map did.
    task1_failed = threading.Event()
    ran: list[int] = []

    def task0() -> None:
        assert task1_failed.wait(WAIT)
        ran.append(0)
        raise InputError("cluster c-0 does not exist")

    def task1() -> None:
        ran.append(1)
        task1_failed.set()
        raise InputError("cluster c-1 does not exist")

    def later() -> None:
        ran.append(2)

    with pytest.raises(InputError, match="cluster c-0 does not exist"):
        pool.run_all([task0, task1, later], workers=2, in_order=True)
    assert sorted(ran) == [0, 1]  # each worker had failed, so stopped the pool, before it could take `later`


def test_in_order_with_one_failure_raises_it():
    def failing() -> None:
        raise InputError("only this one")

    with pytest.raises(InputError, match="only this one"):
        pool.run_all([lambda: 0, failing, lambda: 2], workers=3, in_order=True)
    assert pool.run_all([lambda: 0, lambda: 1], workers=2, in_order=True) == [0, 1]


@pytest.fixture
def pool_stop(monkeypatch):
    """The first `threading.Event` run_all creates: its stop signal. Tasks wait on it to be still in flight when the
    pool stops, without any sleep."""
    created: list[threading.Event] = []

    class Recorded(threading.Event):
        def __init__(self) -> None:
            super().__init__()
            created.append(self)

    monkeypatch.setattr(threading, "Event", Recorded)
    return lambda: created[0]


def test_a_failing_on_done_stops_the_pool_and_is_raised(pool_stop):
    ran: list[int] = []

    def task(i: int):
        def run() -> int:
            ran.append(i)
            if i > 0:
                assert pool_stop().wait(WAIT)  # still in flight when on_done(0) fails and stops the pool
            return i

        return run

    def on_done(result: int) -> None:
        raise InputError(f"reporting {result} failed")

    with pytest.raises(InputError, match="reporting 0 failed"):
        pool.run_all([task(i) for i in range(10)], workers=1, on_done=on_done)
    # The worker may have taken task 1 before on_done(0) ran (it then settles); nothing after it started.
    assert ran in ([0], [0, 1])


def test_the_first_failure_stops_every_worker(pool_stop):
    ran: list[int] = []
    lock = threading.Lock()
    three_in_flight = threading.Barrier(3, timeout=WAIT)

    def task(i: int):
        def run() -> int:
            with lock:
                ran.append(i)
            if i < 3:
                three_in_flight.wait()  # tasks 0-2 are all running before task 0 fails
            if i == 0:
                raise InputError("task 0 failed")
            if i < 3:
                assert pool_stop().wait(WAIT)  # tasks 1 and 2 settle after the stop
            return i

        return run

    with pytest.raises(InputError, match="task 0 failed"):
        pool.run_all([task(i) for i in range(12)], workers=3)
    assert sorted(ran) == [0, 1, 2]
