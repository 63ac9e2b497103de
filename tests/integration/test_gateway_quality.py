"""Quality flags, /quality, /metrics and the review routes against the real Elasticsearch
(and, for the indexer, the real Kafka)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from common.events import LabelEvent, TweetRecord
from gateway import logic
from gateway.quality import QualityThresholds, document_quality, lexicon_doc
from gateway.quality_search import QualitySearch
from gateway.search import TweetSearch
from gateway.settings import GatewaySettings
from tests.integration.test_gateway_api import gateway, repository
from tests.integration.test_gateway_indexer import BASE_ID, clean_index, produce, running_indexer, settings
from tests.support.polling import wait_until
from tests.unit.gateway.factories import NOW, emotion, stance, tweet

pytestmark = [pytest.mark.kafka, pytest.mark.es, pytest.mark.asyncio(loop_scope="session")]
__all__ = ["clean_index", "settings"]  # fixtures shared with the indexer tests

T = QualityThresholds()


def tweet_ops(index: str, record: TweetRecord, compound: float) -> list[dict[str, Any]]:
    doc = logic.tweet_doc(record, indexed_at=NOW, ingest_trace_id=None, index_trace_id=None)
    doc["lexicon"] = lexicon_doc(compound)
    return logic.tweet_operations(index, doc)


def label_ops(index: str, label: LabelEvent) -> list[dict[str, Any]]:
    return logic.label_operations(index, label.tweet_id, label.task, logic.label_doc(label))


async def write(search: TweetSearch, quality: QualitySearch, operations: Sequence[dict[str, Any]]) -> None:
    """One indexer step: the bulk of partial upserts, then the quality refresh of the ids touched."""
    items = await search.bulk(operations)
    assert all(logic.judge_bulk_item(i).outcome is logic.Outcome.STORED for i in items), items
    await quality.refresh(sorted({op["update"]["_id"] for op in operations[::2]}))


async def stored(search: TweetSearch, tweet_id: str) -> dict[str, Any]:
    response = await search.client.get(index=search.index, id=tweet_id)
    source: dict[str, Any] = response["_source"]
    return source


async def test_flags_follow_the_stored_document_in_any_arrival_order_and_across_replays(
    settings: GatewaySettings, clean_index: None
) -> None:
    async with repository(settings) as search:
        quality = QualitySearch(search.client, search.index, T)
        record = tweet(str(BASE_ID), text="What an awful, horrible decision")
        happy = emotion(record.id, label="joy", score=0.9, scores={"joy": 0.9}, valence=0.8)
        opposed = stance(record.id, label="OPPOSE", score=0.3, scores={"OPPOSE": 0.3})

        # Labels first, the tweet last: no lexicon yet, then the disagreement once the text is in.
        await write(search, quality, label_ops(search.index, happy))
        assert (await stored(search, record.id))["quality"]["flags"] == []
        await write(search, quality, label_ops(search.index, opposed))
        assert (await stored(search, record.id))["quality"]["flags"] == ["low_confidence_stance"]
        await write(search, quality, tweet_ops(search.index, record, -0.8))
        doc = await stored(search, record.id)
        assert doc["quality"]["flags"] == ["lexicon_disagrees", "low_confidence_stance"]
        assert doc["quality"]["lexicon_agrees"] is False

        # A replay of everything in one bulk, tweet first, changes nothing.
        await write(search, quality, tweet_ops(search.index, record, -0.8) + label_ops(search.index, happy))
        assert (await stored(search, record.id))["quality"] == doc["quality"]

        # A new verdict (a re-label) is judged afresh: sad agrees with the lexicon, the stance is confident.
        sad = emotion(record.id, label="sadness", score=0.8, scores={"sadness": 0.8}, valence=-0.8)
        confident = stance(record.id, label="OPPOSE", score=0.9, scores={"OPPOSE": 0.9})
        await write(search, quality, label_ops(search.index, sad) + label_ops(search.index, confident))
        final = await stored(search, record.id)
        assert final["quality"]["flags"] == [] and final["quality"]["lexicon_agrees"] is True
        assert final["quality"] == document_quality(final, T)


class ReviewAfterRead:
    """The real client, except that right after the first ``mget`` a reviewer's real write
    lands on the document, so the refresh's conditional write meets a newer version."""

    def __init__(self, client: Any, quality: QualitySearch, tweet_id: str) -> None:
        self.client, self.quality, self.tweet_id, self.reads = client, quality, tweet_id, 0

    async def mget(self, **kwargs: Any) -> Any:
        response = await self.client.mget(**kwargs)
        self.reads += 1
        if self.reads == 1:
            assert await self.quality.save_review(self.tweet_id, {"status": "accepted", "reviewer": "ann"})
        return response

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


