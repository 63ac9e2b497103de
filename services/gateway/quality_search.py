"""Elasticsearch side of the quality checks and the review page: recomputing the stored
``quality`` of documents, the aggregates behind ``GET /quality``, the stratified review sample,
reviewers' verdicts and the gold-CSV export. Query DSL only; the rules are in :mod:`gateway.quality`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

from elasticsearch import AsyncElasticsearch, NotFoundError

from common.errors import TransientError
from gateway.logic import Outcome, judge_bulk_item
from gateway.quality import QualityCounts, QualityThresholds, document_quality
from gateway.search import _HAS_TWEET, _translated_errors

log = logging.getLogger(__name__)

QUALITY_INPUTS = [
    "emotion.label",
    "emotion.score",
    "emotion.valence",
    "stance.label",
    "stance.score",
    "lexicon",
    "quality",
]
REFRESH_ROUNDS = 5
TASKS = ("emotion", "stance")


def _has_label(source: dict[str, Any]) -> bool:
    return any(isinstance(source.get(task), dict) and source[task].get("label") for task in TASKS)


def _buckets(agg: dict[str, Any]) -> list[dict[str, Any]]:
    buckets: list[dict[str, Any]] = agg.get("buckets", [])
    return buckets


def _label_counts(agg: dict[str, Any]) -> dict[str, int]:
    return {str(b["key"]): int(b["doc_count"]) for b in _buckets(agg)}


def _window(start: datetime | None, end: datetime | None) -> dict[str, Any]:
    bounds = {k: v.isoformat() for k, v in (("gte", start), ("lt", end)) if v is not None}
    return {"range": {"created_at": bounds}} if bounds else {"match_all": {}}


class QualitySearch:
    def __init__(self, client: AsyncElasticsearch, index: str, thresholds: QualityThresholds) -> None:
        self.client = client
        self.index = index
        self.thresholds = thresholds

    # ---- indexer: keep quality in step with the stored document -------------------------

    async def refresh(self, tweet_ids: Sequence[str]) -> int:
        """Recompute ``quality`` of these documents from what they hold now; returns how many changed.

        Each write is conditional on the version read. A conflict means the document changed
        since (another replica's label, a review): read it again and recompute, so the last
        write to a document is always a quality computed from its final content.
        """
        pending = list(tweet_ids)
        changed = 0
        for _ in range(REFRESH_ROUNDS):
            if not pending:
                return changed
            async with _translated_errors("quality read"):
                response = await self.client.mget(index=self.index, ids=pending, source_includes=QUALITY_INPUTS)
            operations: list[dict[str, Any]] = []
            for doc in response["docs"]:
                if not doc.get("found") or not _has_label(doc["_source"]):
                    continue  # a tweet with no label yet has nothing to judge: saves a write per tweet
                want = document_quality(doc["_source"], self.thresholds)
                if doc["_source"].get("quality") == want:
                    continue
                header = {"_index": self.index, "_id": doc["_id"]}
                header |= {"if_seq_no": doc["_seq_no"], "if_primary_term": doc["_primary_term"]}
                operations += [{"update": header}, {"doc": {"quality": want}}]
            if not operations:
                return changed
            async with _translated_errors("quality write"):
                result = await self.client.bulk(
                    operations=operations, filter_path="items.*._id,items.*.status,items.*.error"
                )
            pending = []
            for item in result.get("items", []):
                outcome = judge_bulk_item(item)
                if outcome.outcome is Outcome.STORED:
                    changed += 1
                elif outcome.status == 409:
                    pending.append(str(next(iter(item.values()))["_id"]))
                elif outcome.outcome is Outcome.RETRY:
                    raise TransientError(f"quality write must be retried: {outcome.reason[:200]}")
                else:
                    log.error("quality write rejected", extra={"reason": outcome.reason[:500]})
        if pending:
            log.warning("quality of busy documents left to their next writer", extra={"ids": pending[:20]})
        return changed

    # ---- GET /quality -------------------------------------------------------------------

    async def counts(self, *, baseline_start: datetime | None, baseline_end: datetime | None) -> QualityCounts:
        t = self.thresholds
        aggs: dict[str, Any] = {
            "checked": {"filter": {"exists": {"field": "quality.rules"}}},
            "flags": {"terms": {"field": "quality.flags", "size": 20}},
            "lexicon_agrees": {"terms": {"field": "quality.lexicon_agrees", "size": 2}},
            "label_vs_lexicon": {
                "terms": {"field": "emotion.label", "size": 20},
                "aggs": {"lexicon": {"terms": {"field": "quality.lexicon_polarity", "size": 3}}},
            },
            "reviews": {"terms": {"field": "review.status", "size": 5}},
        }
        minimum = {"emotion": t.emotion_min_score, "stance": t.stance_min_score}
        for task in TASKS:
            aggs[f"{task}_models"] = {
                "terms": {"field": f"{task}.model", "size": 50},
                "aggs": {
                    "low": {"filter": {"range": {f"{task}.score": {"lt": minimum[task]}}}},
                    "baseline": {
                        "filter": _window(baseline_start, baseline_end),
                        "aggs": {"labels": {"terms": {"field": f"{task}.label", "size": 20}}},
                    },
                    "days": {
                        "date_histogram": {"field": "created_at", "calendar_interval": "day", "min_doc_count": 1},
                        "aggs": {"labels": {"terms": {"field": f"{task}.label", "size": 20}}},
                    },
                },
            }
        async with _translated_errors("quality aggregates"):
            response = await self.client.search(
                index=self.index, query={"bool": {"filter": [_HAS_TWEET]}}, size=0, aggs=aggs, track_total_hits=True
            )
        a = response["aggregations"]
        counts = QualityCounts(
            documents=int(response["hits"]["total"]["value"]),
            checked=int(a["checked"]["doc_count"]),
            flags=_label_counts(a["flags"]),
            lexicon_agrees={bool(b["key"]): int(b["doc_count"]) for b in _buckets(a["lexicon_agrees"])},
            label_vs_lexicon={
                (str(b["key"]), str(p["key"])): int(p["doc_count"])
                for b in _buckets(a["label_vs_lexicon"])
                for p in _buckets(b["lexicon"])
            },
            reviews=_label_counts(a["reviews"]),
        )
        for task in TASKS:
            counts.labelled[task], counts.low[task] = {}, {}
            for model in _buckets(a[f"{task}_models"]):
                name = str(model["key"])
                counts.labelled[task][name] = int(model["doc_count"])
                counts.low[task][name] = int(model["low"]["doc_count"])
                counts.baseline[(task, name)] = _label_counts(model["baseline"]["labels"])
                counts.days[(task, name)] = {
                    str(day["key_as_string"])[:10]: _label_counts(day["labels"]) for day in _buckets(model["days"])
                }
        return counts

    # ---- /review ------------------------------------------------------------------------

    async def sample(
        self, strata: Sequence[tuple[str, dict[str, Any]]], *, seed: int, per_stratum: int, status: str
    ) -> list[tuple[str, dict[str, Any]]]:
        """Up to ``per_stratum`` random documents per stratum, the same ones for the same seed
        and data; a tweet drawn by an earlier stratum is not repeated. Returns (stratum, _source)."""
        review = {"pending": {"must_not": [{"exists": {"field": "review.status"}}]}}
        review["reviewed"] = {"filter": [{"exists": {"field": "review.status"}}]}
        searches: list[dict[str, Any]] = []
        for _, clause in strata:
            query: dict[str, Any] = {"bool": {"filter": [_HAS_TWEET, clause]}}
            for key, clauses in review.get(status, {}).items():
                query["bool"].setdefault(key, []).extend(clauses)
            scored = {"function_score": {"query": query, "random_score": {"seed": seed, "field": "id"}}}
            body = {"query": scored, "size": per_stratum * (len(strata) + 1), "sort": ["_score", {"id": "asc"}]}
            searches += [{"index": self.index}, body]
        async with _translated_errors("review sample"):
            response = await self.client.msearch(searches=searches)
        drawn: list[tuple[str, dict[str, Any]]] = []
        seen: set[str] = set()
        for (name, _), result in zip(strata, response["responses"], strict=True):
            if "error" in result:
                raise TransientError(f"review sample failed: {str(result['error'])[:300]}")
            fresh = [h["_source"] for h in result["hits"]["hits"] if h["_id"] not in seen][:per_stratum]
            seen.update(s["id"] for s in fresh)
            drawn += [(name, source) for source in fresh]
        return drawn

    async def save_review(self, tweet_id: str, review: dict[str, Any]) -> bool:
        """Store a reviewer's verdict on the tweet's document; False if no such tweet."""
        async with _translated_errors("save review"):
            try:
                await self.client.update(
                    index=self.index, id=tweet_id, doc={"review": review}, refresh="wait_for", retry_on_conflict=5
                )
            except NotFoundError:
                return False
        return True

    async def reviewed(self, page_size: int = 500) -> AsyncIterator[list[dict[str, Any]]]:
        """Every reviewed tweet, in id order, page by page (search_after: no scroll context left open)."""
        after: list[Any] | None = None
        while True:
            body: dict[str, Any] = {
                "query": {"bool": {"filter": [_HAS_TWEET, {"exists": {"field": "review.status"}}]}},
                "sort": [{"id": "asc"}],
                "size": page_size,
                "_source": ["id", "text", "review", "emotion.label", "stance.label"],
            }
            if after is not None:
                body["search_after"] = after
            async with _translated_errors("review export"):
                response = await self.client.search(index=self.index, **body)
            hits = response["hits"]["hits"]
            if not hits:
                return
            yield [hit["_source"] for hit in hits]
            if len(hits) < page_size:
                return
            after = hits[-1]["sort"]


def review_strata(emotion_labels: Sequence[str], stance_labels: Sequence[str]) -> list[tuple[str, dict[str, Any]]]:
    """The review sample's strata, flagged and low-confidence first so they get their own picks."""
    strata: list[tuple[str, dict[str, Any]]] = [
        ("flagged", {"terms": {"quality.flags": ["lexicon_disagrees", "emotion_stance_conflict"]}}),
        ("low confidence", {"terms": {"quality.flags": ["low_confidence_emotion", "low_confidence_stance"]}}),
    ]
    strata += [(f"emotion: {label}", {"term": {"emotion.label": label}}) for label in emotion_labels]
    strata += [(f"stance: {label}", {"term": {"stance.label": label}}) for label in stance_labels]
    return strata
