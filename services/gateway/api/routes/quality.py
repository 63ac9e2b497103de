"""``GET /quality``: how trustworthy the labels look (flags, low confidence, lexicon agreement,
drift), and the same figures as Prometheus gauges on ``/metrics``."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query
from prometheus_client import Gauge
from starlette.types import ASGIApp, Receive, Scope, Send

from common.errors import TransientError
from gateway.api import query
from gateway.api.deps import QualityStore, QualityStoreDep, SettingsDep
from gateway.api.quality_report import build_report
from gateway.api.schemas import QualityPublic
from gateway.quality import QualityThresholds
from gateway.settings import GatewaySettings

log = logging.getLogger(__name__)
router = APIRouter(tags=["quality"])

FLAGGED = Gauge("quality_flagged_documents", "Indexed tweets carrying each quality flag", ["flag"])
LOW_CONFIDENCE = Gauge("quality_low_confidence_ratio", "Share of labels below the confidence threshold", ["task"])
LEXICON_AGREEMENT = Gauge(
    "quality_lexicon_agreement_ratio", "Share of tweets whose VADER polarity matches the emotion valence's"
)
DRIFT = Gauge(
    "quality_label_drift_jsd",
    "JS divergence of the latest judged day's label distribution from the baseline",
    ["task", "model"],
)
DRIFTED_DAYS = Gauge(
    "quality_drifted_days", "Days whose label distribution drifted past the threshold", ["task", "model"]
)

BaselineBound = Annotated[
    str | None, Query(max_length=64, description="YYYY-MM-DD or ISO datetime; default: all the data of each model")
]


async def quality_report(
    store: QualityStore, settings: GatewaySettings, baseline_start: str | None = None, baseline_end: str | None = None
) -> QualityPublic:
    start = query.parse_datetime("baseline_start", baseline_start, is_end=False)[0] if baseline_start else None
    # a date-only end covers that whole day
    end = query.parse_datetime("baseline_end", baseline_end, is_end=True)[0] if baseline_end else None
    counts = await store.counts(baseline_start=start, baseline_end=end)
    body: dict[str, Any] = build_report(
        counts,
        QualityThresholds.from_settings(settings),
        drift_threshold=settings.quality_drift_threshold,
        min_count=settings.quality_drift_min_count,
    )
    body["baseline_start"] = start.isoformat() if start else None
    body["baseline_end"] = end.isoformat() if end else None
    return QualityPublic.model_validate(body)


@router.get("/quality", response_model=QualityPublic)
async def get_quality(
    store: QualityStoreDep,
    settings: SettingsDep,
    baseline_start: BaselineBound = None,
    baseline_end: BaselineBound = None,
) -> QualityPublic:
    """Counts per flag, low-confidence rates, lexicon agreement, and each model's label drift
    per day (Jensen-Shannon divergence from the baseline window; drifted above the threshold)."""
    return await quality_report(store, settings, baseline_start, baseline_end)


def set_gauges(report: QualityPublic) -> None:
    for flag, count in report.flags.items():
        FLAGGED.labels(flag).set(count)
    for task, rates in report.low_confidence.items():
        LOW_CONFIDENCE.labels(task).set(rates.rate if rates.rate is not None else float("nan"))
    agreement = report.lexicon.agreement
    LEXICON_AGREEMENT.set(agreement if agreement is not None else float("nan"))
    DRIFT.clear()
    DRIFTED_DAYS.clear()
    for model in report.drift:
        judged = [day.jsd for day in model.days if day.jsd is not None]
        if judged:
            DRIFT.labels(model.task, model.model).set(judged[-1])
        DRIFTED_DAYS.labels(model.task, model.model).set(sum(day.drifted for day in model.days))


class QualityGauges:
    """ASGI wrapper of the ``/metrics`` app: re-reads the quality aggregates before a scrape,
    at most once per ``GATEWAY_QUALITY_METRICS_REFRESH_S``, so scrapers never hammer Elasticsearch."""

    def __init__(self, app: FastAPI, metrics: ASGIApp) -> None:
        self.app = app
        self.metrics = metrics
        self.refreshed = float("-inf")
        self.lock = asyncio.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.refresh()
        await self.metrics(scope, receive, send)

    async def refresh(self) -> None:
        settings: GatewaySettings = self.app.state.settings
        async with self.lock:
            if time.monotonic() - self.refreshed < settings.quality_metrics_refresh_s:
                return
            self.refreshed = time.monotonic()
            store: QualityStore | None = getattr(self.app.state, "quality", None)
            if store is None:
                return
            try:
                set_gauges(await quality_report(store, settings))
            except TransientError as exc:  # the scrape still answers, with the last values
                log.warning("quality gauges not refreshed", extra={"error": str(exc)})
