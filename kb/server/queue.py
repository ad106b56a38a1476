"""Admission to the chat model: one question is answered at a time, a bounded number wait.

A local model answers one question at a time (llama.cpp is not thread-safe, and two answers
sharing two cores would each take twice as long). So questions queue here, in the event loop,
before any thread or model is involved: a waiting question costs nothing, a client that leaves
while waiting simply drops out, and when the queue is full the caller is told at once (429)
with an estimate of when to retry, instead of piling up threads. Searches, uploads and health
checks never pass through this queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager


class QueueFull(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__("too many questions are waiting for the model")
        self.retry_after = retry_after


class QueueTimeout(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__("the question waited too long for the model")
        self.retry_after = retry_after


class ClientGone(Exception):
    """The client disconnected while its question waited."""


class GenerationQueue:
    """A first-come, first-served slot for the chat model, with a bounded line in front.

    Hand-written rather than an `asyncio.Semaphore` under `wait_for`: a waiter that gives up
    (timeout, client gone) at the moment the slot is handed to it must pass the slot on, and
    `wait_for` on Python 3.11 can lose exactly that hand-off."""

    def __init__(self, max_waiting: int, timeout: float) -> None:
        self.max_waiting = max_waiting
        self.timeout = timeout
        self._busy = False
        self._line: deque[asyncio.Future[None]] = deque()
        self.active = 0
        # A running estimate of how long one answer holds the model, for Retry-After.
        self._seconds_per_answer = 5.0

    @property
    def waiting(self) -> int:
        return len(self._line)

    def retry_after(self) -> int:
        return max(1, math.ceil(self._seconds_per_answer * (self.waiting + 1)))

    def _release(self) -> None:
        while self._line:
            waiter = self._line.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes straight to the next in line
                return
        self._busy = False

    async def _acquire(self, disconnected: Callable[[], Awaitable[bool]] | None) -> None:
        if not self._busy and not self._line:
            self._busy = True
            return
        if len(self._line) >= self.max_waiting:
            raise QueueFull(self.retry_after())
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._line.append(waiter)
        deadline = time.monotonic() + self.timeout
        try:
            while not waiter.done():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise QueueTimeout(self.retry_after())
                await asyncio.wait({waiter}, timeout=min(left, 0.5))
                if not waiter.done() and disconnected is not None and await disconnected():
                    raise ClientGone
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self._release()  # handed the slot just as it gave up: pass it on
            else:
                waiter.cancel()
                with contextlib.suppress(ValueError):
                    self._line.remove(waiter)
            raise

    async def acquire(self, disconnected: Callable[[], Awaitable[bool]] | None = None) -> float:
        """Wait for the model. Raises QueueFull at once when `max_waiting` others wait already,
        QueueTimeout after `timeout` seconds, ClientGone if `disconnected()`. Returns the start
        time to hand to `release`."""
        await self._acquire(disconnected)
        self.active += 1
        return time.monotonic()

    def release(self, started: float) -> None:
        self.active -= 1
        spent = time.monotonic() - started
        self._seconds_per_answer = 0.8 * self._seconds_per_answer + 0.2 * spent
        self._release()

    @asynccontextmanager
    async def turn(
        self, disconnected: Callable[[], Awaitable[bool]] | None = None
    ) -> AsyncIterator[None]:
        """`acquire` … `release` as a context manager."""
        started = await self.acquire(disconnected)
        try:
            yield
        finally:
            self.release(started)
