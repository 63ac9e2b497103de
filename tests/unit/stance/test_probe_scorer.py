"""The probe method with the real Gemma 3 270M GGUF and MiniLM from PyPI (marker ``model``)."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from common.errors import ConfigurationError
from common.events import STANCE_LABELS
from stance.head import StanceHead
from stance.llama_scorer import LlamaCppScorer
from stance.model_files import gguf_sha256, packaged_gemma_gguf
from stance.probe_scorer import DEFAULT_HEAD_PATH, ProbeScorer, choose_local_scorer, head_matches
from stance.scorer import ScorerIdentity
from tests.unit.stance.decode_spy import spy_on_decodes
from training.stance_probe import fit_logit_map, fit_softmax_regression, recover_hidden

if TYPE_CHECKING:
    from llama_cpp import Llama

pytestmark = pytest.mark.model

TWEETS = [
    "So glad the city finally reopened the public pool. Best summer news!",
    "Another fare hike for a bus that never comes. No thanks.",
    "The library board meets Monday at 5pm.",
]
# The head shipped before it was folded onto logits: it reads the hidden state (two decodes).
H1_HEAD = Path(__file__).resolve().parent / "data" / "stance_head_h1.npz"
# h1 folded onto logits (prompt v4, self-written training data): served before h3.
H2_HEAD = Path(__file__).resolve().parent / "data" / "stance_head_h2.npz"
TRAIN_CSV = Path(__file__).resolve().parents[3] / "data" / "labelled" / "stance_train.csv"


@pytest.fixture(scope="module")
def base(llm: Llama) -> LlamaCppScorer:
    return LlamaCppScorer(llm, ScorerIdentity(packaged_gemma_gguf().name, "v4"), calibrate=True)


def test_features_hold_a_hidden_state_and_the_label_scoring_distribution(base: LlamaCppScorer) -> None:
    for text in TWEETS:
        features = base.features(text)
        scored = base.raw_distribution(text)
        assert features.hidden.shape == (base.hidden_size,) and np.isfinite(features.hidden).all()
        # The cue's last token is decoded on its own (embeddings on), and llama.cpp's quantised
        # kernels round differently per batch shape: measured up to 0.055 apart on these tweets.
        assert all(abs(features.probabilities[label] - scored[label]) < 0.1 for label in STANCE_LABELS)


def test_auto_serves_a_fitting_head_and_names_model_prompt_and_method(base: LlamaCppScorer) -> None:
    scorer = choose_local_scorer(base, "auto", H2_HEAD, threads=1)
    assert isinstance(scorer, ProbeScorer)
    assert scorer.method.startswith("probe-") and scorer.identity.prompt_version == "v4"
    assert scorer.identity.model.startswith(base.identity.model)
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
    assert head_matches(StanceHead.load(other), base.identity.model, base.hidden_size, "v4") is not None
    assert choose_local_scorer(base, "auto", other, threads=1) is base
    assert choose_local_scorer(base, "auto", tmp_path / "missing.npz", threads=1) is base
    assert choose_local_scorer(base, "label-scoring", H2_HEAD, threads=1) is base
    with pytest.raises(ConfigurationError, match="can serve"):
        choose_local_scorer(base, "probe", other, threads=1)


def test_a_gguf_only_head_needs_no_encoder(base: LlamaCppScorer, tmp_path: Path) -> None:
    model = base.identity.model
    scorer = choose_local_scorer(base, "probe", _head_for(model, base, tmp_path / "own.npz"), threads=1)
    assert isinstance(scorer, ProbeScorer) and scorer.identity.model == model and scorer.method == "probe-t"
    assert len(scorer.score_texts(TWEETS)) == 3


def test_the_folded_h2_head_decodes_each_tweet_once(
    base: LlamaCppScorer, llm: Llama, monkeypatch: pytest.MonkeyPatch
) -> None:
    scorer = choose_local_scorer(base, "probe", H2_HEAD, threads=1)
    assert isinstance(scorer, ProbeScorer) and scorer.method == "probe-h2"
    scorer.score_texts(TWEETS[:1])  # the prefix is (re-)evaluated here
    evaluated = spy_on_decodes(llm, monkeypatch)
    scorer.score_texts(TWEETS[1:])
    assert evaluated == [len(base.tweet_tokens(text)) for text in TWEETS[1:]]


def test_an_old_hidden_state_head_still_serves_with_a_second_one_token_decode(
    base: LlamaCppScorer, llm: Llama, monkeypatch: pytest.MonkeyPatch
) -> None:
    scorer = choose_local_scorer(base, "probe", H1_HEAD, threads=1)
    assert isinstance(scorer, ProbeScorer) and scorer.method == "probe-h1"
    scorer.score_texts(TWEETS[:1])
    evaluated = spy_on_decodes(llm, monkeypatch)
    scorer.score_texts(TWEETS[1:])
    assert evaluated == [n for text in TWEETS[1:] for n in (len(base.tweet_tokens(text)) - 1, 1)]


@pytest.fixture(scope="module")
def logit_map(base: LlamaCppScorer) -> tuple[np.ndarray, np.ndarray]:
    """The shipped head's logit ids and their map, refitted from 40 training tweets (~840 rows)."""
    with TRAIN_CSV.open(newline="") as handle:
        texts = [row["text"] for row in csv.DictReader(handle)][:40]
    ids = StanceHead.load(H2_HEAD).logit_ids
    assert ids is not None
    hidden, logits = base.calibration_rows(texts, ids)
    return ids, fit_logit_map(hidden, logits)