async def test_a_write_between_the_refreshs_read_and_write_is_retried_not_lost(
    settings: GatewaySettings, clean_index: None
) -> None:
    async with repository(settings) as search:
        quality = QualitySearch(search.client, search.index, T)
        record = tweet(str(BASE_ID + 1), text="great news")
        await write(search, quality, tweet_ops(search.index, record, 0.6))
        items = await search.bulk(label_ops(search.index, emotion(record.id, score=0.2, valence=0.1)))
        assert logic.judge_bulk_item(items[0]).outcome is logic.Outcome.STORED
        interleaved = ReviewAfterRead(search.client, quality, record.id)
        racing = QualitySearch(interleaved, search.index, T)  # type: ignore[arg-type]
        assert await racing.refresh([record.id]) == 1
        assert interleaved.reads == 2  # the conflict made it read again
        doc = await stored(search, record.id)
        assert doc["quality"]["flags"] == ["low_confidence_emotion"]
        assert doc["review"]["reviewer"] == "ann"


async def test_the_indexer_scores_the_lexicon_and_flags_documents_from_kafka(
    settings: GatewaySettings, clean_index: None
) -> None:
    records = [
        tweet(str(BASE_ID + 10), text="I love this wonderful plan"),
        tweet(str(BASE_ID + 11), text="This is a terrible, disgusting plan"),
    ]
    labels = [
        emotion(records[0].id, label="anger", score=0.9, scores={"anger": 0.9}, valence=-0.9),
        emotion(records[1].id, label="disgust", score=0.9, scores={"disgust": 0.9}, valence=-0.9),
        stance(records[1].id, label="SUPPORT", score=0.9, scores={"SUPPORT": 0.9}),
    ]
    topics = settings.kafka.topics
    async with running_indexer(settings), repository(settings) as search:
        # labels before their tweets, as happens when the classifiers are faster than the indexer
        await produce(settings.kafka, topics.labels, [(e.tweet_id, e.model_dump_json().encode()) for e in labels])
        await produce(settings.kafka, topics.raw, [(r.id, r.model_dump_json().encode()) for r in records])

        async def flags() -> dict[str, list[str]]:
            out = {}
            for r in records:
                doc = await search.client.options(ignore_status=404).get(index=search.index, id=r.id)
                if doc["found"] and "lexicon" in doc["_source"] and "quality" in doc["_source"]:
                    out[r.id] = doc["_source"]["quality"]["flags"]
            return out

        found = await wait_until(flags, lambda f: len(f) == 2 and "emotion_stance_conflict" in f.get(records[1].id, []))
    assert found[records[0].id] == ["lexicon_disagrees"]  # VADER: positive; the model: anger
    assert found[records[1].id] == ["emotion_stance_conflict"]  # disgust with SUPPORT, both confident


def spread_labels(n_per_day: dict[str, dict[str, int]], start: int) -> tuple[list[TweetRecord], list[LabelEvent]]:
    records: list[TweetRecord] = []
    labels: list[LabelEvent] = []
    i = start
    for day, counts in n_per_day.items():
        for label, n in counts.items():
            for _ in range(n):
                created = datetime.fromisoformat(day).replace(tzinfo=UTC) + timedelta(minutes=i % 600)
                records.append(tweet(str(BASE_ID + i), created_at=created, text=f"tweet {i}"))
                score = 0.3 if i % 4 == 0 else 0.9
                labels.append(stance(str(BASE_ID + i), label=label, score=score, scores={label: score}))
                i += 1
    return records, labels


