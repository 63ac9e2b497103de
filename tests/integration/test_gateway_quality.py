"""Quality flags, /quality, /metrics and the review routes against the real Elasticsearch
(and, for the indexer, the real Kafka). The flags are judged where they are read: in Python for
the documents the review page shows (gateway.quality.document_quality), as queries for
GET /quality and the review strata (gateway.api.search); these tests hold the two to the same
answers."""

from __future__ import annotations

import asyncio
import csv
import io
import itertools
import json
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from common.events import EMOTION_LABELS, STANCE_LABELS, LabelEvent, TweetRecord
from gateway.api.repository import QualitySearch
from gateway.api.search import review_strata
from gateway.indexer import logic
from gateway.quality import QualityThresholds, document_quality, has_label, lexicon_doc
from gateway.settings import GatewaySettings
from tests.integration.test_gateway_api import Indexed, gateway, repository
from tests.integration.test_gateway_indexer import BASE_ID, clean_index, produce, running_indexer, settings
from tests.support.polling import wait_until
from tests.unit.gateway.factories import NOW, emotion, stance, tweet

pytestmark = [pytest.mark.kafka, pytest.mark.es, pytest.mark.asyncio(loop_scope="session")]
__all__ = ["clean_index", "settings"]  # fixtures shared with the indexer tests

T = QualityThresholds()


def tweet_ops(index: str, record: TweetRecord, compound: float | None) -> list[dict[str, Any]]:
    doc = logic.tweet_doc(record, indexed_at=NOW, ingest_trace_id=None, index_trace_id=None)
    if compound is not None:
        doc["lexicon"] = lexicon_doc(compound)
    return logic.tweet_operations(index, doc)


def label_ops(index: str, label: LabelEvent) -> list[dict[str, Any]]:
    return logic.label_operations(index, label.tweet_id, label.task, logic.label_doc(label))


async def write(search: Indexed, operations: Sequence[dict[str, Any]]) -> None:
    """One indexer step: one bulk of partial upserts, and nothing else."""
    items = await search.bulk(operations)
    assert all(logic.judge_bulk_item(i).outcome is logic.Outcome.STORED for i in items), items


async def judged(search: Indexed, tweet_ids: Sequence[str]) -> dict[str, list[str]]:
    """Each tweet's flags as the review page shows them (read, then judged in Python)."""
    await search.refresh()
    quality = QualitySearch(search.store, search.index, T)
    strata = [("these", {"ids": {"values": list(tweet_ids)}})]
    rows = await quality.sample(strata, seed=1, per_stratum=len(tweet_ids), status="all")
    return {source["id"]: source["quality"]["flags"] for _, source in rows if "quality" in source}


async def stored(search: Indexed, tweet_id: str) -> dict[str, Any]:
    source = await search.source(tweet_id)
    assert source is not None, f"tweet {tweet_id} is not stored"
    return source


async def counted_flags(search: Indexed) -> dict[str, int]:
    """The flags as GET /quality counts them (the rules as queries)."""
    await search.refresh()
    counts = await QualitySearch(search.store, search.index, T).counts(baseline_start=None, baseline_end=None)
    return counts.flags


