"""What every stance scorer is built with: its identity (model, prompt version, default target)."""

from __future__ import annotations

from dataclasses import replace

from common.events import MAIN_SUBJECT
from stance.scorer import ScorerIdentity


def test_the_default_target_is_the_main_subject_or_the_configured_one_cleaned() -> None:
    assert ScorerIdentity("m.gguf", "v5").default_target == MAIN_SUBJECT
    identity = ScorerIdentity("m.gguf", "v5", "  the   new tax ")
    assert identity.default_target == "the new tax"
    assert replace(identity, model="m.gguf+minilm") == ScorerIdentity("m.gguf+minilm", "v5", "the new tax")


def test_a_call_asks_about_its_own_target_else_the_default() -> None:
    identity = ScorerIdentity("grok", "v3", "Measure B")
    assert identity.resolve_target(" Hillary  Clinton ") == "Hillary Clinton"
    assert identity.resolve_target(None) == identity.resolve_target("  ") == "Measure B"
