"""Multi-sequence decoding, an experiment for bench/stance_ceiling_bench.py (not service code).

A second llama context with ``n_seq_max = K`` (unified KV buffer) holds the instruction
prefix once on sequence 0 and copies it to sequences 1..K-1 (``llama_memory_seq_cp`` shares
the cells, it does not recompute). Each step cuts every sequence back to the prefix and
decodes K tweets in ONE ``llama_decode``, each at its own positions and sequence id, with
logits only for each tweet's last token. If this beat one tweet per decode on this CPU, the
scorer would adopt it; docs/stance.md reports the outcome.
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import llama_cpp
import numpy as np

from common.events import STANCE_LABELS
from stance.llama_scorer import LlamaCppScorer
from stance.logic import logsumexp, softmax

_contexts: dict[tuple[int, int], Any] = {}


def _context(scorer: LlamaCppScorer, k: int, threads: int) -> Any:
    key = (id(scorer), k)
    if key not in _contexts:
        llm = scorer._llm
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = 4096
        params.n_batch = 2048
        params.n_ubatch = 512
        params.n_seq_max = k
        params.kv_unified = True
        params.n_threads = threads
        params.n_threads_batch = threads
        ctx = llama_cpp.llama_init_from_model(llm._model.model, params)
        if ctx is None:
            raise RuntimeError("could not create a multi-sequence context")
        _contexts[key] = ctx
    return _contexts[key]


def _decode(ctx: Any, sequences: Sequence[tuple[int, int, Sequence[int]]]) -> list[int]:
    """Decode (seq_id, first position, tokens) groups in one batch; batch index of each last token."""
    total = sum(len(tokens) for _, _, tokens in sequences)
    batch = llama_cpp.llama_batch_init(total, 0, 1)
    try:
        i, lasts = 0, []
        for seq_id, start, tokens in sequences:
            for j, token in enumerate(tokens):
                batch.token[i] = token
                batch.pos[i] = start + j
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = seq_id
                batch.logits[i] = j == len(tokens) - 1
                i += 1
            lasts.append(i - 1)
        batch.n_tokens = total
        if llama_cpp.llama_decode(ctx, batch) != 0:
            raise RuntimeError("llama_decode failed")
        return lasts
    finally:
        llama_cpp.llama_batch_free(batch)


def _distribution(ctx: Any, index: int, scorer: LlamaCppScorer, n_vocab: int) -> dict[str, float]:
    pointer = llama_cpp.llama_get_logits_ith(ctx, index)
    logits = np.ctypeslib.as_array(ctypes.cast(pointer, ctypes.POINTER(ctypes.c_float)), shape=(n_vocab,))
    return softmax({label: logsumexp(float(logits[t]) for t in scorer.label_tokens[label]) for label in STANCE_LABELS})


def multi_sequence_slice(
    gguf: Path, scorer: LlamaCppScorer, texts: Sequence[str], k: int, threads: int
) -> tuple[int, int, float, float]:
    """(tweets, evaluated tokens, seconds, max |p - p_single|) for ``texts`` in groups of ``k``."""
    del gguf  # the scorer's model is reused; the argument documents which GGUF ran
    ctx = _context(scorer, k, threads)
    memory = llama_cpp.llama_get_memory(ctx)
    prefix = scorer.prefix_tokens
    n_vocab = scorer._llm.n_vocab()
    llama_cpp.llama_memory_clear(memory, True)
    _decode(ctx, [(0, 0, prefix)])
    for seq_id in range(1, k):
        llama_cpp.llama_memory_seq_cp(memory, 0, seq_id, -1, -1)
    tokens = [scorer.tweet_tokens(text) for text in texts]
    distributions: list[dict[str, float]] = []
    began = time.perf_counter()
    for start in range(0, len(tokens), k):
        group = tokens[start : start + k]
        for seq_id in range(len(group)):
            llama_cpp.llama_memory_seq_rm(memory, seq_id, len(prefix), -1)
        lasts = _decode(ctx, [(s, len(prefix), t) for s, t in enumerate(group)])
        distributions.extend(_distribution(ctx, index, scorer, n_vocab) for index in lasts)
    seconds = time.perf_counter() - began
    single = [scorer.raw_distribution(text) for text in texts[: 2 * k]]
    pairs = zip(single, distributions, strict=False)
    drift = max(abs(a[label] - b[label]) for a, b in pairs for label in STANCE_LABELS)
    return len(texts), sum(len(t) for t in tokens), seconds, drift
