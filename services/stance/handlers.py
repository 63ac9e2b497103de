"""Stance's part of the Kafka batch handler (``common.labelling.LabelHandler``): one scorer call
per stance target in the batch; each score with the scorer's identity and the target.

Raw tweets and the gateway's re-label requests arrive in the same batches; a request may name
a target in its ``stance-target`` header. A TransientError from the scorer (API down, circuit
open) propagates to the delivery loop, which pauses, retries the batch later and commits
nothing meanwhile.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from prometheus_client import Histogram

from common.errors import PermanentError
from common.events import MAIN_SUBJECT
from common.labelling import LabelHandler, LabelRequest, LabelResult, Task
from stance.logic import group_by_target, resolve_target
from stance.prompts import names_target
from stance.scorer import StanceScore, StanceScorer

SERVICE: Task = "stance"
INFERENCE_SECONDS = Histogram(
    "stance_inference_seconds",
    "Wall time to score one batch",
    ["provider", "model"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)


@dataclass
class StanceLabeller:
    scorer: StanceScorer
    default_target: str = MAIN_SUBJECT
    service: Task = SERVICE

    def span_attributes(self) -> Mapping[str, str]:
        return {"model": self.scorer.identity.model, "provider": self.scorer.provider}

    def target_of(self, request: LabelRequest) -> str:
        if not names_target(self.scorer.identity.prompt_version):
            return MAIN_SUBJECT  # what an older prompt asks about, whatever was named
        return resolve_target(request.target, self.default_target)

    async def infer(self, requests: Sequence[LabelRequest]) -> list[LabelResult | PermanentError]:
        targets = [self.target_of(r) for r in requests]
        results: dict[int, LabelResult | PermanentError] = {}
        with INFERENCE_SECONDS.labels(self.scorer.provider, self.scorer.identity.model).time():
            # One scorer call per target: a local model keeps one cached prompt prefix per target.
            for target, positions in group_by_target(targets).items():
                scored = await self.scorer.score([requests[i].tweet.text for i in positions], target)
                if len(scored) != len(positions):
                    raise RuntimeError(f"scorer returned {len(scored)} results for {len(positions)} tweets")
                for i, result in zip(positions, scored, strict=True):
                    results[i] = result if isinstance(result, PermanentError) else self._result(result, target)
        return [results[i] for i in range(len(requests))]

    def _result(self, score: StanceScore, target: str) -> LabelResult:
        identity = self.scorer.identity
        return LabelResult(
            score.probabilities,
            identity.model,
            provider=self.scorer.provider,
            prompt_version=identity.prompt_version,
            method=self.scorer.method,
            target=target,
        )


def stance_handler(scorer: StanceScorer, labels_topic: str, default_target: str = MAIN_SUBJECT) -> LabelHandler:
    return LabelHandler(StanceLabeller(scorer, default_target), labels_topic)
