"""The trained MiniLM emotion head: the shipped file, its loader and the production path."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from common.errors import ModelUnavailableError
from common.events import EMOTION_LABELS
from emotion.head import DEFAULT_HEAD_PATH, HEAD_FORMAT, EmotionHead, short_sha256
from emotion.logic import valence_map_for
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
        assert sorted(row) == sorted(EMOTION_LABELS)
        assert sum(row.values()) == pytest.approx(1.0, abs=1e-5)
    assert max(happy, key=happy.__getitem__) == "joy"
    assert max(angry, key=angry.__getitem__) == "anger"
    assert max(sad, key=sad.__getitem__) == "sadness"
    mapping = valence_map_for(classifier)
    assert mapping == head.valence_map
    assert mapping.valence(happy) > 0 > mapping.valence(angry)
    assert mapping.sentiment(happy)[0] == "positive"
