"""Twitter API v2 pages in every layout they are found in, generated here (multi-page, with pages
over 64 KB, the size that used to cut a file after its first page)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from common.events import RejectedRecord, TweetRecord
from ingestor.source import open_source, take

PAGES, PER_PAGE = 3, 100
FIRST_ID = 1_700_000_000_000_000_000


def page(number: int) -> dict[str, Any]:
    """One search response page: 100 tweets by 10 authors, long enough to pass 64 KB."""
    tweets = [
        {
            "id": str(FIRST_ID + number * PER_PAGE + n),
            "text": f"page {number} tweet {n} #page{number} " + "lorem ipsum dolor sit amet " * 20,
            "author_id": str(500 + n % 10),
            "created_at": "2023-03-01T12:00:00.000Z",
            "lang": "en",
            "public_metrics": {"retweet_count": n, "reply_count": 0, "like_count": 2 * n, "quote_count": 0},
            "entities": {"hashtags": [{"start": 0, "end": 6, "tag": f"page{number}"}]},
        }
        for n in range(PER_PAGE)
    ]
    users = [{"id": str(500 + n), "username": f"user{n}", "name": f"User {n}"} for n in range(10)]
    return {"data": tweets, "includes": {"users": users}, "meta": {"result_count": PER_PAGE}}


def every_id() -> set[str]:
    return {str(FIRST_ID + p * PER_PAGE + n) for p in range(PAGES) for n in range(PER_PAGE)}


def replayed(path: Path) -> tuple[str | None, list[TweetRecord], list[RejectedRecord]]:
    source = open_source(str(path))
    chunk = take(source, 100_000)
    source.close()
    assert chunk.exhausted
    outcomes = [outcome for _, outcome in chunk.items]
    return (
        source.format,
        [o for o in outcomes if isinstance(o, TweetRecord)],
        [o for o in outcomes if isinstance(o, RejectedRecord)],
    )


def write_layout(path: Path, layout: str) -> None:
    pages = [page(p) for p in range(PAGES)]
    with path.open("w", encoding="utf-8") as out:
        if layout == "lines":
            out.writelines(json.dumps(p) + "\n" for p in pages)
        elif layout == "array":
            json.dump(pages, out)
        elif layout == "pretty":  # `jq . pages.jsonl`: responses one after another, indented
            out.writelines(json.dumps(p, indent=2) + "\n" for p in pages)


@pytest.mark.parametrize("layout", ["lines", "array", "pretty"])
def test_every_tweet_of_every_page_with_its_author(tmp_path: Path, layout: str) -> None:
    path = tmp_path / f"search.{'json' if layout != 'lines' else 'jsonl'}"
    write_layout(path, layout)
    assert len(json.dumps(page(0))) > 64 * 1024
    fmt, tweets, rejects = replayed(path)
    assert fmt == "twitter-v2"
    assert rejects == []
    assert {t.id for t in tweets} == every_id() and len(tweets) == PAGES * PER_PAGE
    by_id = {t.id: t for t in tweets}
    last = by_id[str(FIRST_ID + 2 * PER_PAGE + 99)]
    assert last.author.handle == "user9" and last.author.username == "User 9" and last.author.user_id == "509"
    assert last.hashtags == ["page2"] and last.metrics is not None and last.metrics.likes == 198


def test_single_response_resolves_authors_and_rejects_the_unknown_one(tmp_path: Path) -> None:
    response = page(0)
    response["data"][5]["author_id"] = "999"
    path = tmp_path / "one.json"
    path.write_text(json.dumps(response, indent=1))
    fmt, tweets, rejects = replayed(path)
    assert fmt == "twitter-v2" and len(tweets) == PER_PAGE - 1
    assert [(r.position, r.reason) for r in rejects] == [("response 1 data[5]", "unresolved_author:author_id")]


def test_truncated_array_of_pages_keeps_the_whole_pages_and_reports_the_break(tmp_path: Path) -> None:
    path = tmp_path / "cut.json"
    write_layout(path, "array")
    path.write_bytes(path.read_bytes()[:-5000])
    _, tweets, rejects = replayed(path)
    assert len(tweets) == 2 * PER_PAGE
    assert [r.position for r in rejects] == ["response 3"] and "breaks after response 2" in rejects[0].errors[0].msg


def twarc_csv(path: Path) -> None:
    """``twarc2 csv`` output: its flattened column names, lists JSON-encoded, newlines escaped."""
    header = [
        "id", "conversation_id", "author_id", "created_at", "text", "lang", "public_metrics.retweet_count",
        "public_metrics.like_count", "entities.hashtags", "author.id", "author.username", "author.name",
        "author.verified", "__twarc.retrieved_at", "__twarc.url", "__twarc.version",
    ]
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        for p in range(PAGES):
            for tweet in page(p)["data"]:
                n = int(tweet["id"]) % PER_PAGE
                writer.writerow([
                    tweet["id"], tweet["id"], tweet["author_id"], tweet["created_at"],
                    "first line\\nsecond line " + tweet["text"], "en", n, 2 * n, json.dumps([f"#page{p}", "#csv"]),
                    tweet["author_id"], f"user{n % 10}", f"User {n % 10}", "False",
                    "2023-03-01T12:01:00+00:00", "https://api.twitter.com/2/tweets/search/recent", "2.14.0",
                ])


def test_twarc_csv_flattened_columns(tmp_path: Path) -> None:
    path = tmp_path / "tweets.csv"
    twarc_csv(path)
    fmt, tweets, rejects = replayed(path)
    assert fmt == "csv" and rejects == []
    assert {t.id for t in tweets} == every_id()
    tweet = next(t for t in tweets if t.id == str(FIRST_ID + PER_PAGE + 7))
    assert tweet.author.handle == "user7" and tweet.author.user_id == "507"
    assert tweet.hashtags == ["page1", "csv"]
    assert tweet.metrics is not None and (tweet.metrics.retweets, tweet.metrics.likes) == (7, 14)
    assert tweet.text.startswith("first line second line page 1 tweet 7")


def test_twarc_flatten_one_tweet_per_line_with_its_author(tmp_path: Path) -> None:
    path = tmp_path / "flat.jsonl"
    with path.open("w") as out:
        for p in range(PAGES):
            response = page(p)
            users = {user["id"]: user for user in response["includes"]["users"]}
            for tweet in response["data"]:
                flat = {**tweet, "author": users[tweet["author_id"]], "__twarc": {"version": "2"}}
                out.write(json.dumps(flat) + "\n")
    fmt, tweets, rejects = replayed(path)
    assert fmt == "twitter-v2" and rejects == []
    assert {t.id for t in tweets} == every_id()
    assert next(t for t in tweets if t.id == str(FIRST_ID + 3)).author.handle == "user3"
