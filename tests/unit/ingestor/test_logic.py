from __future__ import annotations

from decimal import Decimal

from aiokafka.partitioner import murmur2
from hypothesis import given
from hypothesis import strategies as st

from common.events import RejectedRecord, TweetRecord, ValidationIssue
from common.records import SourceItem, map_nested, raw_json, reason_for, to_outcome
from ingestor.logic import Reject, ReplaySummary, SeenIds, judge, key_hashes, repeat_reject, repeated


def test_unparseable_items_become_not_json_rejects_with_position_and_raw() -> None:
    item = SourceItem("line 7", "{oops", error="not valid JSON: Expecting property name")
    result = to_outcome(item, map_nested, "f.jsonl")
    assert isinstance(result, RejectedRecord)
    assert (result.reason, result.position, result.raw, result.source) == ("not_json", "line 7", "{oops", "f.jsonl")
    assert "Expecting property name" in result.errors[0].msg


def test_validation_errors_are_all_kept() -> None:
    record = {"id": 5, "user": {}, "meta": {"created_at": "2025-01-01"}, "payload": {"tweet": {}}}
    result = to_outcome(SourceItem("record 1", raw_json(record), record), map_nested, "f.json")
    assert isinstance(result, RejectedRecord)
    assert result.reason == "missing_field:author.handle"
    assert {issue.loc for issue in result.errors} == {"author.handle", "text"}


def test_unexpected_shapes_are_rejected_not_raised() -> None:
    def broken(value: object) -> dict[str, object]:
        raise TypeError("unhashable type: 'list'")

    result = to_outcome(SourceItem("record 1", "[]", []), broken, "f.json")
    assert isinstance(result, RejectedRecord) and result.reason == "unmappable"


def test_reason_categories() -> None:
    def reason(type_: str, loc: str = "x") -> str:
        return reason_for(ValidationIssue(loc=loc, msg="", type=type_))

    assert reason("missing", "text") == "missing_field:text"
    assert reason("string_type", "id") == "invalid_type:id"
    assert reason("timezone_aware", "created_at") == "invalid_date:created_at"
    assert reason("string_too_short", "text") == "empty_field:text"
    assert reason("string_too_long", "text") == "too_long:text"
    assert reason("greater_than_equal", "metrics.likes") == "invalid_value:metrics.likes"
    assert reason("value_error", "") == "invalid_value"


def test_seen_ids_compare_numerically() -> None:
    seen = SeenIds()
    assert seen.add("9223372036854775807") is True
    assert seen.add("9223372036854775807") is False
    assert seen.add("5") is True
    assert len(seen) == 2


def test_raw_json_keeps_the_digits_of_non_integers() -> None:
    assert raw_json({"id": Decimal("1.8600000000000000E+18"), "n": 2**63}) == (
        '{"id": "1.8600000000000000E+18", "n": 9223372036854775808}'
    )


def test_summary_reconciles_only_when_counts_add_up() -> None:
    summary = ReplaySummary(source="s", read=5, valid=4, duplicates=1, published=3)
    summary.count_reject("duplicate_id")
    assert not summary.reconciles
    summary.count_reject("not_json")
    assert summary.reconciles
    assert summary.rejected_by_reason == {"duplicate_id": 1, "not_json": 1}
    assert summary.model_dump()["reconciles"] is True


def test_valid_record_is_a_tweet() -> None:
    record = {"id": "7", "user": {"handle": "@a"}, "meta": {"created_at": "2025-01-01"},
              "payload": {"tweet": {"content": "hi"}}}
    assert isinstance(to_outcome(SourceItem("line 1", "", record), map_nested, "f"), TweetRecord)


def test_judge_publishes_each_first_tweet_as_its_model_json_and_rejects_repeats() -> None:
    record = {"id": "7", "user": {"handle": "@a"}, "meta": {"created_at": "2025-01-01"},
              "payload": {"tweet": {"content": "hi"}}}
    item = SourceItem("line 1", "{}", record)
    tweet = to_outcome(item, map_nested, "f")
    bad = to_outcome(SourceItem("line 2", "{oops", error="not valid JSON: x"), map_nested, "f")
    assert isinstance(tweet, TweetRecord) and isinstance(bad, RejectedRecord)
    first, repeat, rejected = judge([(item, tweet), (item, tweet), (item, bad)], SeenIds(), "f")
    # the payload: the model's own JSON; the key's hash as the default partitioner computes it
    assert first == ("7", tweet.model_dump_json().encode(), murmur2(b"7") & 0x7FFFFFFF)
    assert isinstance(repeat, Reject) and repeat.duplicate and repeat.reason == "duplicate_id"
    assert isinstance(rejected, Reject) and not rejected.duplicate and rejected.reason == "not_json"
    assert RejectedRecord.model_validate_json(rejected.value).raw == "{oops"


def test_a_lanes_chunk_is_judged_again_against_every_id_before_it() -> None:
    seen = SeenIds()
    seen.add("1")
    tweet = ("2", b"{}", 0)
    inner = Reject("duplicate_id", "line 4", b"{}", None, True)  # repeated within its chunk: judged there
    bad = Reject("not_json", "line 6", b"", None, False)
    chunk = [("1", b"{}", 0), tweet, ("3", b"{}", 0), inner, ("2", b"{}", 0), bad]
    assert repeated(chunk, seen) == [0, 4]  # the id before the chunk, and a repeat the lane did not see
    assert len(seen) == 3 and repeated([tweet], seen) == [0]
    item = SourceItem("line 9", '{"id": "2"}', {"id": "2"})
    rejected = repeat_reject(item, "f.jsonl", "2")
    record = RejectedRecord.model_validate_json(rejected.value)
    assert rejected.duplicate and rejected.reason == "duplicate_id" and rejected.position == "line 9"
    assert (record.raw, record.errors[0].msg) == ('{"id": "2"}', "id 2 already appeared earlier in f.jsonl")


@given(st.lists(st.binary(max_size=80) | st.integers(1, 2**63 - 1).map(lambda n: str(n).encode()), max_size=40))
def test_key_hashes_are_the_default_partitioners_murmur2(keys: list[bytes]) -> None:
    """Keys of every length (blocks, each tail, the empty key), several of one length hashed
    together, in the order given."""
    assert key_hashes(keys) == [murmur2(key) & 0x7FFFFFFF for key in keys]

