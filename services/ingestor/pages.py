"""Twitter API v2 response pages: every tweet of every page, with its author joined from the
page's own ``includes.users``.

A page holds at most a few hundred tweets, so one page at a time is parsed whole; the file is
streamed page by page whatever its layout:

- one response per line (twarc2's output, or any script that appends pages): ``source`` reads
  the lines and calls :func:`response_items` on each; ``twarc2 flatten``'s one tweet per line,
  its author merged in, is read the same way;
- a JSON array of responses: :func:`array_of_responses`;
- one response, or several responses one after another (``jq . pages.jsonl`` writes that):
  :func:`concatenated_responses`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

import ijson

from common.records import SourceItem, raw_json

BROKEN = "JSON breaks after response {parsed}, the rest of the file is unreadable: {exc}"


def response_items(response: Any, position: str, raw: str) -> Iterator[SourceItem]:
    """The tweets of one response page, each joined with its author; an error page is one reject."""
    data = response.get("data") if isinstance(response, dict) else None
    if data is None and flattened(response):  # `twarc2 flatten`: one tweet, its author inside
        yield SourceItem(position, raw, {"tweet": response, "author": response["author"]})
        return
    if data is None:
        if isinstance(response, dict) and "errors" not in response:
            return  # an empty page (result_count 0) holds no tweets
        yield SourceItem(position, raw, error="a twitter-v2 response without data", reason="missing_field:data")
        return
    users = (response.get("includes") or {}).get("users") or []
    by_id = {str(user.get("id")): user for user in users if isinstance(user, dict)}
    for index, tweet in enumerate(data if isinstance(data, list) else [data]):
        yield SourceItem(f"{position} data[{index}]", raw_json(tweet), joined(tweet, by_id))


def flattened(value: Any) -> bool:
    """A tweet as ``twarc2 flatten`` writes it: the v2 tweet with its ``author`` object merged in."""
    return isinstance(value, dict) and "author_id" in value and isinstance(value.get("author"), dict)


def joined(tweet: Any, users: dict[str, Any]) -> dict[str, Any]:
    author_id = tweet.get("author_id") if isinstance(tweet, dict) else None
    return {"tweet": tweet, "author": users.get(str(author_id)) if author_id is not None else None}


def array_of_responses(handle: IO[bytes]) -> Iterator[SourceItem]:
    yield from _pages(ijson.items(handle, "item"))


def concatenated_responses(handle: IO[bytes]) -> Iterator[SourceItem]:
    yield from _pages(ijson.items(handle, "", multiple_values=True))


def _pages(responses: Iterator[Any]) -> Iterator[SourceItem]:
    parsed = 0
    try:
        for response in responses:
            parsed += 1
            yield from response_items(response, f"response {parsed}", _summary(response))
    except ijson.JSONError as exc:
        yield SourceItem(f"response {parsed + 1}", "", error=BROKEN.format(parsed=parsed, exc=exc))


def _summary(response: Any) -> str:
    """What a reject of a whole page keeps as ``raw``: the page without its (large) data."""
    if isinstance(response, dict):
        return raw_json({key: value for key, value in response.items() if key != "data"})
    return raw_json(response)
