"""The contracts that cross Kafka. Every event carries a schema_version.

``TweetRecord`` is the one strict model every source format is mapped to. Strict means
wrong types are rejected rather than coerced (an id given as a float, likes given as
"12"), while unknown extra fields are ignored so richer sources still validate.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from common.errors import PermanentError

SCHEMA_VERSION: Literal[1] = 1
MAX_TWEET_ID = 2**63 - 1  # Twitter snowflake ids are signed 64-bit integers.
_MAX_TWEET_ID_DIGITS = str(MAX_TWEET_ID)
MAX_TEXT_CHARS = 4000  # Long-form tweets reach 4,000 characters; anything longer is not a tweet.
MAX_HASHTAGS = 100

EMOTION_LABELS: tuple[str, ...] = (
    # The id2label order of j-hartmann/emotion-english-distilroberta-base.
    "anger",
    "disgust",
    "fear",
    "joy",
    "neutral",
    "sadness",
    "surprise",
)
STANCE_LABELS: tuple[str, ...] = ("SUPPORT", "OPPOSE", "NEUTRAL")
TASK_LABELS: dict[str, tuple[str, ...]] = {"emotion": EMOTION_LABELS, "stance": STANCE_LABELS}
# The stance target when none is named: the tweet's own main subject (docs/stance-guideline.md).
MAIN_SUBJECT = "main subject"
MAX_TARGET_CHARS = 200
# A re-label request for stance toward a named target carries it in this Kafka header (UTF-8).
STANCE_TARGET_HEADER = "stance-target"
# The gateway's re-label requests name their job here; the label event copies it.
JOB_ID_HEADER = "job-id"
# A target is user text that a local model reads inside a prompt prefix tokenised with special
# tokens on: the characters special tokens and templates are made of, and control characters, go.
_TARGET_UNSAFE = re.compile(r"[<>{}\[\]|\x00-\x1f\x7f]")


def clean_target(target: str | None) -> str:
    """A stance target as it is put in a prompt, recorded and filtered on: unsafe characters
    dropped, whitespace collapsed, at most ``MAX_TARGET_CHARS``; blank or None: the main subject."""
    cleaned = _WHITESPACE.sub(" ", _TARGET_UNSAFE.sub(" ", target or "")).strip()[:MAX_TARGET_CHARS].strip()
    return cleaned or MAIN_SUBJECT

_WHITESPACE = re.compile(r"\s+")
TweetId = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,19}$")]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


# TweetRecord is validated once per ingested tweet, so its rules are pydantic-core constraints
# where one exists, and otherwise C-level callables or short functions with a fast path (a
# Python validator costs about a microsecond per call before it does anything).


def _one_line(value: Any) -> Any:
    """Whitespace runs as one space, ends trimmed. ``str.split()`` and the ``\\s`` of a ``str``
    regex agree on what whitespace is (both ``str.isspace``), at a third of the regex's cost.
    Most texts are one line already: the space is the only printable whitespace character, so
    a printable text without a double space or a space at either end is returned as it is, for
    a third of the split and join."""
    if not isinstance(value, str):
        return value
    if value.isprintable() and "  " not in value and value[:1] != " " and value[-1:] != " ":
        return value
    return " ".join(value.split())


def _in_64_bits(value: str) -> str:
    """A digit string (the pattern checked that) within 1..2**63-1, without leading zeros so the
    same tweet has one id. Without a leading zero it is returned as is when within: up to 18
    digits always are, 19 when not above the maximum (equal lengths compare as numbers)."""
    if value[0] != "0" and (len(value) < 19 or value <= _MAX_TWEET_ID_DIGITS):
        return value
    if int(value) > MAX_TWEET_ID or int(value) == 0:
        raise ValueError(f"tweet id {value} is outside 1..{MAX_TWEET_ID}")
    return str(int(value))


def _distinct_hashtags(value: list[str]) -> list[str]:
    """Stripped, without the leading ``#``, empty ones dropped, each once in first-seen order."""
    if not value:
        return value  # most tweets carry none
    if len(value) == 1:  # the next most common: one tag, nothing to de-duplicate (a dict and a loop less)
        cleaned = value[0].strip().lstrip("#")
        return [cleaned] if cleaned else []
    seen: dict[str, None] = {}
    for tag in value:
        cleaned = tag.strip().lstrip("#")
        if cleaned:
            seen.setdefault(cleaned, None)
    return list(seen)


class Author(_Strict):
    handle: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
        AfterValidator(operator.methodcaller("removeprefix", "@")),
    ]
    username: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] | None = None
    user_id: TweetId | None = None
    verified: bool | None = None


class Metrics(_Strict):
    retweets: Annotated[int, Field(ge=0)] | None = None
    likes: Annotated[int, Field(ge=0)] | None = None


