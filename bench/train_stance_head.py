"""Train the stance probe head and report dev-set figures per method. Not a test.

    .venv/bin/python bench/train_stance_head.py [--gguf PATH] [--threads 2]

Reads our own hand-written sets (never the spec dataset): ``data/labelled/stance_train.csv``
to fit, ``data/labelled/stance_dev.csv`` to choose the regularisation and the feature set,
and ``bench/stance_devset.jsonl`` (48 tweets written earlier by someone else) as a check on
tweets in another author's style. The shipped head is then refitted on train + dev with the
chosen settings, folded onto 1,024 of the logits of the single decode the scorer does per
tweet (``head.fold_hidden``: the hidden state is recovered from them, so serving needs no
second decode), and written to ``services/stance/stance_head.npz``; the figures (dev figures
from the train-only fit, and how far the folded head moves the labels) go to
``bench/results/stance_head.json``.

    .venv/bin/python bench/train_stance_head.py --fold-existing OLD.npz   # fold a trained head only
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from common.events import STANCE_LABELS
from stance.encoder import MINILM_REVISION, MiniLMEncoder
from stance.head import LinearHead, fit_logit_map, fit_softmax_regression, fold_hidden, logit_ids, recover_hidden
from stance.llama_scorer import LlamaCppScorer, load_llama
from stance.logic import calibrate, top_label
from stance.model import packaged_gemma_gguf
from stance.probe_scorer import DEFAULT_HEAD_PATH, ProbeScorer, choose_local_scorer, feature_rows, probe_features

ROOT = Path(__file__).resolve().parent.parent
HEAD_VERSION = "h2"  # h1's training, read from logits of one decode (h1 decoded twice)
LOGIT_COUNT = 1024  # logits the folded head reads (>= the 640-wide hidden state)
CALIBRATION_TWEETS = 100  # train tweets decoded with embeddings on for the logit map (~2,000 rows)
L2_GRID = (0.01, 0.03, 0.1, 0.3)
STEPS = 300


def read_csv(path: Path) -> tuple[list[str], list[str]]:
    """Rows with a stance label (an empty cell means not labelled for stance)."""
    with path.open(newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if (r.get("stance") or "").strip()]
    return [r["text"] for r in rows], [r["stance"].strip().upper() for r in rows]


def read_jsonl(path: Path) -> tuple[list[str], list[str]]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r["text"] for r in rows], [r["label"] for r in rows]


def macro_f1(predicted: Sequence[str], gold: Sequence[str]) -> float:
    scores = []
    for label in STANCE_LABELS:
        tp = sum(p == label == g for p, g in zip(predicted, gold, strict=True))
        fp = sum(p == label != g for p, g in zip(predicted, gold, strict=True))
        fn = sum(g == label != p for p, g in zip(predicted, gold, strict=True))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return float(np.mean(scores))


def report(predicted: Sequence[str], gold: Sequence[str]) -> dict[str, Any]:
    return {
        "macro_f1": round(macro_f1(predicted, gold), 3),
        "accuracy": round(float(np.mean([p == g for p, g in zip(predicted, gold, strict=True)])), 3),
        "predicted_share": {label: round(list(predicted).count(label) / len(predicted), 3) for label in STANCE_LABELS},
    }


def predict(head: LinearHead, features: np.ndarray) -> list[str]:
    return [STANCE_LABELS[i] for i in head.probabilities(features).argmax(axis=1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gguf", type=Path, help="GGUF file (default: Gemma 3 270M from the PyPI package)")
    parser.add_argument("--prompt-version", default="v4")
    parser.add_argument("--train", type=Path, default=ROOT / "data" / "labelled" / "stance_train.csv")
    parser.add_argument("--dev", type=Path, default=ROOT / "data" / "labelled" / "stance_dev.csv")
    parser.add_argument("--other-author", type=Path, default=ROOT / "bench" / "stance_devset.jsonl")
    parser.add_argument("--out", type=Path, default=DEFAULT_HEAD_PATH)
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results" / "stance_head.json")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("STANCE_N_THREADS", "2")))
    parser.add_argument("--score-once", type=Path, help="only score this gold CSV with the shipped head and exit")
    parser.add_argument("--fold-existing", type=Path, help="only fold this hidden-state head onto logits, write --out")
    args = parser.parse_args()

    gguf = args.gguf or packaged_gemma_gguf()
    llm = LlamaCppScorer(load_llama(gguf, 2048, args.threads, 512), gguf.name, args.prompt_version, calibrate=True)
    if args.score_once:
        score_once(llm, args.score_once, args.threads, args.results.with_name("stance_test.json"))
        return
    if args.fold_existing:
        head = LinearHead.load(args.fold_existing)
        folded, figures = fold_onto_logits(llm, head, read_csv(args.train)[0], {"dev": read_csv(args.dev)})
        folded.save(args.out)
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.with_name("stance_head_fold.json").write_text(json.dumps(figures, indent=2) + "\n")
        print(json.dumps(figures, indent=2))
        return
    encoder = MiniLMEncoder(args.threads)
    sets = {"train": read_csv(args.train), "dev": read_csv(args.dev), "other_author": read_jsonl(args.other_author)}
    started = time.perf_counter()
    features, zero_shot = {}, {}
    for name, (texts, _) in sets.items():
        llm_rows = [llm.features(text) for text in texts]
        features[name] = probe_features(llm_rows, encoder.embed(texts))
        assert llm.content_free is not None
        zero_shot[name] = [top_label(calibrate(f.probabilities, llm.content_free)) for f in llm_rows]
        print(f"features for {name}: {len(texts)} tweets", flush=True)
    hidden = llm.hidden_size + len(STANCE_LABELS)  # columns from the GGUF; the rest are MiniLM's
    column_sets = {"gguf": slice(0, hidden), "gguf+minilm": slice(0, None)}

    methods: dict[str, Any] = {
        "label-scoring+calibration (zero-shot)": {
            name: report(zero_shot[name], gold) for name, (_, gold) in sets.items() if name != "train"
        }
    }
    chosen: tuple[float, str, float] = (-1.0, "", 0.0)
    for feature_set, columns in column_sets.items():
        for l2 in L2_GRID:
            head = fit_softmax_regression(features["train"][:, columns], sets["train"][1], l2=l2, steps=STEPS)
            key = f"probe {feature_set} l2={l2}"
            methods[key] = {
                name: report(predict(head, features[name][:, columns]), gold) for name, (_, gold) in sets.items()
            }
            print(key, json.dumps(methods[key]["dev"]), flush=True)
            if methods[key]["dev"]["macro_f1"] > chosen[0]:
                chosen = (methods[key]["dev"]["macro_f1"], feature_set, l2)

    _, feature_set, l2 = chosen
    columns = column_sets[feature_set]
    train_dev = np.vstack([features["train"], features["dev"]])[:, columns]
    labels = sets["train"][1] + sets["dev"][1]
    meta = ProbeScorer.head_meta(
        llm,
        encoder if feature_set == "gguf+minilm" else None,
        version=HEAD_VERSION,
        l2=l2,
        steps=STEPS,
        trained_on=[args.train.name, args.dev.name],
        encoder_revision=MINILM_REVISION,
    )
    head = fit_softmax_regression(train_dev, labels, l2=l2, steps=STEPS, meta=meta)
    held_out = {name: sets[name] for name in ("dev", "other_author")}
    folded, fold_figures = fold_onto_logits(llm, head, sets["train"][0], held_out)
    folded.save(args.out)
    result = {
        "model": gguf.name,
        "prompt_version": args.prompt_version,
        "chosen": {"features": feature_set, "l2": l2, "head": str(args.out.relative_to(ROOT))},
        "sizes": {name: len(texts) for name, (texts, _) in sets.items()},
        "shipped_head_on_other_author": report(
            predict(head, features["other_author"][:, columns]), sets["other_author"][1]
        ),
        "methods": methods,
        "folded_onto_logits": fold_figures,
        "feature_seconds": round(time.perf_counter() - started, 1),
        "load_average": os.getloadavg(),
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("chosen", "shipped_head_on_other_author")}, indent=2))
    print(f"wrote {args.out} and {args.results}")


def fold_onto_logits(
    llm: LlamaCppScorer, head: LinearHead, train_texts: Sequence[str], sets: dict[str, tuple[list[str], list[str]]]
) -> tuple[LinearHead, dict[str, Any]]:
    """``head`` (over the hidden state) folded onto logits, and per set how the folded head, on
    one decode per tweet, compares with ``head`` on the two-decode features it was trained on."""
    ids = logit_ids(llm._llm.n_vocab(), LOGIT_COUNT)
    hidden, logits = llm.calibration_rows(train_texts[:CALIBRATION_TWEETS], ids)
    logit_map = fit_logit_map(hidden, logits)
    meta = {
        **head.meta,
        "version": HEAD_VERSION,
        "features": ["logits"] + [f for f in head.meta.get("features", []) if f != "hidden"],
        "folded_from": head.meta.get("version"),
        "logit_map": {"ids": len(ids), "calibration_rows": len(hidden), "calibration_tweets": CALIBRATION_TWEETS},
    }
    folded = fold_hidden(head, ids, logit_map, meta)
    residual = np.linalg.norm(logits - hidden @ logit_map.T) / np.linalg.norm(logits)
    figures: dict[str, Any] = {"calibration_rows": len(hidden), "logit_fit_residual": round(float(residual), 5)}
    for name, (texts, gold) in sets.items():
        two = [llm.features(text) for text in texts]
        one = feature_rows(llm, None, texts, folded.logit_ids)
        reference, served = head.probabilities(probe_features(two, None)), folded.probabilities(one)
        recovered = recover_hidden(logit_map, one[:, : len(ids)])
        pairs = zip(recovered, two, strict=True)
        error = [float(np.linalg.norm(r - f.hidden) / np.linalg.norm(f.hidden)) for r, f in pairs]
        figures[name] = {
            "label_agreement_vs_two_decodes": round(float(np.mean(reference.argmax(1) == served.argmax(1))), 4),
            "max_probability_difference": round(float(np.abs(reference - served).max()), 4),
            "hidden_relative_l2_vs_two_decodes": [round(float(np.median(error)), 4), round(max(error), 4)],
            "two_decodes": report(predict(head, probe_features(two, None)), gold),
            "folded_one_decode": report([STANCE_LABELS[i] for i in served.argmax(1)], gold),
        }
        print(name, json.dumps(figures[name]), flush=True)
    return folded, figures


def score_once(llm: LlamaCppScorer, path: Path, threads: int, out: Path) -> None:
    """The shipped method and the zero-shot baseline on a held-out set (run it once, report it)."""
    texts, gold = read_csv(path)
    probe = choose_local_scorer(llm, "probe", DEFAULT_HEAD_PATH, threads)
    assert isinstance(probe, ProbeScorer) and llm.content_free is not None
    probe_labels = [s.label for s in probe.score_texts(texts)]
    zero_shot = [top_label(calibrate(llm.raw_distribution(t), llm.content_free)) for t in texts]
    result = {
        "set": path.name,
        "tweets": len(texts),
        "gold_share": {label: round(gold.count(label) / len(gold), 3) for label in STANCE_LABELS},
        probe.method: report(probe_labels, gold),
        llm.method + " (zero-shot)": report(zero_shot, gold),
        "load_average": os.getloadavg(),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