async def test_quality_report_counts_rates_and_drift_and_metrics_show_them(
    settings: GatewaySettings, clean_index: None
) -> None:
    drifting = {
        "2024-03-01": {"SUPPORT": 10, "OPPOSE": 10, "NEUTRAL": 10},
        "2024-03-02": {"SUPPORT": 10, "OPPOSE": 10, "NEUTRAL": 10},
        "2024-03-03": {"NEUTRAL": 30},
        "2024-03-04": {"SUPPORT": 2},
    }
    records, labels = spread_labels(drifting, 100)
    async with repository(settings) as search:
        quality = QualitySearch(search.client, search.index, T)
        operations: list[dict[str, Any]] = []
        for r in records:
            operations += tweet_ops(search.index, r, 0.5)
        for label in labels:
            operations += label_ops(search.index, label)
        operations += label_ops(search.index, emotion(records[0].id, valence=-0.5))  # disagrees with +0.5
        operations += label_ops(search.index, emotion(records[1].id, valence=0.5))  # agrees
        await write(search, quality, operations)
        await search.refresh()
    async with gateway(settings) as api:
        response = await api.get("/quality", params={"baseline_start": "2024-03-01", "baseline_end": "2024-03-02"})
        assert response.status_code == 200, response.text
        report = response.json()
        metrics = (await api.get("/metrics/")).text
        bad = await api.get("/quality", params={"baseline_end": "not a date"})
    assert report["documents"] == report["checked"] == 92
    low = 92 // 4
    assert report["flags"]["low_confidence_stance"] == low
    assert report["low_confidence"]["stance"]["low"] == low
    assert report["low_confidence"]["stance"]["rate"] == round(low / 92, 4)
    assert report["flags"]["lexicon_disagrees"] == 1
    assert (report["lexicon"]["compared"], report["lexicon"]["agreeing"]) == (2, 1)
    (model,) = [d for d in report["drift"] if d["task"] == "stance"]
    assert model["baseline_count"] == 60
    assert model["baseline"] == {"SUPPORT": pytest.approx(1 / 3, abs=1e-4), "OPPOSE": pytest.approx(1 / 3, abs=1e-4),
                                 "NEUTRAL": pytest.approx(1 / 3, abs=1e-4)}  # fmt: skip
    days = {d["day"]: d for d in model["days"]}
    assert [days[d]["drifted"] for d in sorted(days)] == [False, False, True, False]
    assert days["2024-03-01"]["jsd"] == 0.0
    assert days["2024-03-04"]["jsd"] is None  # 2 tweets: fewer than the minimum, not judged
    assert report["baseline_end"] == "2024-03-03T00:00:00+00:00"  # a date-only end covers that day
    assert 'quality_flagged_documents{flag="low_confidence_stance"} 23.0' in metrics
    assert 'quality_drifted_days{model="stance-model",task="stance"} 1.0' in metrics
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "baseline_end"]


