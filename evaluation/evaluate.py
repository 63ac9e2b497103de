"""From runs to figures: one :class:`TaskReport` per task and run, the failure cases, the JSON
file, the reliability diagrams and the terminal table."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from evaluation.gold import TASKS, GoldItem, now_stamp
from evaluation.metrics import TaskReport, task_report
from evaluation.plots import reliability_diagram, slug
from evaluation.sources import Run


@dataclass(frozen=True)
class Failure:
    gold_id: str
    text: str
    gold: str
    predicted: str
    confidence: float | None


def scored_pairs(gold: Sequence[GoldItem], run: Run) -> list[tuple[GoldItem, str]]:
    """(item, gold label) for every gold row that has a label for the run's task and a prediction."""
    return [(item, item.labels[run.task]) for item in gold if run.task in item.labels and item.id in run.predictions]


def report_for(gold: Sequence[GoldItem], run: Run, n_bins: int = 10) -> TaskReport | None:
    pairs = scored_pairs(gold, run)
    if not pairs:
        return None
    predictions = [run.predictions[item.id] for item, _ in pairs]
    confidences = [p.confidence for p in predictions]
    labelled = sum(run.task in item.labels for item in gold)
    meta: dict[str, Any] = {
        **run.meta,
        "gold_labelled": labelled,
        "missing": len({item.id for item in gold if run.task in item.labels} & set(run.missing)),
        "coverage": len(pairs) / labelled if labelled else 0.0,
    }
    if run.seconds:
        meta["tweets_per_s"] = len(run.predictions) / run.seconds
    return task_report(
        run.task,
        run.name,
        TASKS[run.task],
        [g for _, g in pairs],
        [p.label for p in predictions],
        None if any(c is None for c in confidences) else [float(c) for c in confidences if c is not None],
        n_bins=n_bins,
        meta=meta,
    )


def failures(gold: Sequence[GoldItem], run: Run, limit: int = 10) -> list[Failure]:
    """Wrong predictions, the most confident first (the ones calibration should have caught)."""
    wrong = [
        Failure(item.id, item.text, label, run.predictions[item.id].label, run.predictions[item.id].confidence)
        for item, label in scored_pairs(gold, run)
        if run.predictions[item.id].label != label
    ]
    wrong.sort(key=lambda f: -(f.confidence or 0.0))
    return wrong[:limit]


def reliability_pngs(reports: Sequence[TaskReport], out_dir: Path) -> dict[str, Path]:
    paths = {}
    for r in reports:
        if r.ece is not None:
            key = f"{r.task}:{r.run}"
            paths[key] = reliability_diagram(
                r.reliability, f"{r.task}: {r.run}", r.ece, out_dir / f"reliability-{r.task}-{slug(r.run)}.png"
            )
    return paths


def results_payload(
    gold_path: Path, gold: Sequence[GoldItem], source: str, runs: Sequence[Run], reports: Sequence[TaskReport]
) -> dict[str, Any]:
    return {
        "created_at": now_stamp(),
        "gold": str(gold_path),
        "gold_rows": len(gold),
        "source": source,
        "reports": [r.to_json() for r in reports],
        "predictions": {
            f"{run.task}:{run.name}": {
                gold_id: {"label": p.label, "confidence": p.confidence, "valence": p.valence}
                for gold_id, p in run.predictions.items()
            }
            for run in runs
        },
    }


def write_json(payload: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def print_table(reports: Sequence[TaskReport], console: Console | None = None) -> None:
    table = Table(title="Evaluation on the gold set")
    for column in ("task", "model · prompt · method", "n", "accuracy", "macro-F1", "ECE", "missing", "predicted"):
        table.add_column(column, overflow="fold")
    for r in reports:
        table.add_row(
            r.task,
            r.run,
            str(r.n),
            f"{r.accuracy:.3f}",
            f"{r.macro_f1:.3f}",
            "-" if r.ece is None else f"{r.ece:.3f}",
            str(r.meta.get("missing", 0)),
            " ".join(f"{k}:{v}" for k, v in r.predicted_distribution.items() if v),
        )
    (console or Console()).print(table)


def print_bench_table(payload: dict[str, Any], console: Console | None = None) -> None:
    """One benchmark's methods: the official metric, per-class F1, shares and ECE."""
    table = Table(title=f"{payload['benchmark']} ({payload['split']}, {payload['n']} items)")
    for column in ("method", "metric", "per-class F1", "predicted share", "gold share", "ECE", "tweets/s"):
        table.add_column(column, overflow="fold")
    for m in payload["methods"]:
        if "skipped" in m:
            table.add_row(m["method"], "not run", m["skipped"][:160], "", "", "", "")
            continue
        subsets = " ".join(
            f"[{k.removeprefix('subset:')} {v['score']:.3f}, n={v['n']}]"
            for k, v in m.items()
            if k.startswith("subset:")
        )
        table.add_row(
            m["method"],
            f"{m['metric']} {m['score']:.3f} {subsets} {m.get('note', '')}".strip(),
            " ".join(f"{k}:{v:.2f}" for k, v in m["per_class_f1"].items()),
            " ".join(f"{k}:{v:.2f}" for k, v in m["predicted_share"].items()),
            " ".join(f"{k}:{v:.2f}" for k, v in m["gold_share"].items()),
            f"{m['ece']:.3f}",
            str(m.get("tweets_per_s", "")),
        )
    (console or Console()).print(table)
    if payload.get("path"):
        (console or Console()).print(f"results: {payload['path']}")
