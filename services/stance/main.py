"""Wiring only: settings, scorer (local GGUF or remote API), Kafka clients, the batch loop, signals."""

from __future__ import annotations

import asyncio
import logging

from common.kafka import BatchLoop, ensure_topics, make_consumer, make_producer
from common.worker import run_worker
from stance.api_client import ApiLimits, ChatCompletionsClient
from stance.breaker import CircuitBreaker
from stance.handlers import StanceHandler
from stance.llama_scorer import LlamaCppScorer, load_llama
from stance.model import StanceScorer, require_gguf
from stance.openai_scorer import OpenAIScorer
from stance.settings import StanceSettings

log = logging.getLogger("stance")


async def build_scorer(settings: StanceSettings) -> StanceScorer:
    if settings.provider == "openai":
        limits = ApiLimits(
            requests_per_second=settings.requests_per_second,
            max_concurrent=settings.max_concurrent_requests,
            max_attempts=settings.max_attempts,
            connect_timeout_s=settings.connect_timeout_s,
            total_timeout_s=settings.total_timeout_s,
            backoff_base_s=settings.backoff_base_s,
            backoff_max_s=settings.backoff_max_s,
        )
        breaker = CircuitBreaker(settings.breaker_failure_threshold, settings.breaker_reset_timeout_s)
        client = ChatCompletionsClient(settings.api_base_url, settings.api_key, limits, breaker)
        return OpenAIScorer(client, settings.api_model, settings.prompt_version, settings.api_logprobs)
    path = require_gguf(settings.resolved_gguf_path)

    def load() -> LlamaCppScorer:
        llm = load_llama(path, settings.n_ctx, settings.n_threads, settings.n_batch)
        return LlamaCppScorer(llm, path.name, settings.prompt_version, settings.calibrate)

    return await asyncio.to_thread(load)


async def run(settings: StanceSettings, stopping: asyncio.Event | None = None) -> None:
    """Run the service until ``stopping`` is set (tests drive it in-process through this)."""
    scorer = await build_scorer(settings)
    topics = settings.kafka.topics
    sources = [topics.raw, topics.requests("stance")]
    try:
        await ensure_topics(settings.kafka, topics.all())
        consumer = make_consumer(
            settings.kafka, settings.kafka.group(settings.group_id), *sources, max_poll_records=settings.batch_size
        )
        producer = make_producer(settings.kafka, client_id=settings.group_id)
        await producer.start()
        await consumer.start()
        loop = BatchLoop(
            consumer=consumer,
            producer=producer,
            handle=StanceHandler(scorer, topics.labels),
            max_records=settings.batch_size,
            max_wait_ms=settings.max_wait_ms,
            service="stance",
            stopping=stopping or asyncio.Event(),
        )
        log.info(
            "stance service started",
            extra={
                "provider": scorer.provider,
                "model": scorer.model,
                "prompt_version": scorer.prompt_version,
                "topics": sources,
            },
        )
        try:
            await loop.run()
        finally:
            await consumer.stop()
            await producer.stop()
    finally:
        await scorer.aclose()
        log.info("stance service stopped")


def main() -> None:
    settings = StanceSettings()
    run_worker("stance", settings.telemetry, settings.metrics_port, lambda stopping: run(settings, stopping))
