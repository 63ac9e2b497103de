"""``make evaluate BENCH=...``: score the models in-process on a public benchmark.

    python -m evaluation --bench tweeteval-stance [--split dev|test] [--file CSV] [--method NAME]

Each benchmark is scored by every method named (default: the service's default and the
baselines it replaced), and one JSON per benchmark goes to ``evaluation/results/``, which
``make report`` turns into REPORT.md's benchmark table. Models load exactly as the services
load them (``emotion.model.load_classifier``, ``stance.main.build_scorer``).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evaluation.benchmarks import (
    TASK_OF,
    BenchItem,
    Prediction,
    benchmark_file,
    items_from_rows,
    max_share_gap,
    score_benchmark,
)
from evaluation.gold import now_stamp
from evaluation.public_data import PublicDataError


@dataclass(frozen=True)
class Method:
    """One way of labelling: a name for the table and the settings overrides that build it."""

    name: str
    overrides: dict[str, Any]
    role: str = ""  # "default" | "before" | "baseline"
    fixed_valence: bool = False  # sentiment from the fixed valence weights, not a fitted map
    seven_score_map: bool = False  # sentiment from the head file's map on the seven scores, not its sentiment block

    @property
    def sentiment_only(self) -> bool:
        return self.fixed_valence or self.seven_score_map


def stance_methods() -> list[Method]:
    return [
        Method("probe-h3 · v5 (target in prompt)", {}, "default"),
        Method("label scoring · v5 (zero-shot)", {"method": "label-scoring", "prompt_version": "v5"}, "baseline"),
        Method(
            "probe-h2 · v4 (before)", {"prompt_version": "v4", "method": "probe", "head_path": _h2_head()}, "before"
        ),
    ]


def _h2_head() -> str:
    """The head that served before h3 (prompt v4, self-written training data), kept for comparison."""
    return str(Path(__file__).resolve().parent.parent / "tests" / "unit" / "stance" / "data" / "stance_head_h2.npz")


def emotion_methods() -> list[Method]:
    return [
        Method("j-hartmann distilroberta (production)", {"backend": "transformers"}, "default"),
        Method("MiniLM + trained head (offline fallback)", {"backend": "minilm-head"}, "fallback"),
        Method(
            "MiniLM + trained head, map on the seven scores (before, sentiment)",
            {"backend": "minilm-head"},
            "before",
            seven_score_map=True,
        ),
        Method("MiniLM zero-shot (before)", {"backend": "minilm-zero-shot"}, "before"),
        Method(
            "MiniLM zero-shot, fixed valence weights (before, sentiment)",
            {"backend": "minilm-zero-shot"},
            "before",
            fixed_valence=True,
        ),
    ]


def methods_for(benchmark: str, names: Sequence[str] | None = None) -> list[Method]:
    every = stance_methods() if TASK_OF[benchmark] == "stance" else emotion_methods()
    if TASK_OF[benchmark] != "sentiment":
        every = [m for m in every if not m.sentiment_only]
    if not names:
        return every
    chosen = [m for m in every if any(n.lower() in m.name.lower() for n in names)]
    if not chosen:
        raise ValueError(f"no method matches {list(names)}; known: {[m.name for m in every]}")
    return chosen


def load_items(benchmark: str, split: str, file: Path | None) -> list[BenchItem]:
    if benchmark == "annotated-stance":
        from training.annotations import ANNOTATED, bench_items, read_annotated

        if split != "dev":
            raise PublicDataError("annotated-stance has a train and a dev split only; it is scored on dev")
        return bench_items(read_annotated(file or ANNOTATED), "dev")
    import csv

    path = benchmark_file(benchmark, split, file)
    with path.open(newline="", encoding="utf-8") as handle:
        return items_from_rows(benchmark, list(csv.DictReader(handle)))


async def stance_predictions(
    items: Sequence[BenchItem], overrides: dict[str, Any]
) -> tuple[list[Prediction | None], dict[str, Any]]:
    """One prediction per item, or None where the scorer failed it for good (an API provider)."""
    from common.errors import PermanentError
    from evaluation.sources import stance_settings
    from stance.logic import group_by_target
    from stance.main import build_scorer

    settings = stance_settings(overrides)
    scorer = await build_scorer(settings)
    started = time.perf_counter()
    try:
        results: dict[int, Prediction | None] = {}
        for target, positions in group_by_target([item.target for item in items]).items():
            for start in range(0, len(positions), settings.batch_size):
                chunk = positions[start : start + settings.batch_size]
                scored = await scorer.score([items[i].text for i in chunk], target)
                for i, result in zip(chunk, scored, strict=True):
                    if isinstance(result, PermanentError):
                        results[i] = None  # an API answer that failed for good: unscored, never guessed
                    else:
                        results[i] = Prediction(result.label, dict(result.probabilities))
        meta = {
            "model": scorer.identity.model,
            "prompt_version": scorer.identity.prompt_version,
            "label_method": scorer.method,
            "inference_seconds": round(time.perf_counter() - started, 2),
        }
        return [results[i] for i in range(len(items))], meta
    finally:
        await scorer.aclose()


def emotion_predictions(
    items: Sequence[BenchItem],
    overrides: dict[str, Any],
    sentiment: bool,
    fixed_valence: bool = False,
    seven_score_map: bool = False,
) -> tuple[list[Prediction | None], dict[str, Any]]:
    """Emotion probabilities, or (``sentiment``) the backend's fitted sentiment bands."""
    from emotion.logic import FIXED_VALENCE_MAP, normalise_scores, valence_map_for
    from emotion.model import load_classifier
    from emotion.settings import EmotionSettings

    classifier = load_classifier(EmotionSettings(**overrides))
    valence_map = FIXED_VALENCE_MAP if fixed_valence else valence_map_for(classifier)
    if seven_score_map:  # the head file's map on the seven scores, beside its sentiment block
        head = getattr(classifier, "head", None)
        valence_map = getattr(head, "valence_map", None) or valence_map
    started = time.perf_counter()
    out: list[Prediction | None] = []
    for start in range(0, len(items), 64):
        batch = items[start : start + 64]
        for raw in classifier.classify([item.text for item in batch]):
            probs = normalise_scores(raw)
            if sentiment:
                band, band_probs = valence_map.sentiment({**raw, **probs})  # raw: any SENTIMENT_KEYS
                out.append(Prediction(band, band_probs))
            else:
                out.append(Prediction(max(probs, key=probs.__getitem__), probs))
    meta: dict[str, Any] = {
        "model": classifier.model_id,
        "revision": classifier.revision,
        "valence_map": valence_map.name,
        "inference_seconds": round(time.perf_counter() - started, 2),
    }
    fitted_on = valence_map.meta.get("fitted_on") if valence_map.fitted else None
    if sentiment and fitted_on:
        nested = "nested " if str(valence_map.meta.get("cv", "")).startswith("nested") else ""
        held_out = f"{valence_map.meta.get('cv_folds', 5)}-fold {nested}cross-validated"
        meta["note"] = (
            f"valence map fitted on {fitted_on}: on that split this figure is in-sample; "
            f"its {held_out} macro-recall is {valence_map.meta.get('cv_macro_recall')}"
        )
        if valence_map.meta.get("cv_macro_recall") is not None:  # the report's headline on that split
            meta["held_out"] = {"fitted_on": fitted_on, "method": held_out,
                                "macro_recall": float(valence_map.meta["cv_macro_recall"])}
    return out, meta