class TweetRecord(_Strict):
    """One validated tweet, as published to ``tweets.raw`` keyed by ``id``."""

    schema_version: Literal[1] = SCHEMA_VERSION
    id: Annotated[TweetId, AfterValidator(_in_64_bits)]
    author: Author
    created_at: Annotated[AwareDatetime, AfterValidator(operator.methodcaller("astimezone", UTC))]
    # The before-validator is outermost, so the length limits apply to the collapsed text.
    text: Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT_CHARS), BeforeValidator(_one_line)]
    hashtags: Annotated[list[str], Field(max_length=MAX_HASHTAGS), AfterValidator(_distinct_hashtags)] = Field(
        default_factory=list
    )
    metrics: Metrics | None = None
    lang: Annotated[str, StringConstraints(min_length=2, max_length=8)] | None = None
    source: Annotated[str, StringConstraints(min_length=1)]
    ingested_at: AwareDatetime = Field(default_factory=_utcnow)


class LabelEvent(_Strict):
    """One classifier's verdict on one tweet, published to ``tweets.labels`` keyed by tweet id."""

    schema_version: Literal[1] = SCHEMA_VERSION
    tweet_id: TweetId
    task: Literal["emotion", "stance"]
    label: str
    score: Annotated[float, Field(ge=0.0, le=1.0)]
    scores: dict[str, Annotated[float, Field(ge=0.0, le=1.0)]]
    model: Annotated[str, StringConstraints(min_length=1)]
    model_revision: str | None = None
    provider: str | None = None
    prompt_version: str | None = None
    method: str | None = None  # how the model's output became the label, e.g. "probe-h1" (stance)
    # Stance only: what the stance is toward; MAIN_SUBJECT unless a target was named.
    target: Annotated[str, StringConstraints(min_length=1, max_length=MAX_TARGET_CHARS)] | None = None
    valence: Annotated[float, Field(ge=-1.0, le=1.0)] | None = None
    produced_at: AwareDatetime = Field(default_factory=_utcnow)
    job_id: str | None = None  # set when the label answers a gateway re-label job
    trace_id: str | None = None

    @model_validator(mode="after")
    def _label_belongs_to_task(self) -> LabelEvent:
        allowed = TASK_LABELS[self.task]
        if self.label not in allowed:
            raise ValueError(f"label {self.label!r} is not one of {', '.join(allowed)}")
        unknown = set(self.scores) - set(allowed)
        if unknown:
            raise ValueError(f"scores name unknown labels {sorted(unknown)}")
        return self


def top_label_event(tweet_id: str, task: Literal["emotion", "stance"], scores: dict[str, float],
                    **fields: Any) -> LabelEvent:
    """The label event naming the highest of ``scores`` (the first of equals, in the scores'
    order); ``fields`` are the task's own (model, provider, job id...)."""
    label = max(scores, key=scores.__getitem__)
    return LabelEvent(tweet_id=tweet_id, task=task, label=label, score=scores[label], scores=scores, **fields)


class ValidationIssue(BaseModel):
    loc: str
    msg: str
    type: str


class RejectedRecord(BaseModel):
    """A source record that failed validation, published to ``tweets.rejected``."""

    schema_version: Literal[1] = SCHEMA_VERSION
    source: str
    position: str  # "line 17" / "record 17" / "row 17": where to look in the source file
    reason: str  # short machine-friendly category, e.g. "missing_field:text"
    errors: list[ValidationIssue]
    raw: str
    rejected_at: datetime = Field(default_factory=_utcnow)


class DeadLetter(BaseModel):
    """A Kafka message a consumer could not process, published to ``<topic>.dlq``."""

    schema_version: Literal[1] = SCHEMA_VERSION
    service: str
    source_topic: str
    partition: int
    offset: int
    key: str | None
    value: str
    reason: str
    error_class: str
    detail: str = ""
    failed_at: datetime = Field(default_factory=_utcnow)


Event = TypeVar("Event", bound=BaseModel)


def decode_event(model: type[Event], value: bytes | None, kind: str) -> Event:
    """Parse a Kafka value as ``model``; what cannot be parsed is a :class:`PermanentError` whose
    reason (``empty_message`` / ``invalid_<kind>:<first bad field>``) ends up on the dead letter."""
    if not value:
        raise PermanentError("empty_message", "tombstone or empty value")
    try:
        return model.model_validate_json(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "message"
        raise PermanentError(f"invalid_{kind}:{where}", str(exc)[:2000]) from exc


def decode_tweet(value: bytes | None) -> TweetRecord:
    return decode_event(TweetRecord, value, "tweet")


def decode_label(value: bytes | None) -> LabelEvent:
    return decode_event(LabelEvent, value, "label")


def header_text(headers: Sequence[tuple[str, bytes]] | None, name: str) -> str | None:
    """A Kafka header's value as text (None when absent or empty). Undecodable bytes are
    replaced, not fatal: a garbled job id or target must not cost the tweet its label."""
    raw = dict(headers or ()).get(name)
    return raw.decode("utf-8", errors="replace") if raw else None
