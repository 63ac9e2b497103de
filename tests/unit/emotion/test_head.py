"""The trained MiniLM emotion head: the shipped file, its loader and the production path."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from common.errors import ModelUnavailableError
from common.events import EMOTION_LABELS
from common.linear_head import LinearHead
from emotion.head import DEFAULT_HEAD_PATH, HEAD_FORMAT, EmotionHead, short_sha256
from emotion.logic import SENTIMENT_KEYS, SENTIMENT_LABELS, ClassifierSentiment, valence_map_for
from emotion.model import load_classifier
from emotion.settings import EmotionSettings


def _tiny_head(**changes: object) -> EmotionHead:
    d = 4
    fields: dict[str, object] = {
        "weights": np.zeros((d, 7)),
        "bias": np.arange(7, dtype=float),
        "mean": np.zeros(d),
        "scale": np.ones(d),
        "temperature": 1.5,
        "labels": tuple(EMOTION_LABELS),
        "meta": {"version": "t1", "features": {"layers": [6], "dimensions": d}},
    }
    fields.update(changes)
    return EmotionHead(**fields)  # type: ignore[arg-type]


def _sentiment_block(d: int = 4, **changes: object) -> LinearHead:
    fields: dict[str, object] = {
        "mean": np.zeros(d),
        "scale": np.ones(d),
        "weights": np.arange(d * 3, dtype=float).reshape(d, 3) / 10,
        "bias": np.array([0.5, 0.0, -0.5]),
        "labels": SENTIMENT_LABELS,
        "meta": {"fitted_on": "tweeteval_sentiment_val.csv", "cv_macro_recall": 0.6},
    }
    fields.update(changes)
    return LinearHead(**fields)  # type: ignore[arg-type]


def test_shipped_head_meta_matches_what_the_loader_expects() -> None:
    from training.emotion_head import HEAD_VERSION

    head = EmotionHead.load(DEFAULT_HEAD_PATH)
    assert head.version == HEAD_VERSION
    assert head.meta["format"] == HEAD_FORMAT
    assert sorted(head.labels) == sorted(EMOTION_LABELS)
    assert all(0 <= n <= 6 for n in head.layers)
    assert head.n_features == 384 * len(head.layers) == head.meta["features"]["dimensions"]
    assert head.temperature > 0
    assert head.meta["settings"] and head.meta["dev"]["goemotions_dev_macro_f1"] > 0
    assert head.valence_map is not None and head.valence_map.fitted
    assert head.valence_map.meta["model"].endswith(f"+emotion-head-{HEAD_VERSION}")
    assert head.sentiment is not None and head.sentiment.labels == SENTIMENT_LABELS
    assert head.sentiment.n_features == head.n_features
    assert head.sentiment.meta["fitted_on"] == "tweeteval_sentiment_val.csv"
    assert head.sentiment.meta["model"].endswith(f"+emotion-head-{HEAD_VERSION}")
    assert head.meta["dev"]["sentiment_nested_cv_macro_recall"] == head.sentiment.meta["cv_macro_recall"]
    assert DEFAULT_HEAD_PATH.stat().st_size < 200_000


def test_the_shipped_file_saves_back_to_the_same_arrays(tmp_path: Path) -> None:
    """The file format is unchanged: every array of the shipped head, saved again, is the same bytes."""
    EmotionHead.load(DEFAULT_HEAD_PATH).save(tmp_path / "again.npz")
    with zipfile.ZipFile(DEFAULT_HEAD_PATH) as shipped, zipfile.ZipFile(tmp_path / "again.npz") as again:
        assert sorted(shipped.namelist()) == sorted(again.namelist())
        assert all(shipped.read(name) == again.read(name) for name in shipped.namelist())


def test_head_round_trips_and_applies_its_temperature(tmp_path: Path) -> None:
    head = _tiny_head()
    head.save(tmp_path / "h.npz")
    again = EmotionHead.load(tmp_path / "h.npz")
    x = np.ones((2, 4))
    assert np.allclose(again.probabilities(x), head.probabilities(x))
    assert np.allclose(again.logits(x), again.raw_logits(x) / 1.5)
    assert again.probabilities(x).sum(axis=1) == pytest.approx([1.0, 1.0])
    assert again.sentiment is None


def test_a_sentiment_block_round_trips_with_its_meta(tmp_path: Path) -> None:
    head = _tiny_head(sentiment=_sentiment_block())
    head.save(tmp_path / "h.npz")
    again = EmotionHead.load(tmp_path / "h.npz")
    assert again.sentiment is not None and head.sentiment is not None
    x = np.array([[1.0, 0.0, 2.0, -1.0]])
    assert np.allclose(again.sentiment.probabilities(x), head.sentiment.probabilities(x))
    assert again.sentiment.labels == SENTIMENT_LABELS
    assert again.sentiment.meta == head.sentiment.meta


@pytest.mark.parametrize(
    "block",
    [
        _sentiment_block(weights=np.zeros((4, 2))),
        _sentiment_block(d=5),
        _sentiment_block(bias=np.array([np.nan, 0.0, 0.0])),
    ],
    ids=["two-classes", "other-feature-count", "not-finite"],
)
def test_a_sentiment_block_that_does_not_fit_the_head_fails_clearly(tmp_path: Path, block: LinearHead) -> None:
    path = tmp_path / "bad.npz"
    _tiny_head(sentiment=block).save(path)
    with pytest.raises(ModelUnavailableError, match="sentiment block"):
        EmotionHead.load(path)


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"labels": ("a", "b", "c", "d", "e", "f", "g")}, "seven emotions"),
        ({"temperature": 0.0}, "not positive"),
        ({"bias": np.zeros(3)}, "do not fit"),
        ({"meta": {"version": "t1", "features": {"layers": [6], "dimensions": 99}}}, "feature count"),
        ({"meta": {"features": {"layers": [6], "dimensions": 4}}}, "version"),
    ],
)
def test_inconsistent_head_file_fails_clearly(tmp_path: Path, changes: dict[str, object], why: str) -> None:
    path = tmp_path / "bad.npz"
    _tiny_head(**changes).save(path)
    with pytest.raises(ModelUnavailableError, match=why) as info:
        EmotionHead.load(path)
    assert "training.emotion_head" in str(info.value)


def test_unreadable_or_missing_head_file_fails_through_the_service_loader(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file")
    with pytest.raises(ModelUnavailableError, match="not a valid emotion head file"):
        load_classifier(EmotionSettings(backend="minilm-head", head_path=garbage))
    with pytest.raises(ModelUnavailableError, match="does not exist"):
        load_classifier(EmotionSettings(backend="minilm-head", head_path=tmp_path / "absent.npz"))


@pytest.mark.model
def test_head_classifies_through_the_production_path_and_names_its_weights() -> None:
    classifier = load_classifier(EmotionSettings(backend="minilm-head"))
    head = EmotionHead.load(DEFAULT_HEAD_PATH)
    assert classifier.model_id == f"sentence-transformers/all-MiniLM-L6-v2+emotion-head-{head.version}"
    assert classifier.revision is not None
    assert f"emotion-head-{head.version}+sha256:{short_sha256(DEFAULT_HEAD_PATH)}" in classifier.revision
    happy, angry, sad, plain = classifier.classify(
        [
            "I am so happy today, best day ever!",
            "I hate this, it makes me furious",
            "I miss her so much, I cried all night",
            "The meeting is moved to 3pm on Tuesday.",
        ]
    )
    for row in (happy, angry, sad, plain):
        assert sorted(row) == sorted([*EMOTION_LABELS, *SENTIMENT_KEYS])
        assert sum(row[label] for label in EMOTION_LABELS) == pytest.approx(1.0, abs=1e-5)
        assert sum(row[key] for key in SENTIMENT_KEYS) == pytest.approx(1.0, abs=1e-5)
    assert max(EMOTION_LABELS, key=happy.__getitem__) == "joy"
    assert max(EMOTION_LABELS, key=angry.__getitem__) == "anger"
    assert max(EMOTION_LABELS, key=sad.__getitem__) == "sadness"
    mapping = valence_map_for(classifier)
    assert isinstance(mapping, ClassifierSentiment) and mapping.meta == head.sentiment.meta  # type: ignore[union-attr]
    assert mapping.valence(happy) > 0 > mapping.valence(angry)
    assert mapping.sentiment(happy)[0] == "positive"
    assert mapping.sentiment(angry)[0] == "negative"


@pytest.mark.model
def test_an_explicit_valence_map_file_wins_over_the_heads_sentiment_block(tmp_path: Path) -> None:
    from emotion.head import save_valence_map
    from emotion.logic import ValenceMap

    head = EmotionHead.load(DEFAULT_HEAD_PATH)
    model_id = f"sentence-transformers/all-MiniLM-L6-v2+emotion-head-{head.version}"
    explicit = ValenceMap(name="mine", meta={"model": model_id})
    save_valence_map(explicit, tmp_path / "map.json")
    classifier = load_classifier(EmotionSettings(backend="minilm-head", valence_map_path=tmp_path / "map.json"))
    assert valence_map_for(classifier) == explicit
