from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from stance.logic import (
    calibrate,
    first_label_in,
    normalise_for_model,
    parse_retry_after,
    probabilities_from_top_logprobs,
    softmax,
    validate_answer,
)

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("answer", "label"),
    [
        ("SUPPORT", "SUPPORT"),
        (" oppose.\n", "OPPOSE"),
        ("**Neutral**", "NEUTRAL"),
        ('"SUPPORT"', "SUPPORT"),
        ("I SUPPORT it", None),
        ("SUPPORT or OPPOSE", None),
        ("MAYBE", None),
        ("", None),
        ("SUPPORTIVE", None),
    ],
)
def test_validate_answer_accepts_exactly_one_label(answer: str, label: str | None) -> None:
    assert validate_answer(answer) == label


def test_first_label_in_parses_free_text_leniently() -> None:
    assert first_label_in(" neutral\nTweet:") == "NEUTRAL"
    assert first_label_in("The author would SUPPORT this") == "SUPPORT"
    assert first_label_in("unsupported") is None


def test_softmax_and_calibration_give_distributions() -> None:
    probs = softmax({"SUPPORT": 2.0, "OPPOSE": 0.0, "NEUTRAL": 0.0})
    assert math.isclose(sum(probs.values()), 1.0)
    assert probs["SUPPORT"] > probs["OPPOSE"] == pytest.approx(probs["NEUTRAL"])
    # The prompt alone favours SUPPORT 8:1:1; calibration divides that bias out.
    biased = {"SUPPORT": 0.8, "OPPOSE": 0.1, "NEUTRAL": 0.1}
    calibrated = calibrate({"SUPPORT": 0.6, "OPPOSE": 0.3, "NEUTRAL": 0.1}, biased)
    assert math.isclose(sum(calibrated.values()), 1.0)
    assert max(calibrated, key=calibrated.__getitem__) == "OPPOSE"


def test_top_logprobs_map_tokens_to_labels() -> None:
    probs = probabilities_from_top_logprobs(
        [(" SUP", math.log(0.5)), ("OPP", math.log(0.25)), ("Neutral", math.log(0.25)), ("The", math.log(0.1))]
    )
    assert probs == pytest.approx({"SUPPORT": 0.5, "OPPOSE": 0.25, "NEUTRAL": 0.25})
    assert probabilities_from_top_logprobs([("The", -0.1), ("", -1.0)]) is None


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"Retry-After": "3"}, 3.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after-ms": "250"}, 0.25),
        ({"Retry-After": "10", "retry-after-ms": "1200"}, 1.2),  # the finer one wins
        ({"Retry-After": format_datetime(NOW + timedelta(seconds=30), usegmt=True)}, 30.0),
        ({"Retry-After": format_datetime(NOW - timedelta(seconds=30), usegmt=True)}, 0.0),
        ({"Retry-After": "-5"}, 0.0),
        ({"Retry-After": "soon"}, None),
        ({}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], seconds: float | None) -> None:
    assert parse_retry_after(headers, now=NOW) == seconds


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Vote YES  https://t.co/x8f2Kq\n\tnow", "Vote YES URL now"),
        ("see www.example.org/a?b=1 please", "see URL please"),
        ("NOOOOOOO!!!!!!! 🔥🔥🔥🔥🔥", "NOOO!!! 🔥🔥🔥"),
        ("  plain tweet, unchanged  ", "plain tweet, unchanged"),
    ],
)
def test_normalise_for_model_shortens_links_runs_and_whitespace(text: str, expected: str) -> None:
    assert normalise_for_model(text) == expected
