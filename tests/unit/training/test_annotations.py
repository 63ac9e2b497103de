"""The annotated stance set: its texts resolve, its agreement figures recompute, its subset is there."""

from __future__ import annotations

import pytest

from training.annotations import cohen_kappa, read_annotated


def test_cohen_kappa_on_hand_computed_cases() -> None:
    assert cohen_kappa(["a", "b", "a", "b"], ["a", "b", "a", "b"]) == 1.0
    # p_o = 0.5, p_e = 0.5 -> 0
    assert cohen_kappa(["a", "a", "b", "b"], ["a", "b", "a", "b"]) == 0.0
    # p_o = 0.75, p_e = (3*2 + 1*2) / 16 = 0.5 -> 0.5
    assert cohen_kappa(["a", "a", "a", "b"], ["a", "a", "b", "b"]) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        cohen_kappa(["a"], [])


def test_the_shipped_set_resolves_every_text_and_has_what_the_guideline_promises() -> None:
    tweets = read_annotated()  # joins the public texts and checks each one's hash
    assert len(tweets) >= 800 and all(t.text for t in tweets)
    assert {t.split for t in tweets} == {"train", "dev"}
    assert sum(t.stance_differs_from_tone for t in tweets) >= 150
    disagreements = [t for t in tweets if t.passes[0] != t.passes[1]]
    assert disagreements, "two independent passes disagree somewhere"
    # agreements stand as they were; adjudication only decides the disagreements
    agreed = [t for t in tweets if t.passes[0] == t.passes[1]]
    assert all((t.stance, t.tone) == t.passes[0] for t in agreed)
    assert cohen_kappa([t.passes[0][0] for t in tweets], [t.passes[1][0] for t in tweets]) > 0.6
