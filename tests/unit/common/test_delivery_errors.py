"""Which failures the delivery loop retries, and how a worker process ends."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.errors import (
    CommitFailedError,
    KafkaConnectionError,
    KafkaTimeoutError,
    NotLeaderForPartitionError,
    ProducerFenced,
    RequestTimedOutError,
    UnknownTopicOrPartitionError,
)
from pydantic import Field
from pydantic_settings import BaseSettings

from common.errors import ConfigurationError, ModelUnavailableError, PermanentError, TransientError, is_transient
from common.settings import TelemetrySettings
from common.worker import CONFIGURATION_EXIT, load_settings, run_worker


@pytest.mark.parametrize(
    "error",
    [
        TransientError("es down"),
        TimeoutError(),
        ConnectionRefusedError(),
        ConnectionResetError(),
        KafkaConnectionError(),
        KafkaTimeoutError(),
        RequestTimedOutError(),
        NotLeaderForPartitionError(),
        UnknownTopicOrPartitionError(),
    ],
)
def test_unavailable_or_slow_dependencies_are_transient(error: Exception) -> None:
    assert is_transient(error)


@pytest.mark.parametrize(
    "error",
    [
        PermanentError("invalid_tweet"),
        ValueError("bad input"),
        RuntimeError("llama_decode returned -1"),
        KeyError("x"),
        ProducerFenced(),
        CommitFailedError(),
        ConfigurationError("no model"),
    ],
)
def test_bugs_bad_data_and_fatal_client_errors_are_not_transient(error: Exception) -> None:
    assert not is_transient(error)


def test_a_missing_model_is_a_configuration_error() -> None:
    assert issubclass(ModelUnavailableError, ConfigurationError)


class StrictSettings(BaseSettings):
    workers: int = Field(ge=1)


def test_invalid_settings_exit_with_status_2_and_name_the_field(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        load_settings("svc", lambda: StrictSettings(workers=0))
    assert exit_info.value.code == CONFIGURATION_EXIT == 2
    assert "workers" in capsys.readouterr().err


def test_valid_settings_are_returned() -> None:
    assert load_settings("svc", lambda: StrictSettings(workers=2)).workers == 2


def serve_raising(error: Exception):  # type: ignore[no-untyped-def]
    async def serve(stopping: asyncio.Event) -> None:
        raise error

    return serve


@pytest.mark.parametrize(
    ("error", "code"),
    [(ModelUnavailableError("run make models"), 2), (ConfigurationError("fenced"), 2), (RuntimeError("bug"), 1)],
)
def test_a_worker_exits_non_zero_configuration_errors_with_2_and_anything_unexpected_with_1(
    error: Exception, code: int
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run_worker("svc", TelemetrySettings(), None, serve_raising(error))
    assert exit_info.value.code == code


def test_a_worker_that_stops_normally_returns_without_an_exit_status() -> None:
    served: list[bool] = []

    async def serve(stopping: asyncio.Event) -> None:
        served.append(stopping.is_set())

    assert run_worker("svc", TelemetrySettings(), None, serve) is None  # no SystemExit raised
    assert served == [False]  # serve ran once, handed a stopping event not yet set
