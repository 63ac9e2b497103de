"""Pure parsing of the API's query parameters into typed queries, and the opaque page cursor.

Every function raises :class:`InvalidParameter` naming the parameter and what to send instead;
the routes turn it into a 422.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from pydantic import BaseModel, Field

from common.events import EMOTION_LABELS, MAX_TARGET_CHARS, STANCE_LABELS, clean_target

_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TWEET_ID = re.compile(r"^[0-9]{1,19}$")
# search_after values for created_at are epoch milliseconds; keep them inside years 1..9999.
_MIN_MILLIS = int(datetime(1, 1, 1, tzinfo=UTC).timestamp() * 1000)
_MAX_MILLIS = int(datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC).timestamp() * 1000)
_MAX_CURSOR_CHARS = 200
DATE_HELP = "YYYY-MM-DD or an ISO 8601 datetime (naive means UTC)"
START_DATE_HELP = f"Oldest created_at, inclusive: {DATE_HELP}"
END_DATE_HELP = f"Newest created_at, inclusive (a date covers the whole day): {DATE_HELP}"


class InvalidParameter(ValueError):
    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param
        self.message = message


@dataclass(frozen=True)
class TimeWindow:
    """``created_at`` bounds: ``start`` inclusive; ``end`` inclusive or exclusive."""

    start: datetime | None = None
    end: datetime | None = None
    end_inclusive: bool = True


@dataclass(frozen=True)
class Cursor:
    created_at_millis: int
    tweet_id: str


@dataclass(frozen=True)
class TweetQuery:
    limit: int
    window: TimeWindow = field(default_factory=TimeWindow)
    emotion: str | None = None
    stance: str | None = None
    stance_target: str | None = None  # exact match on the stored stance.target
    min_valence: float | None = None
    max_valence: float | None = None
    after: Cursor | None = None


def parse_datetime(param: str, raw: str, *, is_end: bool) -> tuple[datetime, bool]:
    """Parse ``YYYY-MM-DD`` or an ISO datetime (naive means UTC).

    Returns the bound and whether it is inclusive: a date-only end covers that whole day,
    so it becomes the next midnight, exclusive.
    """
    text = raw.strip()
    if _DATE_ONLY.match(text):
        try:
            day = date.fromisoformat(text)
        except ValueError as exc:
            raise InvalidParameter(param, f"{raw!r} is not a valid date ({exc})") from exc
        midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
        if not is_end:
            return midnight, True
        if day == date.max:
            return datetime.max.replace(tzinfo=UTC), True
        return midnight + timedelta(days=1), False
    # An unencoded "+" in a query string arrives as a space: "10:00:00 02:00" meant "+02:00".
    text = re.sub(r"(T[\d:.]+) (\d{2}:?\d{2})$", r"\1+\2", text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidParameter(
            param, f"{raw!r} is neither YYYY-MM-DD nor an ISO 8601 datetime like 2020-01-31T23:59:59Z"
        ) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC), True
    except OverflowError as exc:
        raise InvalidParameter(param, f"{raw!r} is outside the supported range of dates") from exc


def time_window(start_date: str | None, end_date: str | None) -> TimeWindow:
    start = parse_datetime("start_date", start_date, is_end=False)[0] if start_date else None
    end, inclusive = parse_datetime("end_date", end_date, is_end=True) if end_date else (None, True)
    if start is not None and end is not None and (start > end or (start == end and not inclusive)):
        raise InvalidParameter("start_date", f"start_date {start_date} is after end_date {end_date}")
    return TimeWindow(start, end, inclusive)


def parse_label(param: str, raw: str | None, allowed: tuple[str, ...]) -> str | None:
    if raw is None:
        return None
    by_folded = {label.casefold(): label for label in allowed}
    label = by_folded.get(raw.strip().casefold())
    if label is None:
        raise InvalidParameter(param, f"{raw!r} is not one of {', '.join(allowed)}")
    return label


def parse_target(param: str, raw: str | None) -> str | None:
    """A stance target: stripped, 1..MAX_TARGET_CHARS characters; absent or blank = not given."""
    if raw is None or not raw.strip():
        return None
    target = raw.strip()
    if len(target) > MAX_TARGET_CHARS:
        raise InvalidParameter(param, f"a target has at most {MAX_TARGET_CHARS} characters, not {len(target)}")
    # the form the stance service records, so a job's target and a filter match its labels
    return clean_target(target)


def valence_range(min_score: float | None, max_score: float | None) -> tuple[float | None, float | None]:
    for param, value in (("min_score", min_score), ("max_score", max_score)):
        if value is not None and not (math.isfinite(value) and -1.0 <= value <= 1.0):
            raise InvalidParameter(param, f"{value} is outside -1..1")
    if min_score is not None and max_score is not None and min_score > max_score:
        raise InvalidParameter("min_score", f"min_score {min_score} is greater than max_score {max_score}")
    return min_score, max_score


class TweetFilters(BaseModel):
    """``GET /tweets``'s query parameters as sent (FastAPI validates their types and bounds);
    :func:`tweet_query` parses them into a :class:`TweetQuery`."""

    limit: int = Field(default=50, ge=1, le=1000)
    start_date: str | None = Field(default=None, max_length=64, description=START_DATE_HELP)
    end_date: str | None = Field(default=None, max_length=64, description=END_DATE_HELP)
    cursor: str | None = Field(default=None, max_length=200, description="next_cursor of the previous page")
    emotion: str | None = Field(default=None, max_length=32, description="One of the emotion labels")
    stance: str | None = Field(default=None, max_length=32, description="SUPPORT, OPPOSE or NEUTRAL")
    stance_target: str | None = Field(
        default=None,
        description="Only stance labels toward exactly this target (as stored in stance.target, stripped; "
        f"at most {MAX_TARGET_CHARS} characters; blank = any), e.g. the target a POST /stance job named",
    )
    min_score: float | None = Field(default=None, ge=-1, le=1, description="Lowest emotion valence")
    max_score: float | None = Field(default=None, ge=-1, le=1, description="Highest emotion valence")


def tweet_query(filters: TweetFilters) -> TweetQuery:
    min_valence, max_valence = valence_range(filters.min_score, filters.max_score)
    return TweetQuery(
        limit=filters.limit,
        window=time_window(filters.start_date, filters.end_date),
        emotion=parse_label("emotion", filters.emotion, EMOTION_LABELS),
        stance=parse_label("stance", filters.stance, STANCE_LABELS),
        stance_target=parse_target("stance_target", filters.stance_target),
        min_valence=min_valence,
        max_valence=max_valence,
        after=decode_cursor(filters.cursor) if filters.cursor is not None else None,
    )


def encode_cursor(cursor: Cursor) -> str:
    raw = json.dumps([cursor.created_at_millis, cursor.tweet_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str) -> Cursor:
    problem = "is not a cursor returned by this API; pass next_cursor from the previous page unchanged"
    if not token or len(token) > _MAX_CURSOR_CHARS:
        raise InvalidParameter("cursor", problem)
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        values = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise InvalidParameter("cursor", problem) from exc
    if (
        not isinstance(values, list)
        or len(values) != 2
        or type(values[0]) is not int
        or not isinstance(values[1], str)
        or not _TWEET_ID.match(values[1])
        or not _MIN_MILLIS <= values[0] <= _MAX_MILLIS
    ):
        raise InvalidParameter("cursor", problem)
    return Cursor(values[0], values[1])


def cursor_from_sort(sort: list[object]) -> Cursor:
    millis, tweet_id = sort
    return Cursor(int(str(millis)), str(tweet_id))
