"""The real Gemma 3 270M GGUF from PyPI, loaded once for the stance tests marked ``model``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from stance.llama_scorer import load_llama
from stance.model_files import packaged_gemma_gguf

if TYPE_CHECKING:
    from llama_cpp import Llama


@pytest.fixture(scope="session")
def llm() -> Iterator[Llama]:
    model = load_llama(packaged_gemma_gguf(), n_ctx=1024, n_threads=2, n_batch=512)
    yield model
    model.close()
