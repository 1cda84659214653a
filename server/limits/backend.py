"""Rate-limit backends: the interface, and the in-process one.

A backend admits a call only if every bucket admits, atomically: two concurrent calls never both
see the last free slot. In process that is one lock around read-decide-write; SQLite uses the
write transaction (`server.limits.sqlite`); a Redis backend would run `decide_all` as one Lua
script over the same keys.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from server.limits.gcra import ALLOWED, Admission, BucketSpec, decide_all

__all__ = ["Clock", "LimitBackend", "MemoryLimits"]

Clock = Callable[[], float]


class LimitBackend(Protocol):
    async def acquire(self, buckets: Sequence[BucketSpec]) -> Admission:
        """Charge one call to every bucket, or to none of them if any refuses."""
        ...

    def close(self) -> None: ...


class MemoryLimits:
    """Buckets in this process only (several processes each get their own limits)."""

    def __init__(self, clock: Clock = time.time) -> None:
        self._clock = clock
        self._tats: dict[str, float] = {}
        self._lock = threading.Lock()
        self._calls = 0

    async def acquire(self, buckets: Sequence[BucketSpec]) -> Admission:
        return self.acquire_now(buckets)

    def acquire_now(self, buckets: Sequence[BucketSpec]) -> Admission:
        if not buckets:
            return ALLOWED
        with self._lock:
            now = self._clock()
            admission, updates = decide_all(self._tats, buckets, now)
            self._tats.update(updates)
            self._calls += 1
            if self._calls % 4096 == 0:
                self._forget_idle(now)
        return admission

    def _forget_idle(self, now: float) -> None:
        # A TAT in the past is the same as no state; dropping it bounds memory.
        for key in [key for key, tat in self._tats.items() if tat < now]:
            del self._tats[key]

    def close(self) -> None:
        self._tats.clear()
