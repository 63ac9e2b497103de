"""The dead-letter tool's pure part: which letters a filter selects, and the counts ``list`` shows."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from gateway.dead_letters import Letter


def matches(letter: Letter, reasons: Sequence[str] = (), services: Sequence[str] = ()) -> bool:
    """A reason filter matches the whole reason or its category (``invalid_tweet`` ⊃ ``invalid_tweet:text``)."""
    reason_ok = not reasons or any(letter.reason == r or letter.reason.startswith(f"{r}:") for r in reasons)
    return reason_ok and (not services or letter.service in services)


@dataclass
class TopicCount:
    topic: str
    messages: int  # held in the topic
    matching: int  # of those, matching the filters
    redriven: int | None  # of those, re-driven already (None: tweets.rejected, never re-driven)
    reasons: dict[str, int]  # matching, by reason, most common first


def topic_count(
    topic: str, messages: int, letters: Sequence[Letter], redriven: Collection[str], *, rejects: bool
) -> TopicCount:
    """One row of ``list``: ``letters`` are the topic's letters that match the filters."""
    return TopicCount(
        topic=topic,
        messages=messages,
        matching=len(letters),
        redriven=None if rejects else sum(1 for letter in letters if letter.ref in redriven),
        reasons=dict(Counter(letter.reason for letter in letters).most_common()),
    )
