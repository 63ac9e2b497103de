"""The pure parts of the Elasticsearch adapter: the mappings and the filter clauses; no server."""

from __future__ import annotations

from gateway import query
from gateway.search import JOBS_MAPPING, TWEETS_MAPPING, tweets_filter


def test_stance_target_is_a_keyword_of_the_stance_label_and_of_the_job() -> None:
    stance = TWEETS_MAPPING["properties"]["stance"]["properties"]
    assert stance["target"] == {"type": "keyword"}
    assert "target" not in TWEETS_MAPPING["properties"]["emotion"]["properties"]
    assert JOBS_MAPPING["properties"]["target"] == {"type": "keyword"}


def test_stance_target_filter_is_an_exact_term_beside_the_label() -> None:
    clauses = tweets_filter(query.tweet_query(limit=10, stance="oppose", stance_target="  the budget "))
    assert {"term": {"stance.target": "the budget"}} in clauses
    assert {"term": {"stance.label": "OPPOSE"}} in clauses
    assert not any("stance.target" in str(c) for c in tweets_filter(query.tweet_query(limit=10, stance_target=" ")))
