"""Two interchangeable load engines: OS threads with blocking sockets, or one asyncio event loop.

Both pull work from an order object (``pop()``/``complete(i)``/``finished``, see ``scheduler.py``) with
``concurrency`` clients in flight, and return one Sample per job plus the wall and CPU time of the run,
so their overhead can be compared on the same workload (``python -m bench.replay --compare-engines``).
"""

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from bench.client import Target
from bench.client import fetch
from bench.client import fetch_async


@dataclass(frozen=True)
class Job:
    """One request: ``check`` turns a status into an error kind (None = success)."""

    label: str
    raw: bytes
    check: Callable[[int], str | None]


@dataclass(frozen=True)
class Sample:
    """The outcome of one job: latency in seconds, an error kind or None, and when it started."""

    label: str
    latency: float
    error: str | None
    started: float = 0.0  # time.perf_counter() when the request started


@dataclass(frozen=True)
class RunResult:
    """All samples of one run in job order, with wall-clock and generator CPU seconds."""

    samples: list[Sample]
    wall_s: float
    cpu_s: float


class FlatOrder:
    """An order without dependencies: jobs 0..n-1 in sequence (used for the no-op endpoint)."""

    def __init__(self, n: int):
        self._next, self._n, self._done = 0, n, 0

    def pop(self) -> tuple[int, None] | None:
        """Take the next job index, or None when all were handed out."""
        if self._next >= self._n:
            return None
        self._next += 1
        return self._next - 1, None

    def complete(self, i: int) -> int:
        """Count job ``i`` as done; nothing new becomes ready."""
        self._done += 1
        return 0

    @property
    def finished(self) -> bool:
        """True once every job completed."""
        return self._done == self._n


def _sample(job: Job, started: float, status: int | None, error: str | None) -> Sample:
    """Record the latency and apply the job's error rule to a status."""
    latency = time.perf_counter() - started
    return Sample(job.label, latency, error if status is None else job.check(status), started)


def run_threads(target: Target, jobs: list[Job], order, concurrency: int, timeout: float) -> RunResult:
    """Run the jobs with ``concurrency`` threads, each doing blocking one-shot requests."""
    samples: list[Sample | None] = [None] * len(jobs)
    cond = threading.Condition()

    def next_index() -> int | None:
        with cond:
            while (item := order.pop()) is None:
                if order.finished:
                    return None
                cond.wait()
            return item[0]

    def worker() -> None:
        while (i := next_index()) is not None:
            started = time.perf_counter()
            status, error = fetch(target, jobs[i].raw, timeout)
            samples[i] = _sample(jobs[i], started, status, error)
            with cond:
                released = order.complete(i)
                cond.notify_all() if order.finished else cond.notify(released)

    return _timed(lambda: _start_and_join(worker, concurrency), samples)


def _start_and_join(worker: Callable[[], None], n: int) -> None:
    """Start ``n`` worker threads and wait for all of them."""
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def run_asyncio(target: Target, jobs: list[Job], order, concurrency: int, timeout: float) -> RunResult:
    """Run the jobs with ``concurrency`` coroutines on one event loop."""
    samples: list[Sample | None] = [None] * len(jobs)

    async def main() -> None:
        cond = asyncio.Condition()

        async def worker() -> None:
            while True:
                async with cond:
                    while (item := order.pop()) is None and not order.finished:
                        await cond.wait()
                if item is None:
                    return
                i = item[0]
                started = time.perf_counter()
                status, error = await fetch_async(target, jobs[i].raw, timeout)
                samples[i] = _sample(jobs[i], started, status, error)
                async with cond:
                    order.complete(i)
                    cond.notify_all()

        await asyncio.gather(*(worker() for _ in range(concurrency)))

    return _timed(lambda: asyncio.run(main()), samples)


def _timed(run: Callable[[], None], samples: list) -> RunResult:
    """Run ``run`` and measure its wall-clock and this process's CPU time."""
    wall0, cpu0 = time.perf_counter(), time.process_time()
    run()
    return RunResult(samples, time.perf_counter() - wall0, time.process_time() - cpu0)


ENGINES = {"threads": run_threads, "asyncio": run_asyncio}