def run_method(benchmark: str, items: Sequence[BenchItem], method: Method) -> dict[str, Any]:
    """One method on one benchmark: the official figures, or why it could not run here."""
    from common.errors import ConfigurationError, ModelUnavailableError

    try:
        if TASK_OF[benchmark] == "stance":
            predictions, meta = asyncio.run(stance_predictions(items, method.overrides))
        else:
            sentiment = TASK_OF[benchmark] == "sentiment"
            predictions, meta = emotion_predictions(
                items, method.overrides, sentiment, method.fixed_valence, method.seven_score_map
            )
    except (ModelUnavailableError, ConfigurationError) as exc:
        return {"method": method.name, "role": method.role, "skipped": str(exc)}
    scored = [i for i, p in enumerate(predictions) if p is not None]
    result = score_benchmark(benchmark, [items[i] for i in scored], [p for p in predictions if p is not None])
    result["max_share_gap_points"] = max_share_gap(result)
    return {
        "method": method.name,
        "role": method.role,
        **meta,
        **result,
        "unscored": len(items) - len(scored),
        "tweets_per_s": round(len(items) / max(float(meta["inference_seconds"]), 1e-9), 2),
    }


def run_benchmark(
    benchmark: str, split: str, file: Path | None, method_names: Sequence[str] | None, limit: int | None, out_dir: Path
) -> dict[str, Any]:
    items = load_items(benchmark, split, file)[:limit]
    payload: dict[str, Any] = {
        "benchmark": benchmark,
        "split": split,
        "file": str(file) if file else None,
        "n": len(items),
        "created_at": now_stamp(),
        "methods": [run_method(benchmark, items, m) for m in methods_for(benchmark, method_names)],
    }
    if split != "dev":  # the maps are fitted on the dev (val) split: elsewhere every figure is held out
        for method in payload["methods"]:
            method.pop("note", None)
            method.pop("held_out", None)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"bench-{benchmark}-{split}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    payload["path"] = str(path)
    return payload
