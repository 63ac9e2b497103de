"""The stance head files: the shipped ones load and save back unchanged."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from common.events import STANCE_LABELS
from stance.head import StanceHead
from stance.probe_scorer import DEFAULT_HEAD_PATH

DATA = Path(__file__).resolve().parent / "data"


@pytest.mark.parametrize("path", [DEFAULT_HEAD_PATH, DATA / "stance_head_h1.npz", DATA / "stance_head_h2.npz"],
                         ids=["shipped", "h1", "h2"])
def test_a_head_file_loads_and_saves_back_to_the_same_arrays(path: Path, tmp_path: Path) -> None:
    head = StanceHead.load(path)
    assert set(head.labels) == set(STANCE_LABELS)
    assert head.probabilities(np.zeros((2, head.n_features))).shape == (2, len(STANCE_LABELS))
    head.save(tmp_path / "again.npz")
    with zipfile.ZipFile(path) as before, zipfile.ZipFile(tmp_path / "again.npz") as after:
        assert before.namelist() == after.namelist()
        assert all(before.read(name) == after.read(name) for name in before.namelist())


def test_the_folded_heads_logit_ids_are_integers_and_the_older_head_has_none() -> None:
    ids = StanceHead.load(DATA / "stance_head_h2.npz").logit_ids
    assert ids is not None and ids.dtype == np.int64 and len(ids) > 0
    assert StanceHead.load(DATA / "stance_head_h1.npz").logit_ids is None
