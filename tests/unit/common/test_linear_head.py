"""The linear softmax head both labelling services load (common.linear_head)."""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from common.linear_head import LinearHead, read_arrays, softmax_rows


def _head(**changes: Any) -> LinearHead:
    fields: dict[str, Any] = {
        "mean": np.array([1.0, -2.0]),
        "scale": np.array([2.0, 0.5]),
        "weights": np.array([[1.0, 0.0, -1.0], [0.5, 2.0, 0.0]]),
        "bias": np.array([0.1, 0.0, -0.1]),
        "labels": ("a", "b", "c"),
        "meta": {"version": "t", "features": ["x", "y"]},
    }
    return LinearHead(**(fields | changes))


@dataclass(frozen=True, kw_only=True)
class ScaledHead(LinearHead):
    """A service's head: one field of its own, stored as one more array, and a marker in meta."""

    factor: float

    kind: ClassVar[str] = "scaled head"

    def _saved_meta(self) -> dict[str, Any]:
        return {"format": 2, **self.meta}

    def _extra_arrays(self) -> dict[str, np.ndarray]:
        return {"factor": np.array(self.factor)}

    @classmethod
    def _extra_fields(cls, arrays: Mapping[str, np.ndarray]) -> dict[str, Any]:
        return {"factor": float(arrays["factor"])}


def test_probabilities_are_the_softmax_of_the_standardised_affine_map() -> None:
    head = _head()
    x = np.array([[3.0, -1.5], [1.0, -2.0]])
    expected_logits = ((x - head.mean) / head.scale) @ head.weights + head.bias
    assert np.allclose(head.logits(x), expected_logits)
    e = np.exp(expected_logits)
    assert np.allclose(head.probabilities(x), e / e.sum(axis=1, keepdims=True))
    assert head.probabilities(x[0]).shape == (1, 3)  # one feature row is one row
    assert head.n_features == 2


def test_a_wrong_feature_count_is_refused_naming_the_head() -> None:
    with pytest.raises(ValueError, match="head expects 2 features, got 3"):
        _head().probabilities(np.ones((1, 3)))
    with pytest.raises(ValueError, match="scaled head expects 2"):
        ScaledHead(**vars(_head()), factor=1.0).logits(np.ones(5))


def test_softmax_rows_survives_large_logits_and_sums_to_one() -> None:
    rows = softmax_rows(np.array([[1000.0, 1000.0, 0.0], [-5.0, 0.0, 5.0]], dtype=np.float32))
    assert rows.dtype == np.float64
    assert np.allclose(rows.sum(axis=1), 1.0)
    assert rows[0, 0] == pytest.approx(0.5)


def test_the_file_holds_float32_arrays_labels_and_sorted_json_meta_and_loads_back(tmp_path: Path) -> None:
    head = _head()
    path = tmp_path / "heads" / "head"  # no .npz suffix: written where asked, folders made
    head.save(path)
    with zipfile.ZipFile(path) as archive:
        assert archive.namelist() == [f"{k}.npy" for k in ("mean", "scale", "weights", "bias", "labels", "meta")]
    arrays = read_arrays(path)
    assert all(arrays[k].dtype == np.float32 for k in ("mean", "scale", "weights", "bias"))
    assert str(arrays["meta"]) == '{"features": ["x", "y"], "version": "t"}'
    loaded = LinearHead.load(path)
    assert loaded.labels == head.labels and loaded.meta == head.meta
    assert loaded.weights.dtype == np.float64
    x = np.array([[0.3, 4.0]])
    assert np.allclose(loaded.probabilities(x), head.probabilities(x), atol=1e-6)


def test_a_subclass_stores_its_own_fields_and_meta_marker(tmp_path: Path) -> None:
    head = ScaledHead(**vars(_head()), factor=2.5)
    head.save(tmp_path / "scaled.npz")
    loaded = ScaledHead.load(tmp_path / "scaled.npz")
    assert isinstance(loaded, ScaledHead) and loaded.factor == 2.5
    assert loaded.meta == {"format": 2, **head.meta}
    assert loaded.labels == ("a", "b", "c")


def test_read_arrays_names_the_required_arrays_a_file_lacks(tmp_path: Path) -> None:
    path = tmp_path / "plain.npz"
    _head().save(path)
    with pytest.raises(ValueError, match="it lacks factor"):
        read_arrays(path, ("mean", "factor"))
    with pytest.raises(KeyError):
        ScaledHead.load(path)
