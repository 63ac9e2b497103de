"""Public benchmarks: which file, which gold labels, and each benchmark's official metric.

Pure functions over labels (no models, no I/O beyond reading the benchmark's file), shared by
``make evaluate BENCH=...`` and the training commands, so a figure means the same thing
wherever it is printed:

- ``tweeteval-stance``: F_avg, the mean F1 of FAVOR (SUPPORT) and AGAINST (OPPOSE), with the
  target named in the prompt;
- ``tweeteval-emotion``: macro-F1 over anger, joy and sadness (optimism counts as joy), the
  prediction being the most probable of those three;
- ``tweeteval-sentiment``: macro-recall over negative, neutral and positive;
- ``goemotions``: macro-F1 over the seven Ekman labels; gold is a label set, the prediction the
  one most probable label (a label of the set counts as a hit for that label);
- ``annotated-stance``: the project's own annotated real tweets (dev split), macro-F1 over the
  three stance labels, also on the stance != tone subset.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from common.events import EMOTION_LABELS, MAIN_SUBJECT, STANCE_LABELS
from evaluation.gold import SENTIMENT_LABELS
from evaluation.metrics import expected_calibration_error, reliability_bins
from evaluation.public_data import TARGET_PHRASES, PublicDataError, goemotions_labels, locate, shared_dir

TWEETEVAL_STANCE = {"favor": "SUPPORT", "against": "OPPOSE", "none": "NEUTRAL"}
TWEETEVAL_EMOTION = {"anger": "anger", "joy": "joy", "optimism": "joy", "sadness": "sadness"}
BENCHMARKS = ("tweeteval-stance", "tweeteval-emotion", "tweeteval-sentiment", "goemotions", "annotated-stance")
TASK_OF = {
    "tweeteval-stance": "stance",
    "annotated-stance": "stance",
    "tweeteval-emotion": "emotion",
    "goemotions": "emotion",
    "tweeteval-sentiment": "sentiment",
}
METRIC_OF = {
    "tweeteval-stance": "F_avg",
    "annotated-stance": "macro-F1",
    "tweeteval-emotion": "macro-F1",
    "goemotions": "macro-F1",
    "tweeteval-sentiment": "macro-recall",
}
# The dev/val split of each benchmark (the one the project may look at).
DEV_FILES = {
    "tweeteval-stance": "tweeteval_stance_val.csv",
    "tweeteval-emotion": "tweeteval_emotion_val.csv",
    "tweeteval-sentiment": "tweeteval_sentiment_val.csv",
    "goemotions": "goemotions_ekman_dev.csv",
}
# Test splits are never downloaded or shipped: a user who has one names it, or drops it beside
# the others under this name.
TEST_FILES = {
    "tweeteval-stance": "tweeteval_stance_test.csv",
    "tweeteval-emotion": "tweeteval_emotion_test.csv",
    "tweeteval-sentiment": "tweeteval_sentiment_test.csv",
    "goemotions": "goemotions_ekman_test.csv",
}


@dataclass(frozen=True)
class BenchItem:
    text: str
    gold: tuple[str, ...]  # one label, or a label set (GoEmotions)
    target: str = MAIN_SUBJECT  # stance: what the stance is toward, as the prompt names it
    subset: frozenset[str] = field(default_factory=frozenset)  # e.g. {"stance!=tone"}


@dataclass(frozen=True)
class Prediction:
    label: str
    probabilities: Mapping[str, float]


def classes_of(benchmark: str) -> tuple[str, ...]:
    if benchmark == "tweeteval-emotion":
        return ("anger", "joy", "sadness")
    if benchmark == "goemotions":
        return EMOTION_LABELS
    if benchmark == "tweeteval-sentiment":
        return SENTIMENT_LABELS
    return STANCE_LABELS


def benchmark_file(benchmark: str, split: str, file: Path | None = None) -> Path:
    """The CSV a benchmark reads: ``file`` when given, else the dev/val split, else (``test``)
    the test file from the shared folder or ``$TWEETPIPE_LABELLED_DIR``: never downloaded."""
    if file is not None:
        return file
    if split == "test":
        folder = shared_dir()
        candidate = folder / TEST_FILES[benchmark] if folder else None
        if candidate is None or not candidate.is_file():
            raise PublicDataError(
                f"SPLIT=test needs {TEST_FILES[benchmark]} in TWEETPIPE_LABELLED_DIR, or pass --file; "
                "the project never downloads test splits"
            )
        return candidate
    return locate(DEV_FILES[benchmark])


def items_from_rows(benchmark: str, rows: Sequence[Mapping[str, str]]) -> list[BenchItem]:
    """Gold items from a benchmark file's rows (TweetEval/GoEmotions column layouts)."""
    items = []
    for row in rows:
        if benchmark == "tweeteval-stance":
            target = TARGET_PHRASES.get(row["target"], row["target"])
            items.append(BenchItem(row["text"], (TWEETEVAL_STANCE[row["label"]],), target))
        elif benchmark == "tweeteval-emotion":
            items.append(BenchItem(row["text"], (TWEETEVAL_EMOTION[row["label"]],)))
        elif benchmark == "tweeteval-sentiment":
            items.append(BenchItem(row["text"], (row["label"],)))
        elif benchmark == "goemotions":
            items.append(BenchItem(row["text"], tuple(goemotions_labels(row["labels"]))))
        else:
            raise ValueError(f"unknown benchmark {benchmark!r}")
    return items


def restrict(prediction: Mapping[str, float], classes: Sequence[str]) -> str:
    """The most probable of the benchmark's own classes."""
    return max(classes, key=lambda label: prediction.get(label, 0.0))


