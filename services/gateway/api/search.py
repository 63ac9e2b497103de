"""The API's query DSL, as pure functions: the request bodies it sends to Elasticsearch and the
plain values it makes of the answers, the quality rules as queries among them. No I/O here;
``api.repository`` sends them through ``common.tweet_store``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from common.errors import TransientError
from gateway.api.quality_report import QualityCounts
from gateway.api.query import TweetQuery
from gateway.quality import CONFLICTS, POLARITIES, QualityThresholds

TASKS = ("emotion", "stance")
# Label-only documents (a label that arrived before its tweet) have no created_at.
HAS_TWEET = {"exists": {"field": "created_at"}}
PAGE_SORT = [{"created_at": "asc"}, {"id": "asc"}]


def tweets_filter(query: TweetQuery) -> list[dict[str, Any]]:
    """The bool ``filter`` clauses of a tweet query."""
    clauses: list[dict[str, Any]] = [HAS_TWEET]
    window = query.window
    if window.start is not None or window.end is not None:
        bounds: dict[str, str] = {}
        if window.start is not None:
            bounds["gte"] = window.start.isoformat()
        if window.end is not None:
            bounds["lte" if window.end_inclusive else "lt"] = window.end.isoformat()
        clauses.append({"range": {"created_at": bounds}})
    if query.emotion is not None:
        clauses.append({"term": {"emotion.label": query.emotion}})
    if query.stance is not None:
        clauses.append({"term": {"stance.label": query.stance}})
    if query.stance_target is not None:
        clauses.append({"term": {"stance.target": query.stance_target}})
    if query.min_valence is not None or query.max_valence is not None:
        valence: dict[str, float] = {}
        if query.min_valence is not None:
            valence["gte"] = query.min_valence
        if query.max_valence is not None:
            valence["lte"] = query.max_valence
        clauses.append({"range": {"emotion.valence": valence}})
    return clauses


def page_search(query: TweetQuery) -> dict[str, Any]:
    """One page of ``GET /tweets``: one hit more than the limit tells whether another page follows."""
    body: dict[str, Any] = {
        "query": {"bool": {"filter": tweets_filter(query)}},
        "sort": PAGE_SORT,
        "size": query.limit + 1,
        "track_total_hits": True,
    }
    if query.after is not None:
        body["search_after"] = [query.after.created_at_millis, query.after.tweet_id]
    return body


def labelling_search(task: str, query: TweetQuery, *, force: bool, target: str | None) -> dict[str, Any]:
    """Tweets in the window, oldest first; only those without a ``task`` label unless forced.

    With a stance ``target``: only those without a stance label toward that target.
    """
    must_not: list[dict[str, Any]] = []
    if not force and target is not None:
        must_not.append({"term": {f"{task}.target": target}})
    elif not force:
        must_not.append({"exists": {"field": f"{task}.label"}})
    return {
        "query": {"bool": {"filter": tweets_filter(query), "must_not": must_not}},
        "sort": PAGE_SORT,
        "size": query.limit,
        "track_total_hits": False,
    }


def labelled_by_job(task: str, job_id: str) -> dict[str, Any]:
    return {"bool": {"filter": [HAS_TWEET, {"term": {f"{task}.job_id": job_id}}]}}


# ---- the quality rules as queries (gateway.quality.document_quality, judged where read) ------


def _range(field: str, **bounds: float) -> dict[str, Any]:
    return {"range": {field: bounds}}


def _all(*clauses: dict[str, Any]) -> dict[str, Any]:
    return {"bool": {"filter": list(clauses)}}


def _any(*clauses: dict[str, Any]) -> dict[str, Any]:
    return {"bool": {"should": list(clauses), "minimum_should_match": 1}}


def polarity_query(field: str, band: float, polarity: str) -> dict[str, Any]:
    """Documents whose ``field`` has this polarity (``gateway.quality.polarity``)."""
    if polarity == "positive":
        return _range(field, gte=band)
    if polarity == "negative":
        return _range(field, lte=-band)
    return _range(field, gt=-band, lt=band)


def _lexicon(t: QualityThresholds, polarity: str) -> dict[str, Any]:
    return polarity_query("lexicon.compound", t.lexicon_band, polarity)


def _valence(t: QualityThresholds, polarity: str) -> dict[str, Any]:
    return polarity_query("emotion.valence", t.valence_band, polarity)


def flag_queries(t: QualityThresholds) -> dict[str, dict[str, Any]]:
    """One query per flag of :data:`gateway.quality.FLAGS`: the documents carrying it."""
    confident = [_range("emotion.score", gte=t.emotion_min_score), _range("stance.score", gte=t.stance_min_score)]
    pairs = [_all({"term": {"emotion.label": e}}, {"term": {"stance.label": s}}) for e, s in CONFLICTS]
    return {
        "lexicon_disagrees": _any(
            _all(_lexicon(t, "positive"), _valence(t, "negative")),
            _all(_lexicon(t, "negative"), _valence(t, "positive")),
        ),
        "low_confidence_emotion": _range("emotion.score", lt=t.emotion_min_score),
        "low_confidence_stance": _range("stance.score", lt=t.stance_min_score),
        "emotion_stance_conflict": _all(*confident, _any(*pairs)),
    }


def lexicon_agrees_queries(t: QualityThresholds) -> dict[str, dict[str, Any]]:
    """``lexicon_agrees`` true / false: both polarities known, and the same or not."""
    agree = _any(*(_all(_lexicon(t, p), _valence(t, p)) for p in POLARITIES))
    both = [{"exists": {"field": "lexicon.compound"}}, {"exists": {"field": "emotion.valence"}}]
    return {"true": agree, "false": {"bool": {"filter": both, "must_not": [agree]}}}


HAS_LABEL = _any(*({"exists": {"field": f"{task}.label"}} for task in TASKS))


# ---- GET /quality -----------------------------------------------------------------------


def _window(start: datetime | None, end: datetime | None) -> dict[str, Any]:
    bounds = {k: v.isoformat() for k, v in (("gte", start), ("lt", end)) if v is not None}
    return {"range": {"created_at": bounds}} if bounds else {"match_all": {}}


def quality_search(
    t: QualityThresholds, *, baseline_start: datetime | None, baseline_end: datetime | None
) -> dict[str, Any]:
    """The aggregates behind ``GET /quality``, over every indexed tweet."""
    lexicon = {p: _lexicon(t, p) for p in POLARITIES}
    aggs: dict[str, Any] = {
        "checked": {"filter": HAS_LABEL},
        "flags": {"filters": {"filters": flag_queries(t)}},
        "lexicon_agrees": {"filters": {"filters": lexicon_agrees_queries(t)}},
        "label_vs_lexicon": {
            "terms": {"field": "emotion.label", "size": 20},
            "aggs": {"lexicon": {"filters": {"filters": lexicon}}},
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
    return {"query": {"bool": {"filter": [HAS_TWEET]}}, "size": 0, "aggs": aggs, "track_total_hits": True}


def _buckets(agg: dict[str, Any]) -> list[dict[str, Any]]:
    buckets: list[dict[str, Any]] = agg.get("buckets", [])
    return buckets


def _label_counts(agg: dict[str, Any]) -> dict[str, int]:
    return {str(b["key"]): int(b["doc_count"]) for b in _buckets(agg)}


def _filter_counts(agg: dict[str, Any]) -> dict[str, int]:
    """A ``filters`` aggregation's counts by filter name, the empty ones left out."""
    buckets: dict[str, dict[str, Any]] = agg.get("buckets", {})
    return {name: int(b["doc_count"]) for name, b in buckets.items() if b["doc_count"]}


