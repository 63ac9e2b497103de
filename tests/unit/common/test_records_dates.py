"""``parse_datetime``: timestamps as the sources spell them, judged the same by the replay and
``POST /ingest`` (both read them through ``common.timestamps``)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from common.records import RecordError
from common.timestamps import parse_datetime


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-02-19", datetime(2025, 2, 19, tzinfo=UTC)),  # the spec's bare dates: midnight UTC
        ("2020-07-25 12:27:21", datetime(2020, 7, 25, 12, 27, 21, tzinfo=UTC)),  # naive: UTC
        ("2021-10-06T22:00:00.000Z", datetime(2021, 10, 6, 22, tzinfo=UTC)),
        ("2024-08-29T14:05:00-04:00", datetime(2024, 8, 29, 18, 5, tzinfo=UTC)),
        (" 2024-08-29T14:05:00Z\n", datetime(2024, 8, 29, 14, 5, tzinfo=UTC)),  # spaces: past the ISO fast path
        ("2024-08-29T14:05:00 ", datetime(2024, 8, 29, 14, 5, tzinfo=UTC)),
        ("20240829", datetime(2024, 8, 29, tzinfo=UTC)),  # ISO's basic form: 8 digits are not an epoch
        ("Wed Oct 10 20:19:24 +0000 2018", datetime(2018, 10, 10, 20, 19, 24, tzinfo=UTC)),
        ("Thu Apr 06 15:28:43 +0200 2017", datetime(2017, 4, 6, 13, 28, 43, tzinfo=UTC)),
        ("Mon Apr 06 22:19:45 PDT 2009", datetime(2009, 4, 7, 5, 19, 45, tzinfo=UTC)),
        ("Mon Jan 05 22:22:12 PST 2009", datetime(2009, 1, 6, 6, 22, 12, tzinfo=UTC)),
        ("Mon Jan 05 22:22:12 CEST 2009", datetime(2009, 1, 5, 20, 22, 12, tzinfo=UTC)),
        (1595685600, datetime(2020, 7, 25, 14, tzinfo=UTC)),
        ("1595685600", datetime(2020, 7, 25, 14, tzinfo=UTC)),
        (1595685600000, datetime(2020, 7, 25, 14, tzinfo=UTC)),  # milliseconds
        ("1595685600123", datetime(2020, 7, 25, 14, 0, 0, 123000, tzinfo=UTC)),
        (Decimal("1595685600.5"), datetime(2020, 7, 25, 14, 0, 0, 500000, tzinfo=UTC)),
    ],
)
def test_parses_to_aware_utc(value: object, expected: datetime) -> None:
    parsed = parse_datetime(value)
    assert parsed.tzinfo is not None
    assert parsed == expected


@pytest.mark.parametrize(
    "value",
    [
        "yesterday", "31/02/2025", "2025-13-01", "2025-02-30T10:00:00Z", "2025-", "Mon Apr 06 22:19:45 XYZ 2009",
        True, [2025], 10**20,
    ],
)
def test_rejects_unparseable_dates_as_invalid_date(value: object) -> None:
    with pytest.raises(RecordError) as caught:
        parse_datetime(value)
    assert caught.value.reason == "invalid_date:created_at"


@pytest.mark.parametrize("value", [None, ""])
def test_absent_date_is_a_missing_field(value: object) -> None:
    with pytest.raises(RecordError) as caught:
        parse_datetime(value)
    assert caught.value.reason == "missing_field:created_at"