async def test_flags_follow_the_stored_document_in_any_arrival_order_and_across_replays(
    settings: GatewaySettings, clean_index: None
) -> None:
    async with repository(settings) as search:
        record = tweet(str(BASE_ID), text="What an awful, horrible decision")
        happy = emotion(record.id, label="joy", score=0.9, scores={"joy": 0.9}, valence=0.8)
        opposed = stance(record.id, label="OPPOSE", score=0.3, scores={"OPPOSE": 0.3})

        # Labels first, the tweet last: a label-only document stores no flags and is not judged yet.
        await write(search, label_ops(search.index, happy))
        await write(search, label_ops(search.index, opposed))
        label_only = await search.source(record.id)
        assert label_only is not None and "quality" not in label_only
        assert await judged(search, [record.id]) == {} and await counted_flags(search) == {}
        await write(search, tweet_ops(search.index, record, -0.8))
        assert await judged(search, [record.id]) == {record.id: ["lexicon_disagrees", "low_confidence_stance"]}
        assert await counted_flags(search) == {"lexicon_disagrees": 1, "low_confidence_stance": 1}
        doc = await search.source(record.id)
        assert doc is not None and document_quality(doc, T)["lexicon_agrees"] is False

        # A replay of everything in one bulk, tweet first, changes nothing.
        await write(search, tweet_ops(search.index, record, -0.8) + label_ops(search.index, happy))
        assert await judged(search, [record.id]) == {record.id: ["lexicon_disagrees", "low_confidence_stance"]}

        # A new verdict (a re-label) is judged afresh: sad agrees with the lexicon, the stance is confident.
        sad = emotion(record.id, label="sadness", score=0.8, scores={"sadness": 0.8}, valence=-0.8)
        confident = stance(record.id, label="OPPOSE", score=0.9, scores={"OPPOSE": 0.9})
        await write(search, label_ops(search.index, sad) + label_ops(search.index, confident))
        assert await judged(search, [record.id]) == {record.id: []}
        assert await counted_flags(search) == {}
        final = await search.source(record.id)
        assert final is not None and document_quality(final, T)["lexicon_agrees"] is True


async def test_a_review_written_among_label_writes_is_kept_and_the_flags_follow_the_last_label(
    settings: GatewaySettings, clean_index: None
) -> None:
    async with repository(settings) as search:
        quality = QualitySearch(search.store, search.index, T)
        record = tweet(str(BASE_ID + 1), text="great news")
        await write(search, tweet_ops(search.index, record, 0.6))
        relabels = [emotion(record.id, score=s, valence=0.1) for s in (0.9, 0.2, 0.8, 0.3)]
        writes = [write(search, label_ops(search.index, label)) for label in relabels]
        review = quality.save_review(record.id, {"status": "accepted", "reviewer": "ann"})
        *_, saved = await asyncio.gather(*writes, review)
        assert saved
        await write(search, label_ops(search.index, emotion(record.id, score=0.2, valence=0.1)))
        doc = await search.source(record.id)
        assert doc is not None and doc["review"]["reviewer"] == "ann" and doc["emotion"]["score"] == 0.2
        assert await judged(search, [record.id]) == {record.id: ["low_confidence_emotion"]}