def quality_counts(response: dict[str, Any]) -> QualityCounts:
    """The answer to :func:`quality_search` as plain counts."""
    a = response["aggregations"]
    counts = QualityCounts(
        documents=int(response["hits"]["total"]["value"]),
        checked=int(a["checked"]["doc_count"]),
        flags=_filter_counts(a["flags"]),
        lexicon_agrees={name == "true": n for name, n in _filter_counts(a["lexicon_agrees"]).items()},
        label_vs_lexicon={
            (str(b["key"]), polarity): n
            for b in _buckets(a["label_vs_lexicon"])
            for polarity, n in _filter_counts(b["lexicon"]).items()
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


# ---- /review ----------------------------------------------------------------------------


def review_strata(
    emotion_labels: Sequence[str], stance_labels: Sequence[str], t: QualityThresholds
) -> list[tuple[str, dict[str, Any]]]:
    """The review sample's strata, flagged and low-confidence first so they get their own picks."""
    flags = flag_queries(t)
    strata: list[tuple[str, dict[str, Any]]] = [
        ("flagged", _any(flags["lexicon_disagrees"], flags["emotion_stance_conflict"])),
        ("low confidence", _any(flags["low_confidence_emotion"], flags["low_confidence_stance"])),
    ]
    strata += [(f"emotion: {label}", {"term": {"emotion.label": label}}) for label in emotion_labels]
    strata += [(f"stance: {label}", {"term": {"stance.label": label}}) for label in stance_labels]
    return strata


def sample_searches(
    index: str, strata: Sequence[tuple[str, dict[str, Any]]], *, seed: int, per_stratum: int, status: str
) -> list[dict[str, Any]]:
    """One seeded random search per stratum (an msearch body), drawing enough to skip repeats."""
    review = {"pending": {"must_not": [{"exists": {"field": "review.status"}}]}}
    review["reviewed"] = {"filter": [{"exists": {"field": "review.status"}}]}
    searches: list[dict[str, Any]] = []
    for _, clause in strata:
        query: dict[str, Any] = {"bool": {"filter": [HAS_TWEET, clause]}}
        for key, clauses in review.get(status, {}).items():
            query["bool"].setdefault(key, []).extend(clauses)
        scored = {"function_score": {"query": query, "random_score": {"seed": seed, "field": "id"}}}
        body = {"query": scored, "size": per_stratum * (len(strata) + 1), "sort": ["_score", {"id": "asc"}]}
        searches += [{"index": index}, body]
    return searches


def drawn(
    strata: Sequence[tuple[str, dict[str, Any]]], responses: Sequence[dict[str, Any]], per_stratum: int
) -> list[tuple[str, dict[str, Any]]]:
    """Up to ``per_stratum`` documents per stratum, a tweet drawn by an earlier stratum not
    repeated: (stratum, _source). A stratum's failed search fails the sample, as transient."""
    out: list[tuple[str, dict[str, Any]]] = []
    seen: set[str] = set()
    for (name, _), result in zip(strata, responses, strict=True):
        if "error" in result:
            raise TransientError(f"review sample failed: {str(result['error'])[:300]}")
        fresh = [h["_source"] for h in result["hits"]["hits"] if h["_id"] not in seen][:per_stratum]
        seen.update(s["id"] for s in fresh)
        out += [(name, source) for source in fresh]
    return out


def reviewed_search(page_size: int, after: list[Any] | None) -> dict[str, Any]:
    """One page of every reviewed tweet, in id order (search_after: no scroll context left open)."""
    body: dict[str, Any] = {
        "query": {"bool": {"filter": [HAS_TWEET, {"exists": {"field": "review.status"}}]}},
        "sort": [{"id": "asc"}],
        "size": page_size,
        "_source": ["id", "text", "review", "emotion.label", "stance.label"],
    }
    if after is not None:
        body["search_after"] = after
    return body
