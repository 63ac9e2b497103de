"""PNG plots with matplotlib's Agg backend (no display needed). One function per figure kind;
each writes one file and returns its path."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after matplotlib.use: the backend is chosen first

from evaluation.metrics import CalibrationBin


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:80] or "run"


def _title(text: str) -> str:
    return "\n".join(textwrap.wrap(text, 48))


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def reliability_diagram(bins: Sequence[CalibrationBin], title: str, ece: float, path: Path) -> Path:
    """Accuracy per confidence bin against the diagonal, with the bin counts underneath."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(5, 5.5), height_ratios=[3, 1], sharex=True)
    width = bins[0].upper - bins[0].lower if bins else 0.1
    centres = [(b.lower + b.upper) / 2 for b in bins]
    filled = [b for b in bins if b.count]
    top.bar(centres, [b.accuracy if b.count else 0 for b in bins], width=width * 0.9, label="accuracy", alpha=0.8)
    top.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
    top.plot([b.confidence for b in filled], [b.accuracy for b in filled], "o-", color="tab:red", label="mean conf.")
    top.set(ylim=(0, 1), ylabel="accuracy", title=f"{_title(title)}\nECE = {ece:.3f}")
    top.legend(loc="upper left", fontsize=8)
    bottom.bar(centres, [b.count for b in bins], width=width * 0.9, color="grey")
    bottom.set(xlim=(0, 1), xlabel="confidence", ylabel="tweets")
    return _save(fig, path)


def confusion_plot(matrix: Sequence[Sequence[int]], labels: Sequence[str], title: str, path: Path) -> Path:
    size = max(3.5, 0.7 * len(labels) + 1.5)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set(xlabel="predicted", ylabel="gold", title=_title(title))
    peak = max((max(row) for row in matrix), default=0)
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            ax.text(j, i, str(value), ha="center", va="center", color="white" if value > peak / 2 else "black")
    return _save(fig, path)


def distribution_plot(series: Mapping[str, Mapping[str, int]], labels: Sequence[str], title: str, path: Path) -> Path:
    """Grouped bars of label shares: one group per label, one bar per series (gold, each model,
    the sample data); shares, because the series count different numbers of tweets."""
    fig, ax = plt.subplots(figsize=(max(5, 1.1 * len(labels) + 2), 3.6 + 0.25 * len(series)))
    width = 0.8 / max(1, len(series))
    for k, (name, counts) in enumerate(series.items()):
        xs = [i + k * width - 0.4 + width / 2 for i in range(len(labels))]
        total = sum(counts.get(label, 0) for label in labels) or 1
        ax.bar(xs, [counts.get(label, 0) / total for label in labels], width=width, label=f"{name[:70]} (n={total})")
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.set(ylabel="share of tweets", title=_title(title))
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=1, frameon=False)
    return _save(fig, path)


def confidence_histogram(correct: Sequence[float], wrong: Sequence[float], title: str, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(5, 3.4))
    edges = [i / 20 for i in range(21)]
    ax.hist([list(correct), list(wrong)], bins=edges, stacked=True, label=["correct", "wrong"],
            color=["tab:green", "tab:red"])
    ax.set(xlabel="confidence of the predicted label", ylabel="tweets", title=_title(title), xlim=(0, 1))
    ax.legend(fontsize=8)
    return _save(fig, path)


def valence_vs_lexicon(points: Mapping[str, tuple[Sequence[float], Sequence[float]]], title: str, path: Path) -> Path:
    """Model valence (x) against the lexicon's compound score (y), one colour per data set."""
    fig, ax = plt.subplots(figsize=(5, 5))
    for name, (valence, compound) in points.items():
        ax.scatter(valence, compound, s=14, alpha=0.6, label=name)
    ax.axhline(0, color="grey", linewidth=0.6)
    ax.axvline(0, color="grey", linewidth=0.6)
    ax.set(xlim=(-1.05, 1.05), ylim=(-1.05, 1.05), xlabel="model valence", ylabel="VADER compound", title=_title(title))
    ax.legend(fontsize=8)
    return _save(fig, path)
