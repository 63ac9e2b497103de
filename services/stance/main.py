"""Wiring only: settings, scorer (local GGUF or remote API), Kafka clients, the batch loop, signals."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiokafka.admin import AIOKafkaAdminClient

from common.core_lease import host_cores
from common.labelling import serve_labels
from common.worker import load_settings, run_worker
from stance.api_client import ApiLimits, ChatCompletionsClient
from stance.breaker import CircuitBreaker
from stance.handlers import stance_handler
from stance.llama_scorer import LlamaCppScorer, load_llama
from stance.model_files import gguf_sha256, require_gguf
from stance.openai_scorer import OpenAIScorer
from stance.probe_scorer import choose_local_scorer
from stance.quota import SharedQuota
from stance.scorer import ScorerIdentity, StanceScorer
from stance.settings import StanceSettings


def build_api_client(settings: StanceSettings) -> ChatCompletionsClient:
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
    return ChatCompletionsClient(settings.api_base_url, settings.api_key, limits, breaker)


async def build_scorer(settings: StanceSettings, client: ChatCompletionsClient | None = None) -> StanceScorer:
    if settings.provider == "openai":
        client = client or build_api_client(settings)
        identity = ScorerIdentity(settings.api_model, settings.prompt_version, settings.target)
        return OpenAIScorer(client, identity, settings.api_logprobs)
    path = require_gguf(settings.resolved_gguf_path)

    def load() -> StanceScorer:
        llm = load_llama(path, settings.n_ctx, settings.n_threads, settings.n_batch, settings.n_threads_batch)
        identity = ScorerIdentity(path.name, settings.prompt_version, settings.target)
        scorer = LlamaCppScorer(llm, identity, settings.calibrate, settings.max_tweet_tokens)
        scorer.decode.cores = host_cores(settings.core_lease_dir, settings.n_threads)
        return choose_local_scorer(scorer, settings.method, settings.head_path, settings.n_threads, gguf_sha256(path))

    return await asyncio.to_thread(load)


async def run(settings: StanceSettings, stopping: asyncio.Event | None = None) -> None:
    """Run the service until ``stopping`` is set (tests drive it in-process through this)."""
    client = build_api_client(settings) if settings.provider == "openai" else None
    scorer = await build_scorer(settings, client)
    try:
        await serve_labels(
            settings.kafka,
            stance_handler(scorer, settings.kafka.topics.labels, settings.target),
            group_id=settings.group_id,
            batch_size=settings.batch_size,
            max_wait_ms=settings.max_wait_ms,
            stopping=stopping,
            describe={"provider": scorer.provider, "model": scorer.identity.model,
                      "prompt_version": scorer.identity.prompt_version},
            alongside=shared_quota(settings, client),
        )
    finally:
        await scorer.aclose()


@contextlib.asynccontextmanager
async def shared_quota(settings: StanceSettings, client: ChatCompletionsClient | None) -> AsyncIterator[None]:
    """With an API provider, keep this replica's rate at its share of the group's quota."""
    if client is None:
        yield
        return
    group = settings.kafka.group(settings.group_id)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap_servers)
    await admin.start()

    async def count_members() -> int:
        # One group per request: aiokafka 0.12 misparses a DescribeGroups response with several.
        (response,) = await admin.describe_consumer_groups([group])
        return sum(len(g["members"]) for g in response.to_object()["groups"])

    quota = SharedQuota(
        settings.requests_per_second, count_members, client.set_requests_per_second, settings.quota_refresh_s
    )
    done = asyncio.Event()
    task = asyncio.create_task(quota.run(done))
    try:
        yield
    finally:
        done.set()
        await task
        await admin.close()


def main() -> None:
    settings = load_settings("stance", StanceSettings)
    run_worker("stance", settings.telemetry, settings.metrics_port, lambda stopping: run(settings, stopping))
