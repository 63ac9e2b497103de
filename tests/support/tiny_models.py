"""Builds a tiny emotion model at test time: random weights, the real label set, save_pretrained.

It is loaded by the service through exactly the production code path (EMOTION_MODEL=<dir>).
"""

from __future__ import annotations

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
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaConfig, RobertaForSequenceClassification, RobertaTokenizerFast

    torch.manual_seed(0)
    path.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        _CORPUS * 20, vocab_size=400, min_frequency=1, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    )
    tokenizer = RobertaTokenizerFast(tokenizer_object=bpe._tokenizer, model_max_length=128)
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
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=140,
        pad_token_id=tokenizer.pad_token_id,
        num_labels=len(EMOTION_LABELS),
        id2label=dict(enumerate(EMOTION_LABELS)),
        label2id={label: i for i, label in enumerate(EMOTION_LABELS)},
    )
    model = RobertaForSequenceClassification(config).eval()
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
