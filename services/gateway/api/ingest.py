"""``POST /ingest``'s pure part: a JSON Lines body → valid tweets and per-line rejects.

Each line is judged exactly as the replay judges a line of a ``jsonl`` file
(``common.records``: the spec's nested layout, then the strict ``TweetRecord``), and an id repeated
within one request is rejected as ``duplicate_id``, as within one replayed file.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from common.events import RejectedRecord, TweetRecord, ValidationIssue
from common.json_lines import json_line_item
from common.records import map_nested, reject, to_outcome

DUPLICATE_ID = "duplicate_id"


@dataclass
class IngestBatch:
    tweets: list[TweetRecord] = field(default_factory=list)
    rejects: list[tuple[int, RejectedRecord]] = field(default_factory=list)  # (line number, reject)

    @property
    def received(self) -> int:
        return len(self.tweets) + len(self.rejects)


def count_records(body: bytes) -> int:
    """Non-blank lines, i.e. the records a body carries (checked before any is parsed)."""
    return sum(1 for line in body.splitlines() if line.strip())


def validate_lines(body: bytes, source: str) -> IngestBatch:
    """Validate every non-blank line; line numbers count from 1, blank lines included."""
    batch = IngestBatch()
    seen: set[str] = set()
    for number, line in enumerate(body.splitlines(), start=1):
        if not line.strip():
            continue
        item = json_line_item(line, number)
        outcome = to_outcome(item, map_nested, source)
        if isinstance(outcome, TweetRecord) and outcome.id in seen:
            issue = ValidationIssue(
                loc="id", msg=f"id {outcome.id} already appeared earlier in this request", type=DUPLICATE_ID
            )
            outcome = reject(item, source, DUPLICATE_ID, [issue])
        if isinstance(outcome, TweetRecord):
            seen.add(outcome.id)
            batch.tweets.append(outcome)
        else:
            batch.rejects.append((number, outcome))
    return batch


def rejected_field(rejected: RejectedRecord) -> str | None:
    """The field a reject is about (``text``, ``created_at``, ``id``), if any."""
    loc = rejected.errors[0].loc if rejected.errors else ""
    return loc or rejected.reason.partition(":")[2] or None