async def test_review_routes_store_verdicts_refuse_bad_ones_and_export_gold_csv(
    settings: GatewaySettings, clean_index: None
) -> None:
    records = [tweet(str(BASE_ID + 200 + i), text=f'tweet, "{i}"') for i in range(12)]
    async with repository(settings) as search:
        quality = QualitySearch(search.client, search.index, T)
        operations: list[dict[str, Any]] = []
        for i, r in enumerate(records):
            operations += tweet_ops(search.index, r, 0.0)
            operations += label_ops(search.index, emotion(r.id, label=("joy", "anger", "fear")[i % 3]))
            operations += label_ops(search.index, stance(r.id, label=("SUPPORT", "OPPOSE", "NEUTRAL")[i % 3]))
        await write(search, quality, operations)
        await search.refresh()
    async with gateway(settings) as api:
        empty = await api.get("/review/export.csv")
        first = await api.get("/review", params={"seed": 42, "per_stratum": 2})
        again = await api.get("/review", params={"seed": 42, "per_stratum": 2})
        target = records[0].id
        form = {"action": "correct", "shown_emotion": "joy", "shown_stance": "SUPPORT", "emotion": "sadness",
                "stance": "", "sentiment": "negative", "reviewer": "bob", "seed": "42"}  # fmt: skip
        saved = await api.post(f"/review/{target}", data=form)
        refused = await api.post(f"/review/{target}", data={**form, "emotion": "happy"})
        missing = await api.post(f"/review/{BASE_ID + 999}", data=form)
        export = await api.get("/review/export.csv")
        reviewed = await api.get("/review", params={"seed": 42, "status": "reviewed"})
        pending = await api.get("/review", params={"seed": 42, "status": "pending", "per_stratum": 20})
    assert empty.text == "id,text,emotion,stance,sentiment\n"
    assert first.status_code == 200 and first.text == again.text  # the same seed draws the same sample
    assert first.text.count('<article class="tweet') == 12  # every tweet, each once, though strata overlap
    assert saved.status_code == 303 and saved.headers["location"].endswith(
        f"seed=42&per_stratum=3&status=all#t-{target}"
    )
    assert refused.status_code == 422 and "happy" in refused.text
    assert missing.status_code == 404
    assert list(csv.reader(io.StringIO(export.text))) == [
        ["id", "text", "emotion", "stance", "sentiment"],
        [target, 'tweet, "0"', "sadness", "", "negative"],
    ]
    assert reviewed.text.count('<article class="tweet') == 1 and f'data-id="{target}"' in reviewed.text
    assert pending.text.count('<article class="tweet') == 11 and f'data-id="{target}"' not in pending.text
    async with repository(settings) as search:
        review = (await stored(search, target))["review"]
    assert {k: review[k] for k in ("status", "emotion", "stance", "sentiment", "reviewer")} == {
        "status": "corrected", "emotion": "sadness", "stance": None, "sentiment": "negative", "reviewer": "bob",
    }  # fmt: skip
    assert json.dumps(review)  # stored as plain JSON


async def test_review_forms_need_the_api_key_when_one_is_configured(
    settings: GatewaySettings, clean_index: None
) -> None:
    keyed = settings.model_copy(update={"api_keys": SecretStr("ann:review-key-123")})
    record = tweet(str(BASE_ID + 300))
    async with repository(keyed) as search:
        await write(search, QualitySearch(search.client, search.index, T), tweet_ops(search.index, record, 0.1))
    form = {"action": "accept"}
    async with gateway(keyed) as api:
        anonymous = await api.post(f"/review/{record.id}", data=form)
        wrong = await api.post("/review/login", headers={"X-API-Key": "wrong-key-123"})
        login = await api.post("/review/login", headers={"X-API-Key": "review-key-123"})
        cookie = login.cookies.get("gateway_api_key")
        api.cookies.clear()
        with_cookie = await api.post(f"/review/{record.id}", data=form, cookies={"gateway_api_key": cookie or ""})
    assert anonymous.status_code == 401 and wrong.status_code == 401
    assert login.status_code == 204 and cookie == "review-key-123"
    set_cookie = login.headers["set-cookie"].lower()
    assert "httponly" in set_cookie and "samesite=strict" in set_cookie and "path=/review" in set_cookie
    assert with_cookie.status_code == 303
    async with repository(keyed) as search:
        assert (await stored(search, record.id))["review"]["reviewer"] == "ann"  # the key's name, not a form field


async def test_export_pages_through_more_reviews_than_one_search_page(
    settings: GatewaySettings, clean_index: None
) -> None:
    records = [tweet(str(BASE_ID + 1000 + i)) for i in range(1203)]
    async with repository(settings) as search:
        quality = QualitySearch(search.client, search.index, T)
        operations: list[dict[str, Any]] = []
        for r in records:
            operations += tweet_ops(search.index, r, 0.0)
        await search.bulk(operations)
        review = {"status": "accepted", "emotion": "joy", "reviewer": "x"}
        bulk = [
            op
            for r in records
            for op in ({"update": {"_index": search.index, "_id": r.id}}, {"doc": {"review": review}})
        ]
        await search.bulk(bulk)
        await search.refresh()
        pages = [len(page) async for page in quality.reviewed(page_size=500)]
    assert pages == [500, 500, 203]
    async with gateway(settings) as api, api.stream("GET", "/review/export.csv") as response:
        body = "".join([chunk async for chunk in response.aiter_text()])
    ids = [row["id"] for row in csv.DictReader(io.StringIO(body))]
    assert ids == sorted(r.id for r in records)
