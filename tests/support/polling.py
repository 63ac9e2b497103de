"""Poll for a condition with a deadline instead of sleeping a fixed time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def wait_until(
    probe: Callable[[], Awaitable[T]],
    done: Callable[[T], bool],
    *,
    timeout: float = 120.0,  # noqa: ASYNC109 - a deadline for polling, not an I/O timeout
    interval: float = 0.5,
    what: str = "condition",
) -> T:
    deadline = time.monotonic() + timeout
    last = await probe()
    while not done(last):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last value: {last!r}")
        await asyncio.sleep(interval)
        last = await probe()
    return last
