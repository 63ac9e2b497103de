"""The API's query DSL as pure functions: the filter clauses and the quality rules as queries; no server."""

from __future__ import annotations

from gateway.api import query
from gateway.api.search import flag_queries, polarity_query, review_strata, tweets_filter
from gateway.quality import FLAGS, QualityThresholds


def test_stance_target_filter_is_an_exact_term_beside_the_label() -> None:
    filters = query.TweetFilters(limit=10, stance="oppose", stance_target="  the budget ")
    clauses = tweets_filter(query.tweet_query(filters))
    assert {"term": {"stance.target": "the budget"}} in clauses
    assert {"term": {"stance.label": "OPPOSE"}} in clauses
    blank = query.tweet_query(query.TweetFilters(limit=10, stance_target=" "))
    assert not any("stance.target" in str(c) for c in tweets_filter(blank))


def test_polarity_queries_split_the_line_as_polarity_does() -> None:
    # gateway.quality.polarity: >= band positive, <= -band negative, in between neutral
    assert polarity_query("f", 0.05, "positive") == {"range": {"f": {"gte": 0.05}}}
    assert polarity_query("f", 0.05, "negative") == {"range": {"f": {"lte": -0.05}}}
    assert polarity_query("f", 0.05, "neutral") == {"range": {"f": {"gt": -0.05, "lt": 0.05}}}


def test_one_query_per_flag_judged_by_the_configured_thresholds() -> None:
    t = QualityThresholds(emotion_min_score=0.6, stance_min_score=0.4)
    flags = flag_queries(t)
    assert tuple(flags) == FLAGS
    assert flags["low_confidence_emotion"] == {"range": {"emotion.score": {"lt": 0.6}}}
    assert flags["low_confidence_stance"] == {"range": {"stance.score": {"lt": 0.4}}}
    strata = dict(review_strata(["joy"], ["SUPPORT"], t))
    assert list(strata) == ["flagged", "low confidence", "emotion: joy", "stance: SUPPORT"]
    assert flags["low_confidence_emotion"] in strata["low confidence"]["bool"]["should"]
    assert flags["emotion_stance_conflict"] in strata["flagged"]["bool"]["should"]
