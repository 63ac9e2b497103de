"""A small circuit breaker: stop calling an API that keeps failing, probe it now and then.

closed    → calls pass; ``failure_threshold`` consecutive failures open the circuit.
open      → calls are refused until ``reset_timeout_s`` has passed, then one probe is let through.
half-open → exactly one probe call is in flight; success closes the circuit, failure re-opens it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from enum import Enum

from common.errors import TransientError

log = logging.getLogger(__name__)


class BreakerState(str, Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitOpenError(TransientError):
    """The API is considered down; the caller should back off without calling it."""


class CircuitBreaker:
    def __init__(
        self,
        failure_threshold: int,
        reset_timeout_s: float,
        clock: Callable[[], float] = time.monotonic,
        name: str = "api",
    ) -> None:
        if failure_threshold < 1 or reset_timeout_s <= 0:
            raise ValueError("failure_threshold must be ≥ 1 and reset_timeout_s > 0")
        self.failure_threshold = failure_threshold
        self.reset_timeout_s = reset_timeout_s
        self._clock = clock
        self._name = name
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probe_in_flight = False

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self._clock() - self._opened_at >= self.reset_timeout_s:
            return BreakerState.HALF_OPEN
        return self._state

    def raise_if_open(self) -> None:
        """Fail fast without taking the half-open probe slot (callers about to queue for one)."""
        state = self.state
        if state is BreakerState.OPEN or (state is BreakerState.HALF_OPEN and self._probe_in_flight):
            raise CircuitOpenError(f"circuit {self._name} is {state.value}")

    def before_call(self) -> None:
        """Raise :class:`CircuitOpenError` unless a call may go out now."""
        state = self.state
        if state is BreakerState.CLOSED:
            return
        if state is BreakerState.HALF_OPEN and not self._probe_in_flight:
            self._state = BreakerState.HALF_OPEN
            self._probe_in_flight = True
            log.info("circuit half-open: sending a probe", extra={"breaker": self._name})
            return
        retry_in = max(0.0, self.reset_timeout_s - (self._clock() - self._opened_at))
        raise CircuitOpenError(f"circuit {self._name} is {state.value}; next probe in {retry_in:.1f}s")

    def record_success(self) -> None:
        if self._state is not BreakerState.CLOSED:
            log.info("circuit closed: the API answered", extra={"breaker": self._name})
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._probe_in_flight = False

    def record_failure(self) -> None:
        self._failures += 1
        if self._state is BreakerState.HALF_OPEN or self._failures >= self.failure_threshold:
            if self._state is not BreakerState.OPEN:
                log.warning(
                    "circuit opened: the API keeps failing",
                    extra={"breaker": self._name, "failures": self._failures, "reset_timeout_s": self.reset_timeout_s},
                )
            self._state = BreakerState.OPEN
            self._opened_at = self._clock()
            self._probe_in_flight = False

    def record_neutral(self) -> None:
        """The call ended without saying anything about the API's health (e.g. cancelled)."""
        if self._state is BreakerState.HALF_OPEN:
            self._probe_in_flight = False
