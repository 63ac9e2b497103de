"""Pure functions: normalise tweets for the model, turn scores into label probabilities, validate answers,
read Retry-After, resolve and group targets. No I/O."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from common.events import STANCE_LABELS, clean_target

_ANSWER_DECORATION = " \t\r\n.,;:!?\"'`*_()[]{}<>"
_LABEL_WORD = re.compile(r"\b(SUPPORT|OPPOSE|NEUTRAL)\b", re.IGNORECASE)
_URL = re.compile(r"https?://\S+|www\.\S+", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")
_REPEATS = re.compile(r"(\S)\1{3,}")
URL_STAND_IN = "URL"


def normalise_for_model(text: str) -> str:
    """Fewer tokens, same meaning: each link becomes ``URL`` (a t.co link is ~10 tokens of
    noise), runs of one character longer than three are cut to three ("!!!!!!" → "!!!"),
    whitespace collapses to single spaces."""
    text = _URL.sub(URL_STAND_IN, text)
    text = _REPEATS.sub(r"\1\1\1", text)
    return _WHITESPACE.sub(" ", text).strip()


def validate_answer(answer: str) -> str | None:
    """The label if the answer is exactly one of the three (case and decoration aside), else None."""
    word = answer.strip(_ANSWER_DECORATION).upper()
    return word if word in STANCE_LABELS else None


def first_label_in(text: str) -> str | None:
    """Lenient parse of free generated text (only the naive benchmark baseline uses it)."""
    found = _LABEL_WORD.search(text)
    return found.group(1).upper() if found else None


def softmax(log_scores: Mapping[str, float]) -> dict[str, float]:
    top = max(log_scores.values())
    weights = {label: math.exp(value - top) for label, value in log_scores.items()}
    total = sum(weights.values())
    return {label: weights[label] / total for label in STANCE_LABELS}


def logsumexp(values: Iterable[float]) -> float:
    items = list(values)
    top = max(items)
    return top + math.log(sum(math.exp(v - top) for v in items))


def calibrate(probs: Mapping[str, float], content_free: Mapping[str, float]) -> dict[str, float]:
    """Contextual calibration: divide out the label bias the prompt alone induces, renormalise."""
    adjusted = {label: probs[label] / max(content_free[label], 1e-12) for label in STANCE_LABELS}
    total = sum(adjusted.values())
    return {label: adjusted[label] / total for label in STANCE_LABELS}


def mean_probabilities(rows: Sequence[Mapping[str, float]]) -> dict[str, float]:
    return {label: sum(row[label] for row in rows) / len(rows) for label in STANCE_LABELS}


def one_hot(label: str) -> dict[str, float]:
    return {name: 1.0 if name == label else 0.0 for name in STANCE_LABELS}


def probabilities_from_top_logprobs(top: Sequence[tuple[str, float]]) -> dict[str, float] | None:
    """Label probabilities from the first answer token's top log-probs, or None if no label is there.

    A token counts for a label when it is a non-empty prefix of exactly that label ("SUP",
    " Support"); tokens shared by several labels or by none are ignored.
    """
    mass = dict.fromkeys(STANCE_LABELS, 0.0)
    for token, logprob in top:
        word = token.strip(_ANSWER_DECORATION).upper()
        owners = [label for label in STANCE_LABELS if word and label.startswith(word)]
        if len(owners) == 1:
            mass[owners[0]] += math.exp(logprob)
    total = sum(mass.values())
    if total <= 0.0:
        return None
    return {label: mass[label] / total for label in STANCE_LABELS}


def top_label(probs: Mapping[str, float]) -> str:
    return max(STANCE_LABELS, key=lambda label: probs[label])


def parse_retry_after(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    lowered = {name.lower(): value.strip() for name, value in headers.items()}
    millis = lowered.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000.0)
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def resolve_target(target: str | None, default: str) -> str:
    """The target a call asks for (None or blank: ``default``), cleaned as every recorded
    target is."""
    return clean_target(target) if target and target.strip() else clean_target(default)


def group_by_target(targets: Sequence[str]) -> dict[str, list[int]]:
    """Positions per target, in first-seen order (each group is one scorer call)."""
    groups: dict[str, list[int]] = {}
    for position, target in enumerate(targets):
        groups.setdefault(target, []).append(position)
    return groups
