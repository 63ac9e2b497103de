"""Test-only entry point: the real emotion service whose model raises on a marker text.

``python -m tests.support.poison_emotion`` runs ``emotion.main.main`` unchanged, with the loaded
classifier wrapped so that any batch holding a text that contains ``$POISON_MARKER`` raises,
as a model bug on one input would. The variable is read only here: production code carries
no test hook. Used by the fault suite (tests/e2e/test_faults.py).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import emotion.main as service


class PoisonedClassifier:
    def __init__(self, inner: Any, marker: str) -> None:
        self._inner = inner
        self._marker = marker

    def __getattr__(self, name: str) -> Any:  # model_id, revision, ...
        return getattr(self._inner, name)

    def classify(self, texts: Sequence[str]) -> Any:
        if any(self._marker in text for text in texts):
            raise RuntimeError(f"inference failed on an input containing {self._marker!r}")
        return self._inner.classify(texts)


def main() -> None:
    marker = os.environ["POISON_MARKER"]
    load = service.load_classifier
    service.load_classifier = lambda settings: PoisonedClassifier(load(settings), marker)  # type: ignore[assignment,return-value]
    service.main()


if __name__ == "__main__":
    main()