def test_the_hidden_state_is_recovered_from_the_single_decodes_logits(
    base: LlamaCppScorer, logit_map: tuple[np.ndarray, np.ndarray]
) -> None:
    ids, mapping = logit_map
    for text in TWEETS:
        recovered = recover_hidden(mapping, base.logit_features(text, ids).logits)[0]
        same_decode = base.calibration_rows([text], ids)[0][-1]  # the same decode, embeddings on
        # llama.cpp rounds the hidden state to 8 bits inside the lm_head matmul: measured 1.0-1.1 %.
        assert np.linalg.norm(recovered - same_decode) / np.linalg.norm(same_decode) < 0.03
        # The two-decode path's hidden state also differs by the batch shape: measured <= 4.3 %.
        two_decodes = base.features(text).hidden
        assert np.linalg.norm(recovered - two_decodes) / np.linalg.norm(two_decodes) < 0.08


def test_the_folded_head_labels_agree_with_the_two_decode_head(base: LlamaCppScorer) -> None:
    texts = [
        *TWEETS,
        "Absolutely love the new library hours, thank you council!",
        "This merger is a disaster for customers and everyone knows it.",
    ]
    old = choose_local_scorer(base, "probe", H1_HEAD, threads=1).score_texts(texts)  # type: ignore[attr-defined]
    new = choose_local_scorer(base, "probe", H2_HEAD, threads=1).score_texts(texts)  # type: ignore[attr-defined]
    for two_decodes, one_decode in zip(old, new, strict=True):
        assert one_decode.label == two_decodes.label
        # Measured on 404 dev + test tweets: up to 0.26 apart on near-ties (9 labels flipped).
        assert all(abs(one_decode.probabilities[k] - two_decodes.probabilities[k]) < 0.15 for k in STANCE_LABELS)


@pytest.fixture(scope="module")
def base_v5(llm: Llama) -> LlamaCppScorer:
    return LlamaCppScorer(llm, ScorerIdentity(packaged_gemma_gguf().name, "v5"), calibrate=False)


def test_the_shipped_head_serves_its_gguf_with_the_target_and_decodes_each_tweet_once(
    base_v5: LlamaCppScorer, llm: Llama, monkeypatch: pytest.MonkeyPatch
) -> None:
    sha = gguf_sha256(packaged_gemma_gguf())
    assert StanceHead.load(DEFAULT_HEAD_PATH).meta["gguf_sha256"] == sha
    scorer = choose_local_scorer(base_v5, "auto", None, threads=1, gguf_sha256=sha)
    assert isinstance(scorer, ProbeScorer) and scorer.method == "probe-h3" and scorer.identity.prompt_version == "v5"
    tweet = "Hillary has fought for kids her whole career. Proud to vote for her."
    scorer.score_texts([tweet], "Hillary Clinton")  # the target's prefix is evaluated here
    evaluated = spy_on_decodes(llm, monkeypatch)
    named = scorer.score_texts([*TWEETS, tweet], "Hillary Clinton")
    assert evaluated == [len(base_v5.tweet_tokens(t, "Hillary Clinton")) for t in [*TWEETS, tweet]]
    assert all(math.isclose(sum(s.probabilities.values()), 1.0, abs_tol=1e-6) for s in named)
    other = scorer.score_texts([tweet], "Donald Trump")
    # the target is read twice: in the prompt's question and through the encoder's target vector
    assert other[0].probabilities != named[-1].probabilities


def test_a_head_fitted_for_another_gguf_is_refused_by_hash(base_v5: LlamaCppScorer) -> None:
    head = StanceHead.load(DEFAULT_HEAD_PATH)
    assert head_matches(head, base_v5.identity.model, base_v5.hidden_size, "v5", "0" * 64) is not None
    assert choose_local_scorer(base_v5, "auto", None, threads=1, gguf_sha256="0" * 64) is base_v5
    with pytest.raises(ConfigurationError, match="no stance head can serve"):
        choose_local_scorer(base_v5, "probe", None, threads=1, gguf_sha256="0" * 64)


def test_a_head_fitted_by_make_fit_stance_head_is_found_by_the_ggufs_hash(
    base_v5: LlamaCppScorer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataclasses import replace

    from stance.model_files import fitted_head_path

    monkeypatch.setenv("TWEETPIPE_HOME", str(tmp_path))
    sha = gguf_sha256(packaged_gemma_gguf())
    shipped = StanceHead.load(DEFAULT_HEAD_PATH)
    cached = fitted_head_path(sha, "v5")
    cached.parent.mkdir(parents=True, exist_ok=True)
    replace(shipped, meta={**shipped.meta, "version": "fitted-here"}).save(cached)
    scorer = choose_local_scorer(base_v5, "auto", None, threads=1, gguf_sha256=sha)
    assert isinstance(scorer, ProbeScorer) and scorer.method == "probe-fitted-here"
