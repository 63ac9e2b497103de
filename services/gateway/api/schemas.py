"""Response models of the API (``*Public``), built from stored documents."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from common.events import MAIN_SUBJECT
from gateway.documents import scores_from_stored


class AuthorPublic(BaseModel):
    handle: str
    username: str | None = None
    user_id: str | None = None
    verified: bool | None = None


class MetricsPublic(BaseModel):
    retweets: int | None = None
    likes: int | None = None


class LabelPublic(BaseModel):
    label: str
    score: float
    scores: dict[str, float]
    model: str

    @field_validator("scores", mode="before")
    @classmethod
    def _from_stored_pairs(cls, value: Any) -> dict[str, float]:
        return scores_from_stored(value)


class StancePublic(LabelPublic):
    target: str | None = Field(
        default=None,
        description=f"What the stance is toward: {MAIN_SUBJECT!r} (the tweet's own) or the target a re-label "
        "job named; null on labels stored before targets were recorded",
    )


class EmotionPublic(LabelPublic):
    valence: float | None = Field(default=None, description="Sentiment in -1..1 derived from the emotion scores")


class TweetPublic(BaseModel):
    id: str = Field(description="64-bit tweet id, as a string to stay exact in JSON")
    created_at: datetime
    author: AuthorPublic
    text: str
    hashtags: list[str]
    metrics: MetricsPublic | None = None
    lang: str | None = None
    source: str | None = None
    emotion: EmotionPublic | None = None
    stance: StancePublic | None = None
    trace_url: str | None = Field(default=None, description="Jaeger UI page of the trace that ingested the tweet")

    @classmethod
    def from_source(cls, source: dict[str, Any], *, jaeger_ui_url: str) -> TweetPublic:
        trace_id = (source.get("trace") or {}).get("ingest")
        return cls.model_validate(
            {
                **{k: source.get(k) for k in ("id", "created_at", "author", "text", "metrics", "lang", "source")},
                "hashtags": source.get("hashtags") or [],
                "emotion": source.get("emotion") or None,
                "stance": source.get("stance") or None,
                "trace_url": f"{jaeger_ui_url.rstrip('/')}/trace/{trace_id}" if trace_id else None,
            }
        )


class TweetPagePublic(BaseModel):
    items: list[TweetPublic]
    total: int = Field(description="Every document matching the filters, not just this page")
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next page; null on the last page")


class JobCreatedPublic(BaseModel):
    job_id: str
    task: Literal["emotion", "stance"]
    queued: int
    target: str | None = Field(
        default=None, description="The stance target the job named; null: the stance service's own target"
    )


class JobPublic(JobCreatedPublic):
    labelled: int
    done: bool


class HealthPublic(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, Literal["ok", "unreachable"]] = Field(default_factory=dict)


class RejectionPublic(BaseModel):
    line: int = Field(description="1-based line of the request body")
    reason: str = Field(description="Category, as on tweets.rejected: missing_field:text, invalid_date:created_at...")
    field: str | None = Field(description="The field the first problem is about")
    message: str


class IngestResultPublic(BaseModel):
    received: int = Field(description="Non-blank lines read")
    published: int = Field(description="Valid tweets acknowledged on tweets.raw (keyed by id)")
    rejected: int = Field(description="Lines sent to tweets.rejected, each listed in rejections")
    rejections: list[RejectionPublic]


class TraceStagePublic(BaseModel):
    stage: Literal["ingested", "emotion", "stance", "indexed"]  # gateway.api.jaeger.StageName
    service: str
    operation: str
    started_at: datetime
    duration_ms: float
    model: str | None = None
    detail: str | None = Field(default=None, description="For indexed: which message was written (topic)")


class TweetTracePublic(BaseModel):
    tweet_id: str
    trace_id: str
    trace_url: str = Field(description="The same trace in the Jaeger UI (where the UI is installed)")
    stages: list[TraceStagePublic] = Field(description="In time order; indexed appears once per message written")
    total_ms: float = Field(description="From the first stage's start to the last stage's end")


class LowConfidenceModelPublic(BaseModel):
    labelled: int
    low: int
    rate: float | None


class LowConfidencePublic(LowConfidenceModelPublic):
    threshold: float = Field(description="A top score below this is low confidence")
    by_model: dict[str, LowConfidenceModelPublic]


class LexiconAgreementPublic(BaseModel):
    model: str = Field(description="The lexicon (VADER) and its version")
    compared: int = Field(description="Documents with both a lexicon score and an emotion valence")
    agreeing: int = Field(description="...whose polarities (negative/neutral/positive) are the same")
    agreement: float | None
    label_compared: int = Field(description="Documents whose emotion label has a polarity (all but surprise)")
    label_agreeing: int
    label_agreement: float | None


class DriftDayPublic(BaseModel):
    day: str
    count: int
    distribution: dict[str, float]
    jsd: float | None = Field(description="Jensen-Shannon divergence (bits) from the baseline; null: too few")
    drifted: bool


class DriftPublic(BaseModel):
    task: Literal["emotion", "stance"]
    model: str
    baseline_count: int
    baseline: dict[str, float]
    days: list[DriftDayPublic]


class QualityPublic(BaseModel):
    documents: int = Field(description="Indexed tweets")
    checked: int = Field(description="...with a label, so judged by the quality checks")
    flags: dict[str, int] = Field(description="Documents carrying each quality flag")
    low_confidence: dict[str, LowConfidencePublic]
    lexicon: LexiconAgreementPublic
    drift_threshold: float
    drift_min_count: int
    baseline_start: str | None = None
    baseline_end: str | None = None
    drift: list[DriftPublic]
    reviews: dict[str, int] = Field(description="Reviewed tweets by verdict (accepted, corrected)")
