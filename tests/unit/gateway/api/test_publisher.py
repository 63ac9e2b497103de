"""The headers of the re-label requests, with the Kafka send replaced by a recorder; no broker."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from common.events import JOB_ID_HEADER, STANCE_TARGET_HEADER
from common.kafka import OutgoingMessage
from common.settings import KafkaSettings
from gateway.api import publisher as publisher_module
from gateway.api.publisher import RelabelPublisher
from tests.unit.gateway.factories import tweet

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[OutgoingMessage]:
    out: list[OutgoingMessage] = []

    async def record(producer: Any, messages: Sequence[OutgoingMessage]) -> None:
        out.extend(messages)

    monkeypatch.setattr(publisher_module, "publish_all", record)
    return out


def publisher() -> RelabelPublisher:
    queue = RelabelPublisher(KafkaSettings(topic_prefix="unit."))
    queue._producer = object()  # type: ignore[assignment]  # "started": publish_all is replaced
    return queue


async def test_stance_target_header_beside_the_job_id(sent: list[OutgoingMessage]) -> None:
    await publisher().publish("stance", [tweet("1"), tweet("2")], "job1", target="la réforme")
    assert [m.key for m in sent] == ["1", "2"]
    for message in sent:
        assert message.topic.startswith("unit.") and "stance" in message.topic
        headers = dict(message.headers)
        assert headers[JOB_ID_HEADER] == b"job1"
        assert headers[STANCE_TARGET_HEADER] == "la réforme".encode()


async def test_no_target_no_header(sent: list[OutgoingMessage]) -> None:
    await publisher().publish("stance", [tweet("1")], "job2")
    (message,) = sent
    assert dict(message.headers)[JOB_ID_HEADER] == b"job2"
    assert STANCE_TARGET_HEADER not in dict(message.headers)
