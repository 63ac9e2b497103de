"""Jaeger's query API (``/api/traces``) as the API's trace store, and the pure mapping of one
tweet's spans to its stages: ingested, emotion, stance, indexed.

It needs only Jaeger's HTTP API, not its web UI, so ``GET /tweets/{id}/trace`` works with the
natively built Jaeger too.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import httpx

from common.errors import TransientError
from common.telemetry import TWEET_ID

StageName = Literal["ingested", "emotion", "stance", "indexed"]
# operationName → stage; the spans every service starts per tweet (see each service's handlers).
STAGES: dict[str, StageName] = {
    "ingestor.publish": "ingested",
    "gateway.ingest": "ingested",  # POST /ingest
    "emotion label": "emotion",
    "stance label": "stance",
    "gateway.index": "indexed",
}
ROOT_SERVICES = ("ingestor", "gateway-api")  # where a tweet's trace starts
SEARCH_LOOKBACK_S = 7 * 24 * 3600


class JaegerTraces:
    def __init__(self, client: httpx.AsyncClient, base_url: str) -> None:
        self.client = client
        self.base_url = base_url.rstrip("/")

    async def get_trace(self, trace_id: str) -> dict[str, Any] | None:
        """The trace as Jaeger's JSON (``spans``, ``processes``), or ``None`` if Jaeger has none."""
        response = await self._get(f"/api/traces/{trace_id}", {})
        if response.status_code == 404:
            return None
        data = response.json().get("data") or []
        return data[0] if data else None

    async def find_trace_id(self, tweet_id: str) -> str | None:
        """The newest trace whose root service tagged ``tweet.id`` with this id."""
        now_us = int(time.time() * 1_000_000)
        for service in ROOT_SERVICES:
            params = {
                "service": service,
                "tags": json.dumps({TWEET_ID: tweet_id}),
                "start": str(now_us - SEARCH_LOOKBACK_S * 1_000_000),
                "end": str(now_us),
                "limit": "1",
            }
            response = await self._get("/api/traces", params)
            found = response.json().get("data") or [] if response.status_code == 200 else []
            if found:
                return str(found[0]["traceID"])
        return None

    async def _get(self, path: str, params: dict[str, str]) -> httpx.Response:
        try:
            response = await self.client.get(f"{self.base_url}{path}", params=params)
        except httpx.HTTPError as exc:
            raise TransientError(f"jaeger unreachable at {self.base_url}: {exc}") from exc
        if response.status_code >= 500:
            raise TransientError(f"jaeger answered {response.status_code} for {path}")
        return response


def _tags(span: dict[str, Any]) -> dict[str, Any]:
    return {tag["key"]: tag.get("value") for tag in span.get("tags") or []}


@dataclass(frozen=True)
class Stage:
    stage: StageName
    service: str
    operation: str
    start_us: int
    duration_us: int
    model: str | None
    detail: str | None

    @property
    def started_at(self) -> datetime:
        return datetime.fromtimestamp(self.start_us / 1_000_000, UTC)

    @property
    def duration_ms(self) -> float:
        return round(self.duration_us / 1000, 3)


def tweet_stages(trace: dict[str, Any], tweet_id: str, models: dict[str, str]) -> list[Stage]:
    """This tweet's stage spans in time order. ``models`` (task → model, from the stored document)
    names the model where the span itself does not."""
    processes = trace.get("processes") or {}
    stages = []
    for span in trace.get("spans") or []:
        stage = STAGES.get(span.get("operationName", ""))
        tags = _tags(span)
        if stage is None or str(tags.get(TWEET_ID, "")) != tweet_id:
            continue
        model = tags.get("model") or models.get(stage)
        detail = tags.get("messaging.source.name") if stage == "indexed" else None
        stages.append(
            Stage(
                stage=stage,
                service=str((processes.get(span.get("processID")) or {}).get("serviceName", "unknown")),
                operation=span["operationName"],
                start_us=int(span["startTime"]),
                duration_us=int(span.get("duration", 0)),
                model=str(model) if model else None,
                detail=str(detail) if detail else None,
            )
        )
    return sorted(stages, key=lambda s: (s.start_us, s.stage))


def total_ms(stages: list[Stage]) -> float:
    """From the first stage's start to the last stage's end."""
    if not stages:
        return 0.0
    end = max(s.start_us + s.duration_us for s in stages)
    return round((end - min(s.start_us for s in stages)) / 1000, 3)
