from __future__ import annotations

import pytest

from common.errors import TransientError
from stance.breaker import BreakerState, CircuitBreaker, CircuitOpenError


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_threshold_then_half_opens_for_one_probe() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=3, reset_timeout_s=10, clock=clock)
    for _ in range(2):
        breaker.before_call()
        breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    breaker.before_call()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    with pytest.raises(CircuitOpenError):
        breaker.before_call()
    assert issubclass(CircuitOpenError, TransientError)  # the consumer pauses, nothing is committed

    clock.now = 10.0
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.before_call()  # the probe
    with pytest.raises(CircuitOpenError):
        breaker.before_call()  # only one probe at a time
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    breaker.before_call()


def test_failed_probe_reopens_for_a_full_timeout() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout_s=5, clock=clock)
    breaker.record_failure()
    clock.now = 5.0
    breaker.before_call()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    clock.now = 9.9
    with pytest.raises(CircuitOpenError):
        breaker.before_call()
    clock.now = 10.0
    breaker.before_call()


def test_success_resets_the_failure_count() -> None:
    breaker = CircuitBreaker(failure_threshold=2, reset_timeout_s=1, clock=Clock())
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED


def test_a_cancelled_probe_frees_the_probe_slot() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout_s=1, clock=clock)
    breaker.record_failure()
    clock.now = 1.0
    breaker.before_call()
    breaker.record_neutral()
    breaker.before_call()
