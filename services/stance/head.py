"""A small trained head: multinomial logistic regression over features the LLM computes.

A ``common.linear_head.LinearHead`` (the math and the one ``.npz`` file) over the stance
labels. The service only loads heads: ``python -m training.stance_head`` fits them on
human-labelled real tweets (the fitting and folding algebra is in ``training/stance_probe.py``)
and writes them to the head cache (or ``services/stance/stance_head.npz`` for the shipped one).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np

from common.events import STANCE_LABELS
from common.linear_head import LinearHead

Array = np.ndarray


@dataclass(frozen=True)
class StanceHead(LinearHead):
    """The stance labels' head; ``logit_ids`` is set when it was folded onto logits: its
    features then start with the next-token logits at these token ids."""

    labels: tuple[str, ...] = STANCE_LABELS
    logit_ids: Array | None = None

    kind: ClassVar[str] = "stance head"

    @classmethod
    def load(cls, path: Path) -> Self:
        head = super().load(path)
        if set(head.labels) != set(STANCE_LABELS):
            raise ValueError(f"{path}: head labels {head.labels} are not {STANCE_LABELS}")
        return head

    def _extra_arrays(self) -> dict[str, Array]:
        return {} if self.logit_ids is None else {"logit_ids": self.logit_ids.astype(np.int32)}

    @classmethod
    def _extra_fields(cls, arrays: Mapping[str, Array]) -> dict[str, Any]:
        ids = arrays.get("logit_ids")
        return {"logit_ids": None if ids is None else ids.astype(np.int64)}
