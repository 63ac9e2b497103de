"""Reading gold CSVs (hand-written and /review exports), ids, the replay feed, sentiment."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from common.events import TweetRecord
from common.records import map_nested
from evaluation.gold import (
    GoldFormatError,
    parse_gold,
    read_gold,
    sentiment_from_valence,
    sentiment_probabilities,
    tweet_id_for,
    write_feed,
)

REPO = Path(__file__).resolve().parents[3]


def test_label_columns_are_optional_and_empty_cells_mean_unlabelled() -> None:
    csv_text = "id,text,stance\n1790312458841235457,Great bill,support\n2,Meh,\n"
    items = parse_gold(io.StringIO(csv_text))
    assert items[0].labels == {"stance": "SUPPORT"}  # normalised to the label set's case
    assert items[1].labels == {}


def test_review_export_header_with_mixed_labels_reads() -> None:
    csv_text = (
        "id,text,emotion,stance,sentiment\n"
        '123,"Text, with a comma",Joy,,positive\n'
        "456,Other,,OPPOSE,\n"
    )
    items = parse_gold(io.StringIO(csv_text))
    assert items[0].labels == {"emotion": "joy", "sentiment": "positive"}
    assert items[1].labels == {"stance": "OPPOSE"}
    assert items[0].tweet_id == "123"  # numeric ids are the tweet ids themselves


@pytest.mark.parametrize(
    ("csv_text", "message"),
    [
        ("id,stance\n1,SUPPORT\n", "missing column"),
        ("id,text,stance\n1,a,FAVOR\n", "row 2: stance 'FAVOR'"),
        ("id,text\n1,a\n1,b\n", "duplicate id 1"),
        ("id,text\n1,\n", "row 2: id and text are required"),
    ],
)
def test_bad_gold_fails_with_the_row(csv_text: str, message: str) -> None:
    with pytest.raises(GoldFormatError, match=message):
        parse_gold(io.StringIO(csv_text))


def test_non_numeric_ids_map_to_stable_distinct_64_bit_ids() -> None:
    ids = {tweet_id_for(f"t{i:04d}") for i in range(1, 500)}
    assert len(ids) == 499
    assert all(0 < int(i) < 2**63 for i in ids)
    assert tweet_id_for("t0001") == tweet_id_for("t0001")
    assert tweet_id_for("007") == "7"


def test_feed_lines_validate_through_the_ingestors_nested_mapping(tmp_path: Path) -> None:
    items = parse_gold(io.StringIO('id,text\nt1,"Vote NO on #Prop4, it\'s a giveaway"\nt2,plain\n'))
    path = write_feed(items, tmp_path / "gold.jsonl")
    lines = path.read_text().splitlines()
    records = [TweetRecord.model_validate({**map_nested(json.loads(line)), "source": path.name}) for line in lines]
    assert [r.id for r in records] == [items[0].tweet_id, items[1].tweet_id]
    assert records[0].text == "Vote NO on #Prop4, it's a giveaway"
    assert records[0].hashtags == ["Prop4"]


def test_committed_test_set_is_valid_and_large_enough() -> None:
    items = read_gold(REPO / "data" / "labelled" / "test.csv")
    assert len(items) >= 200
    assert all(set(item.labels) == {"emotion", "stance", "sentiment"} for item in items)
    stances = {item.labels["stance"] for item in items}
    assert stances == {"SUPPORT", "OPPOSE", "NEUTRAL"}


def test_sentiment_from_valence_uses_a_symmetric_threshold() -> None:
    assert [sentiment_from_valence(v, 0.2) for v in (0.5, 0.2, 0.0, -0.2, -0.21)] == [
        "positive",
        "neutral",
        "neutral",
        "neutral",
        "negative",
    ]


def test_sentiment_probabilities_fold_emotions_onto_polarity() -> None:
    probs = sentiment_probabilities(
        {"joy": 0.5, "anger": 0.1, "fear": 0.1, "neutral": 0.2, "surprise": 0.1, "disgust": 0.0, "sadness": 0.0}
    )
    assert probs == pytest.approx({"positive": 0.5, "negative": 0.2, "neutral": 0.3})


def test_an_optional_target_column_names_what_the_stance_is_toward() -> None:
    csv_text = "id,text,stance,target\n1,Vote for her,SUPPORT,Hillary Clinton\n2,Meh,NEUTRAL,\n"
    items = parse_gold(io.StringIO(csv_text))
    assert [i.target for i in items] == ["Hillary Clinton", None]
    assert parse_gold(io.StringIO("id,text,stance\n1,x,SUPPORT\n"))[0].target is None
    with pytest.raises(GoldFormatError, match="target is longer"):
        parse_gold(io.StringIO(f"id,text,stance,target\n1,x,SUPPORT,{'t' * 201}\n"))
