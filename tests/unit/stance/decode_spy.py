"""Counts what a llama context decodes: the tests that check each tweet is decoded once."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from llama_cpp import Llama


def spy_on_decodes(llm: Llama, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """From now on, the length of every token batch ``llm.eval`` is given, in order."""
    evaluated: list[int] = []
    real_eval = llm.eval

    def spy(tokens: list[int]) -> None:
        evaluated.append(len(tokens))
        real_eval(tokens)

    monkeypatch.setattr(llm, "eval", spy)
    return evaluated
