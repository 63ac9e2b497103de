"""The probe method with the real Gemma 3 270M GGUF and MiniLM from PyPI (marker ``model``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from common.errors import ConfigurationError
from common.events import STANCE_LABELS
from stance.head import LinearHead, fit_softmax_regression
from stance.llama_scorer import LlamaCppScorer
from stance.model import packaged_gemma_gguf
from stance.probe_scorer import DEFAULT_HEAD_PATH, ProbeScorer, choose_local_scorer, head_matches

if TYPE_CHECKING:
    from llama_cpp import Llama

pytestmark = pytest.mark.model

TWEETS = [
    "So glad the city finally reopened the public pool. Best summer news!",
    "Another fare hike for a bus that never comes. No thanks.",
    "The library board meets Monday at 5pm.",
]


@pytest.fixture(scope="module")
def base(llm: Llama) -> LlamaCppScorer:
    return LlamaCppScorer(llm, packaged_gemma_gguf().name, "v4", calibrate=True)


def test_features_hold_a_hidden_state_and_the_label_scoring_distribution(base: LlamaCppScorer) -> None:
    for text in TWEETS:
        features = base.features(text)
        scored = base.raw_distribution(text)
        assert features.hidden.shape == (base.hidden_size,) and np.isfinite(features.hidden).all()
        # The cue's last token is decoded on its own (embeddings on), and llama.cpp's quantised
        # kernels round differently per batch shape: measured up to 0.055 apart on these tweets.
        assert all(abs(features.probabilities[label] - scored[label]) < 0.1 for label in STANCE_LABELS)


def test_auto_serves_the_shipped_head_and_names_model_prompt_and_method(base: LlamaCppScorer) -> None:
    scorer = choose_local_scorer(base, "auto", DEFAULT_HEAD_PATH, threads=1)
    assert isinstance(scorer, ProbeScorer)
    assert scorer.method.startswith("probe-") and scorer.prompt_version == "v4"
    assert scorer.model.startswith(base.model)
    for score in scorer.score_texts(TWEETS):
        assert set(score.probabilities) == set(STANCE_LABELS)
        assert math.isclose(sum(score.probabilities.values()), 1.0, abs_tol=1e-6)
        assert score.label == max(score.probabilities, key=score.probabilities.__getitem__)


def _head_for(model: str, base: LlamaCppScorer, path: Path) -> Path:
    rows = np.zeros((3, base.hidden_size + len(STANCE_LABELS)))
    rows[np.arange(3), np.arange(3)] = 1.0
    meta = {"model": model, "hidden_size": base.hidden_size, "prompt_version": "v4",
            "features": ["hidden", "label_logprobs"], "version": "t"}
    fit_softmax_regression(rows, list(STANCE_LABELS), l2=0.1, steps=5, meta=meta).save(path)
    return path


def test_a_head_trained_for_another_gguf_is_not_used(base: LlamaCppScorer, tmp_path: Path) -> None:
    other = _head_for("tinyllama.gguf", base, tmp_path / "other.npz")
    assert head_matches(LinearHead.load(other), base.model, base.hidden_size, "v4") is not None
    assert choose_local_scorer(base, "auto", other, threads=1) is base
    assert choose_local_scorer(base, "auto", tmp_path / "missing.npz", threads=1) is base
    assert choose_local_scorer(base, "label-scoring", DEFAULT_HEAD_PATH, threads=1) is base
    with pytest.raises(ConfigurationError, match="cannot serve"):
        choose_local_scorer(base, "probe", other, threads=1)


def test_a_gguf_only_head_needs_no_encoder(base: LlamaCppScorer, tmp_path: Path) -> None:
    scorer = choose_local_scorer(base, "probe", _head_for(base.model, base, tmp_path / "own.npz"), threads=1)
    assert isinstance(scorer, ProbeScorer) and scorer.model == base.model and scorer.method == "probe-t"
    assert len(scorer.score_texts(TWEETS)) == 3
