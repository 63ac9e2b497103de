"""The API's response models, built from stored documents; no server."""

from __future__ import annotations

from gateway.api.schemas import TweetPublic
from tests.unit.gateway.factories import emotion, stance, stored, tweet


def test_public_tweet_from_a_stored_document() -> None:
    source = stored(tweet(), emotion(), stance(), ingest_trace_id="d" * 32)
    public = TweetPublic.from_source(source, jaeger_ui_url="http://jaeger:16686/")
    assert public.id == "1790000000000000001"
    assert public.emotion is not None and public.emotion.scores == {"joy": 0.8, "anger": 0.2}
    assert public.emotion.valence == 0.6
    assert public.stance is not None and public.stance.label == "SUPPORT"
    assert public.stance.target is None
    targeted = TweetPublic.from_source(stored(tweet(), stance(target="main subject")), jaeger_ui_url="x")
    assert targeted.stance is not None and targeted.stance.target == "main subject"
    assert public.trace_url == "http://jaeger:16686/trace/" + "d" * 32
    assert TweetPublic.from_source(stored(tweet()), jaeger_ui_url="x").trace_url is None