def f1_per_class(gold: Sequence[Sequence[str]], predicted: Sequence[str], classes: Sequence[str]) -> dict[str, float]:
    """Per-class F1 where each gold entry is a label set and each prediction one label."""
    scores = {}
    for label in classes:
        tp = sum(label == p and label in g for g, p in zip(gold, predicted, strict=True))
        fp = sum(label == p and label not in g for g, p in zip(gold, predicted, strict=True))
        fn = sum(label != p and label in g for g, p in zip(gold, predicted, strict=True))
        scores[label] = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    return scores


def recall_per_class(gold: Sequence[str], predicted: Sequence[str], classes: Sequence[str]) -> dict[str, float]:
    scores = {}
    for label in classes:
        relevant = [p for g, p in zip(gold, predicted, strict=True) if g == label]
        scores[label] = sum(p == label for p in relevant) / len(relevant) if relevant else 0.0
    return scores


def official_score(benchmark: str, gold: Sequence[Sequence[str]], predicted: Sequence[str]) -> float:
    classes = classes_of(benchmark)
    if benchmark == "tweeteval-sentiment":
        return mean(recall_per_class([g[0] for g in gold], predicted, classes).values())
    f1 = f1_per_class(gold, predicted, classes)
    if benchmark == "tweeteval-stance":
        return (f1["SUPPORT"] + f1["OPPOSE"]) / 2
    return mean(f1.values())


def mean(values: Iterable[float]) -> float:
    items = list(values)
    return float(sum(items) / len(items)) if items else 0.0


def score_benchmark(benchmark: str, items: Sequence[BenchItem], predictions: Sequence[Prediction]) -> dict[str, object]:
    """The official metric, per-class F1 (recall for sentiment), shares, ECE, and subsets."""
    classes = classes_of(benchmark)
    predicted = [restrict(p.probabilities, classes) for p in predictions]
    gold = [item.gold for item in items]
    confidence = [
        _renormalised(p.probabilities, classes, label) for p, label in zip(predictions, predicted, strict=True)
    ]
    correct = [label in g for label, g in zip(predicted, gold, strict=True)]
    result: dict[str, object] = {
        "benchmark": benchmark,
        "metric": METRIC_OF[benchmark],
        "score": round(official_score(benchmark, gold, predicted), 4),
        "n": len(items),
        "accuracy": round(mean([float(c) for c in correct]), 4),
        "per_class_f1": {k: round(v, 4) for k, v in f1_per_class(gold, predicted, classes).items()},
        "predicted_share": shares(predicted, classes),
        "gold_share": shares([g[0] for g in gold], classes) if benchmark != "goemotions" else label_set_shares(gold),
        "ece": round(expected_calibration_error(reliability_bins(confidence, correct)), 4),
    }
    if benchmark == "tweeteval-sentiment":
        result["per_class_recall"] = {
            k: round(v, 4) for k, v in recall_per_class([g[0] for g in gold], predicted, classes).items()
        }
    subsets = sorted({name for item in items for name in item.subset})
    for name in subsets:
        chosen = [i for i, item in enumerate(items) if name in item.subset]
        result[f"subset:{name}"] = {
            "n": len(chosen),
            "score": round(official_score(benchmark, [gold[i] for i in chosen], [predicted[i] for i in chosen]), 4),
            "predicted_share": shares([predicted[i] for i in chosen], classes),
            "gold_share": shares([gold[i][0] for i in chosen], classes),
        }
    return result


def _renormalised(probabilities: Mapping[str, float], classes: Sequence[str], label: str) -> float:
    """The predicted label's probability among the benchmark's classes (what its calibration
    is judged on when the model knows more classes than the benchmark)."""
    total = sum(probabilities.get(c, 0.0) for c in classes)
    return probabilities.get(label, 0.0) / total if total > 0 else 0.0


def shares(labels: Sequence[str], classes: Sequence[str]) -> dict[str, float]:
    return {c: round(sum(label == c for label in labels) / len(labels), 3) if labels else 0.0 for c in classes}


def label_set_shares(gold: Sequence[Sequence[str]]) -> dict[str, float]:
    """Share of rows whose gold set holds each label (GoEmotions rows may hold several)."""
    return {c: round(sum(c in g for g in gold) / len(gold), 3) if gold else 0.0 for c in EMOTION_LABELS}


def max_share_gap(result: Mapping[str, object]) -> float:
    """The largest gap, in points, between a label's predicted and gold share."""
    predicted = result["predicted_share"]
    gold = result["gold_share"]
    assert isinstance(predicted, dict) and isinstance(gold, dict)
    return round(100 * max(abs(float(predicted[c]) - float(gold.get(c, 0.0))) for c in predicted), 1)


# Published figures on the benchmarks' TEST splits (README of ../shared/data/labelled/ and the
# GoEmotions paper), shown beside ours, which are on dev/val unless SPLIT=test.
REFERENCE_FIGURES: dict[str, str] = {
    "tweeteval-stance": "SVM 67.3, FastText 65.4, RoBERTa-base 68.0, best 72.9 (TweetEval leaderboard, test)",
    "tweeteval-emotion": "FastText 65.2, RoBERTa-base 76.1, best 80.2 (TweetEval leaderboard, test)",
    "tweeteval-sentiment": "FastText 62.9, best 73.7 (TweetEval leaderboard, test)",
    "goemotions": "BERT-base 64 (GoEmotions paper, Ekman grouping, test)",
    "annotated-stance": "none: the project's own annotated real tweets (docs/stance-guideline.md)",
}
