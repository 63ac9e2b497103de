"""Batch in → stance label events (and dead letters) out.

Raw tweets and the gateway's re-label requests arrive in the same batches; a request carries
the job id in its ``job-id`` header, which is copied into the label event. A TransientError
from the scorer (API down, circuit open) propagates to the BatchLoop, which pauses, retries
the whole batch later and commits nothing meanwhile.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aiokafka import ConsumerRecord
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind
from prometheus_client import Histogram

from common.errors import PermanentError
from common.events import MAIN_SUBJECT, TweetRecord
from common.kafka import OutgoingMessage, dead_letter
from common.telemetry import TWEET_ID, current_trace_id, extract_context, inject_headers
from stance.logic import build_label_event, decode_tweet, group_by_target, request_target
from stance.model import StanceScore, StanceScorer
from stance.prompts import names_target

log = logging.getLogger(__name__)
tracer = trace.get_tracer("stance")
INFERENCE_SECONDS = Histogram(
    "stance_inference_seconds",
    "Wall time to score one batch",
    ["provider", "model"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)

SERVICE = "stance"
JOB_ID_HEADER = "job-id"


@dataclass
class StanceHandler:
    scorer: StanceScorer
    labels_topic: str
    default_target: str = MAIN_SUBJECT

    async def __call__(self, batch: list[ConsumerRecord]) -> list[OutgoingMessage]:
        out: list[OutgoingMessage] = []
        accepted: list[tuple[ConsumerRecord, TweetRecord]] = []
        for record in batch:
            try:
                accepted.append((record, decode_tweet(record.value)))
            except PermanentError as exc:
                out.append(self._dead_letter(record, exc))
        if not accepted:
            return out
        links = [Link(trace.get_current_span(extract_context(r.headers)).get_span_context()) for r, _ in accepted]
        targets = [request_target(record.headers, self.default_target) for record, _ in accepted]
        if not names_target(self.scorer.prompt_version):
            targets = [MAIN_SUBJECT] * len(accepted)  # what an older prompt asks about, whatever was named
        results: dict[int, StanceScore | PermanentError] = {}
        with (
            tracer.start_as_current_span(
                "stance inference",
                links=links,
                attributes={"batch.size": len(accepted), "model": self.scorer.model, "provider": self.scorer.provider},
            ) as batch_span,
            INFERENCE_SECONDS.labels(self.scorer.provider, self.scorer.model).time(),
        ):
            # One scorer call per target: a local model keeps one cached prompt prefix per target.
            for target, positions in group_by_target(targets).items():
                scored = await self.scorer.score([accepted[i][1].text for i in positions], target)
                if len(scored) != len(positions):
                    raise RuntimeError(f"scorer returned {len(scored)} results for {len(positions)} tweets")
                results.update(zip(positions, scored, strict=True))
        for i, (record, tweet) in enumerate(accepted):
            result = results[i]
            if isinstance(result, PermanentError):
                out.append(self._dead_letter(record, result))
            else:
                out.append(self._label_message(record, tweet, result, targets[i], batch_span.get_span_context()))
        return out

    def _label_message(
        self, record: ConsumerRecord, tweet: TweetRecord, result: StanceScore, target: str, batch: trace.SpanContext
    ) -> OutgoingMessage:
        job = dict(record.headers or ()).get(JOB_ID_HEADER)
        with tracer.start_as_current_span(
            "stance label",
            context=extract_context(record.headers),
            kind=SpanKind.CONSUMER,
            links=[Link(batch)],
            attributes={TWEET_ID: tweet.id, "messaging.source": record.topic, "messaging.offset": record.offset},
        ):
            event = build_label_event(
                tweet,
                result.probabilities,
                model=self.scorer.model,
                provider=self.scorer.provider,
                prompt_version=self.scorer.prompt_version,
                method=self.scorer.method,
                target=target,
                job_id=job.decode(errors="replace") if job else None,
                trace_id=current_trace_id(),
            )
            headers = inject_headers()
        return OutgoingMessage(self.labels_topic, tweet.id, event.model_dump_json().encode(), headers)

    def _dead_letter(self, record: ConsumerRecord, error: PermanentError) -> OutgoingMessage:
        log.warning(
            "dead-lettering message",
            extra={
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "reason": error.reason,
            },
        )
        return dead_letter(record, SERVICE, error)
