"""Source timestamps → aware ``datetime``: how every entry point reads ``created_at``.

Accepted, in this order:

* epoch numbers (JSON integers, or strings of 9+ digits): seconds, or milliseconds when the
  value is 10**11 or more (10**11 seconds is the year 5138, so the split is unambiguous);
* ISO 8601 (``2024-05-01T12:00:00Z``, ``2024-05-01 12:00:00``, ``2024-05-01``: midnight);
* Twitter API v1.1: ``Wed Oct 10 20:19:24 +0000 2018``;
* Sentiment140: ``Mon Apr 06 22:19:45 PDT 2009`` (the zone abbreviations below, nothing else).

A timestamp without a zone is taken as **UTC**: dataset exports almost always write UTC, and
guessing the exporter's local zone would be worse. What cannot be read raises
:class:`common.records.RecordError` with an ``invalid_date:<field>`` (or ``missing_field``) reason.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from common.records import RecordError

# Abbreviations are ambiguous in general (IST, CST); these are the North-American and European
# ones tweet dumps use, mapped explicitly instead of trusting the platform's zone database.
ZONE_ABBREVIATIONS: dict[str, timedelta] = {
    "UTC": timedelta(0),
    "GMT": timedelta(0),
    "Z": timedelta(0),
    "PST": timedelta(hours=-8),
    "PDT": timedelta(hours=-7),
    "MST": timedelta(hours=-7),
    "MDT": timedelta(hours=-6),
    "CST": timedelta(hours=-6),
    "CDT": timedelta(hours=-5),
    "EST": timedelta(hours=-5),
    "EDT": timedelta(hours=-4),
    "AKST": timedelta(hours=-9),
    "AKDT": timedelta(hours=-8),
    "HST": timedelta(hours=-10),
    "BST": timedelta(hours=1),
    "CET": timedelta(hours=1),
    "CEST": timedelta(hours=2),
}
_MILLIS_THRESHOLD = 10**11
_ABBREVIATED = re.compile(r"^(\w{3} \w{3} \d{1,2} \d{2}:\d{2}:\d{2}) ([A-Z]{1,5}) (\d{4})$")


def parse_datetime(value: Any, field: str = "created_at") -> datetime:
    if type(value) is str and value[4:5] == "-":
        # The common case, an ISO 8601 date: what the rules below would do first for it (it is
        # not all digits), without their checks. Surrounding spaces fail here and are read below.
        try:
            iso = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            return iso if iso.tzinfo is not None else iso.replace(tzinfo=UTC)
    reason = f"invalid_date:{field}"
    if value is None or value == "":
        raise _error(f"missing_field:{field}", "field required", type_="missing")
    if isinstance(value, bool):
        raise _error(reason, "expected a timestamp, got a boolean")
    if isinstance(value, int | Decimal):
        return _from_epoch(value, reason)
    if not isinstance(value, str):
        raise _error(reason, f"expected a timestamp, got {type(value).__name__}")
    text = value.strip()
    if text.isdigit() and len(text) >= 9:
        return _from_epoch(int(text), reason)
    for parse in (_iso, _twitter_v1, _abbreviated_zone):
        parsed = parse(text)
        if parsed is not None:
            return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    raise _error(reason, f"unrecognised timestamp {text[:60]!r}")


def _error(reason: str, msg: str, **kwargs: str) -> RecordError:
    """The reject of a bad timestamp. ``common.records`` imports this module (its nested layout
    reads dates), so the error class is imported when a date is bad, not when this module loads."""
    from common.records import RecordError

    return RecordError(reason, msg, **kwargs)


def _from_epoch(value: int | Decimal, reason: str) -> datetime:
    seconds = Decimal(value)
    if abs(seconds) >= _MILLIS_THRESHOLD:
        seconds /= 1000
    try:
        return datetime.fromtimestamp(float(seconds), UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise _error(reason, f"epoch {value} is out of range: {exc}") from None


def _iso(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _twitter_v1(text: str) -> datetime | None:
    try:
        return datetime.strptime(text, "%a %b %d %H:%M:%S %z %Y")
    except ValueError:
        return None


def _abbreviated_zone(text: str) -> datetime | None:
    match = _ABBREVIATED.match(text)
    if match is None or match.group(2) not in ZONE_ABBREVIATIONS:
        return None
    stamp, zone, year = match.groups()
    try:
        naive = datetime.strptime(f"{stamp} {year}", "%a %b %d %H:%M:%S %Y")
    except ValueError:
        return None
    return naive.replace(tzinfo=timezone(ZONE_ABBREVIATIONS[zone]))
