"""Builds a tiny emotion model at test time: random weights, the real label set, save_pretrained.

It is loaded by the service through exactly the production code path (EMOTION_MODEL=<dir>).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from common.events import EMOTION_LABELS

_CORPUS = [
    "I love this so much, what a wonderful day!",
    "This is terrible and I am furious about the new policy.",
    "Scared of what happens next with the economy.",
    "The council meets on Tuesday to discuss the budget.",
    "Wow, did not expect that result at all.",
    "So sad to hear the news this morning.",
    "Gross. That is disgusting behaviour from the senator.",
]


def build_tiny_emotion_model(path: Path) -> Path:
    """Two layers, hidden size 32: fast enough for every test that needs a real model."""
    return _build(path, _CORPUS * 20, vocab_size=400, layers=2, hidden=32, heads=2, intermediate=64, positions=140)


def build_distilroberta_shaped_emotion_model(path: Path, corpus: Iterable[str]) -> Path:
    """The exact shape of distilroberta-base (the production emotion model's base), random weights.

    6 layers, hidden 768, 12 heads, intermediate 3072, vocabulary 50,265, 514 positions: the
    compute per token is the production model's. The tokenizer is a byte-level BPE trained
    offline on ``corpus`` (the real one cannot be downloaded here); its vocabulary is smaller,
    but the embedding matrix has the real size. Benchmarks only: labels are meaningless.
    """
    return _build(path, corpus, vocab_size=50265, layers=6, hidden=768, heads=12, intermediate=3072, positions=514)


def _build(
    path: Path, corpus: Iterable[str], *, vocab_size: int, layers: int, hidden: int, heads: int,
    intermediate: int, positions: int,
) -> Path:
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaConfig, RobertaForSequenceClassification, RobertaTokenizerFast

    torch.manual_seed(0)
    path.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        corpus, vocab_size=vocab_size, min_frequency=1, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    )
    tokenizer = RobertaTokenizerFast(tokenizer_object=bpe._tokenizer, model_max_length=positions - 2)
    tokenizer.add_special_tokens(
        {
            "bos_token": "<s>",
            "eos_token": "</s>",
            "unk_token": "<unk>",
            "pad_token": "<pad>",
            "cls_token": "<s>",
            "sep_token": "</s>",
            "mask_token": "<mask>",
        }
    )
    config = RobertaConfig(
        vocab_size=max(vocab_size, len(tokenizer)),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=intermediate,
        max_position_embeddings=positions,
        pad_token_id=tokenizer.pad_token_id,
        num_labels=len(EMOTION_LABELS),
        id2label=dict(enumerate(EMOTION_LABELS)),
        label2id={label: i for i, label in enumerate(EMOTION_LABELS)},
    )
    model = RobertaForSequenceClassification(config).eval()
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
