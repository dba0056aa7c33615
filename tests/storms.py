"""Thread storms for the concurrency tests against DynamoDB Local."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests.helpers import DEADLINE


def storm[T](n: int, work: Callable[[int], T]) -> list[T | Exception]:
    """Run ``work(0..n-1)`` on ``n`` threads released at the same moment (a barrier).

    Errors are returned in place of results (each test says which it expects), except a
    failed assertion inside ``work``, which is raised once every thread is done.
    """
    barrier = threading.Barrier(n)

    def run(i: int) -> T | Exception:
        barrier.wait(timeout=DEADLINE)
        try:
            return work(i)
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(max_workers=n) as pool:
        results = list(pool.map(run, range(n)))
    for result in results:
        if isinstance(result, AssertionError):
            raise result
    return results


def kinds(results: list[Any]) -> Counter[str]:
    """How many results of each type, e.g. ``Counter({"Reservation": 40})``."""
    return Counter(type(r).__name__ for r in results)


def failures(results: list[Any]) -> list[str]:
    """The errors among the results, each with its problem code: what a failed count shows."""
    return [
        f"{type(r).__name__}[{getattr(r, 'code', '')}]: {r}"
        for r in results
        if isinstance(r, Exception)
    ]