def grid() -> list[tuple[float | None, LabelEvent | None, LabelEvent | None]]:
    """Lexicon scores, emotion and stance labels around every threshold and band edge."""
    compounds = (None, -0.8, -0.05, -0.01, 0.0, 0.05, 0.6)
    emotions: list[LabelEvent | None] = [None]
    for label, score, valence in itertools.product(
        ("joy", "anger", "sadness"), (0.3, 0.5, 0.9), (-0.9, -0.05, 0.04, 0.05, 0.7, None)
    ):
        emotions.append(emotion("0", label=label, score=score, scores={label: score}, valence=valence))
    stances: list[LabelEvent | None] = [None]
    for label, score in itertools.product(("SUPPORT", "OPPOSE", "NEUTRAL"), (0.2, 0.5, 0.8)):
        stances.append(stance("0", label=label, score=score, scores={label: score}))
    combos = list(itertools.product(compounds, emotions, stances))
    return combos[:: max(1, len(combos) // 400)]  # ~400 documents, every value on the way


async def test_the_rules_as_queries_count_what_document_quality_judges(
    settings: GatewaySettings, clean_index: None
) -> None:
    expected: Counter[str] = Counter()
    agreement: Counter[bool] = Counter()
    label_vs_lexicon: Counter[tuple[str, str]] = Counter()
    flagged, low, labelled = set(), set(), 0
    async with repository(settings) as search:
        operations: list[dict[str, Any]] = []
        for i, (compound, emo, sta) in enumerate(grid()):
            tweet_id = str(BASE_ID + 500 + i)
            operations += tweet_ops(search.index, tweet(tweet_id, text=f"tweet {i}"), compound)
            for label in (emo, sta):
                if label is not None:
                    operations += label_ops(search.index, label.model_copy(update={"tweet_id": tweet_id}))
            source: dict[str, Any] = {"lexicon": {"compound": compound} if compound is not None else None}
            source |= {"emotion": emo.model_dump() if emo else None, "stance": sta.model_dump() if sta else None}
            if not has_label(source):
                continue
            labelled += 1
            quality = document_quality(source, T)
            expected.update(quality["flags"])
            if quality["lexicon_agrees"] is not None:
                agreement[quality["lexicon_agrees"]] += 1
            if emo is not None and quality["lexicon_polarity"] is not None:
                label_vs_lexicon[(emo.label, quality["lexicon_polarity"])] += 1
            if {"lexicon_disagrees", "emotion_stance_conflict"} & set(quality["flags"]):
                flagged.add(tweet_id)
            if {"low_confidence_emotion", "low_confidence_stance"} & set(quality["flags"]):
                low.add(tweet_id)
        for start in range(0, len(operations), 2000):
            await write(search, operations[start : start + 2000])
        await search.refresh()
        quality_search = QualitySearch(search.store, search.index, T)
        counts = await quality_search.counts(baseline_start=None, baseline_end=None)
        strata = review_strata(EMOTION_LABELS, STANCE_LABELS, T)[:2]
        sampled = await quality_search.sample(strata, seed=3, per_stratum=1000, status="all")
    assert all(expected.values()) and len(expected) == 4, expected  # every flag is exercised
    assert counts.flags == dict(expected)
    assert counts.checked == labelled
    assert counts.lexicon_agrees == dict(agreement)
    assert counts.label_vs_lexicon == dict(label_vs_lexicon)
    assert {source["id"] for name, source in sampled if name == "flagged"} == flagged
    assert {source["id"] for name, source in sampled if name == "low confidence"} == low - flagged


async def test_the_indexer_scores_the_lexicon_and_the_flags_follow_from_kafka(
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
    ids = [r.id for r in records]
    async with running_indexer(settings), repository(settings) as search:
        # labels before their tweets, as happens when the classifiers are faster than the indexer
        await produce(settings.kafka, topics.labels, [(e.tweet_id, e.model_dump_json().encode()) for e in labels])
        await produce(settings.kafka, topics.raw, [(r.id, r.model_dump_json().encode()) for r in records])
        found = await wait_until(
            lambda: judged(search, ids),
            lambda f: len(f) == 2 and "emotion_stance_conflict" in f.get(records[1].id, []),
        )
        doc = await search.source(records[0].id)
    assert found[records[0].id] == ["lexicon_disagrees"]  # VADER: positive; the model: anger
    assert found[records[1].id] == ["emotion_stance_conflict"]  # disgust with SUPPORT, both confident
    assert doc is not None and doc["lexicon"]["compound"] > 0.5 and "quality" not in doc  # judged, not stored


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
        operations: list[dict[str, Any]] = []
        for r in records:
            operations += tweet_ops(search.index, r, 0.5)
        for label in labels:
            operations += label_ops(search.index, label)
        operations += label_ops(search.index, emotion(records[0].id, valence=-0.5))  # disagrees with +0.5
        operations += label_ops(search.index, emotion(records[1].id, valence=0.5))  # agrees
        await write(search, operations)
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
        operations: list[dict[str, Any]] = []
        for i, r in enumerate(records):
            operations += tweet_ops(search.index, r, 0.0)
            operations += label_ops(search.index, emotion(r.id, label=("joy", "anger", "fear")[i % 3]))
            operations += label_ops(search.index, stance(r.id, label=("SUPPORT", "OPPOSE", "NEUTRAL")[i % 3]))
        await write(search, operations)
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
        await write(search, tweet_ops(search.index, record, 0.1))
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
        quality = QualitySearch(search.store, search.index, T)
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
