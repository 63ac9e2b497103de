"""The review page's pure logic: the review form and the gold CSV rows; no server."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest

from gateway.api.review import GOLD_HEADER, InvalidReview, ReviewForm, csv_lines, gold_row, review_doc

AT = datetime(2024, 5, 1, 12, tzinfo=UTC)


def test_accept_confirms_the_labels_that_were_shown() -> None:
    form = ReviewForm("accept", shown_emotion="joy", shown_stance="SUPPORT", emotion="anger", reviewer=" ann ")
    doc = review_doc(form, at=AT)
    assert (doc["status"], doc["emotion"], doc["stance"], doc["reviewer"]) == ("accepted", "joy", "SUPPORT", "ann")
    assert doc["sentiment"] is None and doc["at"] == "2024-05-01T12:00:00+00:00"


def test_a_correction_replaces_the_labels_and_empty_means_no_label() -> None:
    form = ReviewForm("correct", "joy", "SUPPORT", emotion="anger", stance="", sentiment="negative")
    doc = review_doc(form, at=AT)
    assert (doc["status"], doc["emotion"], doc["stance"], doc["sentiment"]) == ("corrected", "anger", None, "negative")
    assert (doc["shown_emotion"], doc["shown_stance"], doc["reviewer"]) == ("joy", "SUPPORT", "anonymous")
    unchanged = review_doc(ReviewForm("correct", "joy", "SUPPORT", emotion="joy", stance="SUPPORT"), at=AT)
    assert unchanged["status"] == "accepted"


@pytest.mark.parametrize("field", ["emotion", "stance", "sentiment", "shown_emotion"])
def test_labels_outside_the_label_sets_are_refused(field: str) -> None:
    with pytest.raises(InvalidReview):
        review_doc(ReviewForm("correct", **{field: "SUPPORTIVE"}), at=AT)


def test_gold_rows_round_trip_through_csv_with_awkward_text() -> None:
    text = 'He said "no", then left,\nfor good'
    rows = [list(GOLD_HEADER)]
    rows.append(gold_row({"id": "9223372036854775807", "text": text, "review": {"emotion": "anger", "stance": None}}))
    parsed = list(csv.reader(io.StringIO(csv_lines(rows))))
    assert parsed == [list(GOLD_HEADER), ["9223372036854775807", text, "anger", "", ""]]
