"""Scenario (g) on the real broker: a record that always answers RETRY is dead-lettered after the
bounded number of attempts (reason ``retries_exhausted``), and its partition moves on: every
later record is handled and committed, each output once."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from aiokafka import ConsumerRecord

from common.errors import TransientError
from common.kafka import OutgoingMessage
from common.settings import KafkaSettings
from tests.support.delivery_rig import Recorder, Rig, running
from tests.support.polling import wait_until

pytestmark = [pytest.mark.kafka]

ATTEMPTS = 3


@dataclass
class AnswersRetry(Recorder):
    """The rig's recorder, except that a batch holding ``retry_key`` fails transiently."""

    retry_key: bytes = b""
    attempts_on_key: int = 0

    async def __call__(self, batch: list[ConsumerRecord]) -> list[OutgoingMessage]:
        if any(r.key == self.retry_key for r in batch):
            if len(batch) == 1:
                self.attempts_on_key += 1
            raise TransientError("item answered 503")
        return await super().__call__(batch)


async def test_a_poison_item_that_always_answers_retry_is_dead_lettered_and_its_partition_moves_on(
    kafka_settings: KafkaSettings,
) -> None:
    rig = Rig(kafka_settings.model_copy(update={"max_record_attempts": ATTEMPTS}))
    await rig.create_topics()
    produced = [str(2**62 + i) for i in range(90)]
    poison = produced[20]
    await rig.produce(produced)
    handler = AnswersRetry(rig.output, retry_key=poison.encode())
    async with running(rig.loop(handler, replica="a", batch_size=30)):
        await wait_until(rig.all_committed, bool, timeout=90, what="everything committed past the poison item")
    outputs = await rig.output_keys()
    assert set(outputs) == set(produced) - {poison} and max(outputs.values()) == 1
    [(key, value)] = await rig.dead_letters()
    assert key == poison.encode()
    assert b'"reason":"retries_exhausted"' in value and b"item answered 503" in value
    assert handler.attempts_on_key == ATTEMPTS  # alone, while others succeeded: exactly the bound
