"""Route validation with fakes injected through ``dependency_overrides``; no servers."""

from __future__ import annotations

import random
import string
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from common.errors import TransientError
from common.events import TweetRecord
from gateway.api import deps
from gateway.api.main import create_app
from gateway.api.query import TweetQuery
from gateway.api.repository import Job, TweetPage
from gateway.settings import GatewaySettings
from tests.unit.gateway.factories import emotion, stance, stored, tweet

# one event loop for the whole session, as the async fixtures (see pyproject)
pytestmark = pytest.mark.asyncio(loop_scope="session")


@dataclass
class FakeRepository:
    """The tweets index: the repository's searches, and the store's read by id (``deps.get_store``)."""

    sources: list[dict[str, Any]] = field(default_factory=list)
    jobs: dict[str, Job] = field(default_factory=dict)
    queries: list[TweetQuery] = field(default_factory=list)
    reads: list[tuple[str, str]] = field(default_factory=list)  # (index, id) of each store read
    up: bool = True

    async def search_tweets(self, query: TweetQuery) -> TweetPage:
        self.queries.append(query)
        return TweetPage(self.sources[: query.limit], len(self.sources), None)

    async def get(self, index: str, doc_id: str) -> dict[str, Any] | None:
        self.reads.append((index, doc_id))
        return next((s for s in self.sources if s["id"] == doc_id), None)

    async def select_for_labelling(
        self, task: str, query: TweetQuery, *, force: bool, target: str | None = None
    ) -> list[dict[str, Any]]:
        def labelled(source: dict[str, Any]) -> bool:
            return task in source if target is None else (source.get(task) or {}).get("target") == target

        return [s for s in self.sources if force or not labelled(s)][: query.limit]

    async def save_job(self, job: Job) -> None:
        self.jobs[job.job_id] = job

    async def delete_job(self, job_id: str) -> None:
        self.jobs.pop(job_id, None)

    async def get_job(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id)

    async def count_labelled(self, task: str, job_id: str) -> int:
        return 0

    async def ping(self) -> bool:
        return self.up


@dataclass
class FakeQueue:
    published: list[tuple[str, list[TweetRecord], str]] = field(default_factory=list)
    targets: list[str | None] = field(default_factory=list)  # the target of each publish
    up: bool = True

    async def publish(
        self, task: str, tweets: Sequence[TweetRecord], job_id: str, *, target: str | None = None
    ) -> None:
        if not self.up:
            raise TransientError("kafka down")
        self.published.append((task, list(tweets), job_id))
        self.targets.append(target)

    async def ping(self) -> bool:
        return self.up


@pytest.fixture
def repository() -> FakeRepository:
    return FakeRepository([stored(tweet("1")), stored(tweet("2"), emotion("2"))])


@pytest.fixture
def queue() -> FakeQueue:
    return FakeQueue()


@pytest.fixture
async def client(repository: FakeRepository, queue: FakeQueue) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(GatewaySettings(jaeger_ui_url="http://jaeger", index="tweets-under-test"))
    app.dependency_overrides[deps.get_repository] = lambda: repository
    app.dependency_overrides[deps.get_store] = lambda: repository
    app.dependency_overrides[deps.get_relabel_queue] = lambda: queue
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
        yield http


def messages(response: httpx.Response) -> str:
    return " ".join(f"{'.'.join(map(str, d['loc']))}: {d['msg']}" for d in response.json()["detail"])


async def test_list_returns_items_with_string_ids(client: httpx.AsyncClient) -> None:
    response = await client.get("/tweets")
    assert response.status_code == 200
    body = response.json()
    assert [item["id"] for item in body["items"]] == ["1", "2"]
    assert body["total"] == 2 and body["next_cursor"] is None
    assert body["items"][0]["emotion"] is None and body["items"][1]["emotion"]["label"] == "joy"


async def test_filters_reach_the_repository_parsed(client: httpx.AsyncClient, repository: FakeRepository) -> None:
    params = {"limit": 7, "end_date": "2024-03-01", "emotion": "JOY", "stance": "oppose", "min_score": -0.5}
    assert (await client.get("/tweets", params=params)).status_code == 200
    (sent,) = repository.queries
    assert (sent.limit, sent.emotion, sent.stance, sent.min_valence) == (7, "joy", "OPPOSE", -0.5)
    assert sent.window.end is not None and sent.window.end.day == 2 and not sent.window.end_inclusive


@pytest.mark.parametrize(
    ("params", "param", "hint"),
    [
        ({"limit": 0}, "limit", "greater than or equal to 1"),
        ({"limit": 1001}, "limit", "less than or equal to 1000"),
        ({"limit": "ten"}, "limit", "valid integer"),
        ({"start_date": "2024-02-30"}, "start_date", "not a valid date"),
        ({"end_date": "tomorrow"}, "end_date", "ISO 8601"),
        ({"start_date": "2024-03-02", "end_date": "2024-03-01"}, "start_date", "after end_date"),
        ({"emotion": "happy"}, "emotion", "anger, disgust, fear, joy, neutral, sadness, surprise"),
        ({"stance": "maybe"}, "stance", "SUPPORT, OPPOSE, NEUTRAL"),
        ({"min_score": 2}, "min_score", "less than or equal to 1"),
        ({"max_score": "nan"}, "max_score", ""),
        ({"min_score": 0.5, "max_score": 0.2}, "min_score", "greater than max_score"),
        ({"cursor": "garbage"}, "cursor", "next_cursor"),
        ({"stance_target": "x" * 201}, "stance_target", "at most 200 characters"),
    ],
)
async def test_invalid_parameters_are_422_naming_the_parameter(
    client: httpx.AsyncClient, params: dict[str, Any], param: str, hint: str
) -> None:
    response = await client.get("/tweets", params=params)
    assert response.status_code == 422
    text = messages(response)
    assert f"query.{param}" in text and hint in text


async def test_single_tweet(client: httpx.AsyncClient, repository: FakeRepository) -> None:
    assert (await client.get("/tweets/2")).json()["emotion"]["valence"] == 0.6
    assert (await client.get("/tweets/3")).status_code == 404
    assert (await client.get("/tweets/0002")).json()["id"] == "2"
    assert (await client.get("/tweets/abc")).status_code == 422
    assert (await client.get("/tweets/12345678901234567890")).status_code == 422
    assert repository.reads == [("tweets-under-test", "2"), ("tweets-under-test", "3"), ("tweets-under-test", "2")]


async def test_a_tweet_whose_labels_alone_are_stored_is_not_found(
    client: httpx.AsyncClient, repository: FakeRepository
) -> None:
    labels_only = {"id": "5", "emotion": stored(tweet("5"), emotion("5"))["emotion"]}
    repository.sources.append(labels_only)
    response = await client.get("/tweets/5")
    assert response.status_code == 404 and response.json()["detail"] == "tweet 5 is not indexed"


async def test_post_emotion_queues_unlabelled_tweets(
    client: httpx.AsyncClient, repository: FakeRepository, queue: FakeQueue
) -> None:
    response = await client.post("/emotion")
    assert response.status_code == 202
    job = response.json()
    assert job["task"] == "emotion" and job["queued"] == 1
    ((task, tweets, job_id),) = queue.published
    assert (task, [t.id for t in tweets], job_id) == ("emotion", ["1"], job["job_id"])
    status = (await client.get(f"/jobs/{job['job_id']}")).json()
    assert status == {
        "job_id": job["job_id"],
        "task": "emotion",
        "queued": 1,
        "target": None,
        "labelled": 0,
        "done": False,
    }
    assert queue.targets == [None]
    forced = (await client.post("/stance", params={"force": "true"})).json()
    assert forced["queued"] == 2


async def test_stance_target_filter_reaches_the_repository_stripped(
    client: httpx.AsyncClient, repository: FakeRepository
) -> None:
    for raw, sent in (("  the budget ", "the budget"), ("Main Subject", "Main Subject"), ("   ", None), ("", None)):
        assert (await client.get("/tweets", params={"stance_target": raw})).status_code == 200
        assert repository.queries[-1].stance_target == sent
    assert (await client.get("/tweets", params={"stance_target": " " + "x" * 200 + " "})).status_code == 200
    assert repository.queries[-1].stance_target == "x" * 200


async def test_public_stance_shows_its_target(client: httpx.AsyncClient, repository: FakeRepository) -> None:
    repository.sources = [stored(tweet("3"), stance("3", target="the budget")), stored(tweet("4"), stance("4"))]
    assert (await client.get("/tweets/3")).json()["stance"]["target"] == "the budget"
    assert (await client.get("/tweets/4")).json()["stance"]["target"] is None  # stored before targets were
    assert [i["stance"]["target"] for i in (await client.get("/tweets")).json()["items"]] == ["the budget", None]


async def test_post_stance_with_a_target_queues_it_and_the_job_records_it(
    client: httpx.AsyncClient, repository: FakeRepository, queue: FakeQueue
) -> None:
    repository.sources = [
        stored(tweet("1")),
        stored(tweet("2"), stance("2", target="main subject")),
        stored(tweet("3"), stance("3", target="the budget")),
    ]
    response = await client.post("/stance", params={"target": "  the budget  "})
    assert response.status_code == 202
    job = response.json()
    assert (job["task"], job["queued"], job["target"]) == ("stance", 2, "the budget")
    ((task, tweets, job_id),) = queue.published
    # without force, only the tweets not yet labelled toward this target
    assert (task, [t.id for t in tweets], job_id) == ("stance", ["1", "2"], job["job_id"])
    assert queue.targets == ["the budget"]
    assert repository.jobs[job["job_id"]].target == "the budget"
    status = (await client.get(f"/jobs/{job['job_id']}")).json()
    assert status == {**job, "labelled": 0, "done": False}
    forced = (await client.post("/stance", params={"target": "the budget", "force": "true"})).json()
    assert forced["queued"] == 3
    # blank is no target: the stance service's own; so is POST /emotion, which has no target
    assert (await client.post("/stance", params={"target": "   "})).json()["target"] is None
    assert (await client.post("/emotion", params={"target": "x"})).json()["target"] is None
    assert queue.targets[-2:] == [None, None]


@pytest.mark.parametrize("target", ["x" * 201, " " + "é" * 201])
async def test_post_stance_rejects_a_target_too_long(
    client: httpx.AsyncClient, queue: FakeQueue, repository: FakeRepository, target: str
) -> None:
    response = await client.post("/stance", params={"target": target})
    assert response.status_code == 422
    assert "query.target" in messages(response) and "at most 200 characters" in messages(response)
    assert queue.published == [] and repository.jobs == {}
    assert (await client.post("/stance", params={"target": "é" * 200})).json()["target"] == "é" * 200


async def test_job_is_forgotten_when_kafka_does_not_acknowledge(
    client: httpx.AsyncClient, repository: FakeRepository, queue: FakeQueue
) -> None:
    queue.up = False
    response = await client.post("/emotion")
    assert response.status_code == 503
    assert repository.jobs == {}


async def test_jobs_404_and_422(client: httpx.AsyncClient) -> None:
    assert (await client.get("/jobs/" + "0" * 32)).status_code == 404
    assert (await client.get("/jobs/../etc")).status_code == 404  # not a route at all
    assert (await client.get("/jobs/NOT-A-JOB")).status_code == 422
    assert (await client.post("/emotion", params={"limit": 0})).status_code == 422
    assert (await client.post("/stance", params={"start_date": "x"})).status_code == 422


async def test_readiness_names_the_failing_dependency(
    client: httpx.AsyncClient, repository: FakeRepository, queue: FakeQueue
) -> None:
    assert (await client.get("/readyz")).status_code == 200
    repository.up = False
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"elasticsearch": "unreachable", "kafka": "ok"}
    assert (await client.get("/healthz")).status_code == 200


ODD = [
    "",
    " ",
    "0",
    "-1",
    "1e309",
    "nan",
    "inf",
    "-inf",
    "9" * 40,
    "null",
    "[]",
    "{}",
    "%00",
    "\x00",
    "é",
    "😀",
    "2024-03-01T25:00",
    "2024-03-01T00:00:00+25:00",
    "0000-01-01",
    "9999-12-31",
    "9999-12-31T23:59:59.999999-23:59",
    "0001-01-01",
    "0001-01-01T00:00:00+14:00",
    "1970-01-01T00:00:00Z",
    "2024-03-01T00:00:00 05:00",
    "' OR 1=1 --",
    '{"range":{}}',
    "*",
    "a" * 5000,
    "WzEsIjEiXQ",
    "WzEsIjEiXQ==",
    "W10",
    "=" * 8,
]
PARAMS = ["limit", "start_date", "end_date", "cursor", "emotion", "stance", "stance_target", "min_score", "max_score"]


async def test_no_input_makes_the_api_fail_with_500(client: httpx.AsyncClient) -> None:
    rng = random.Random(20240301)
    alphabet = string.printable + "é😀\u2028"
    samples = ODD + ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 30))) for _ in range(60)]
    for _ in range(300):
        params = {p: rng.choice(samples) for p in rng.sample(PARAMS, rng.randint(1, 4))}
        response = await client.get("/tweets", params=params)
        assert response.status_code in (200, 422), (params, response.text)
        if response.status_code == 422:
            assert messages(response)
    for value in samples:
        segment = quote(value, safe="") or "%20"
        # an encoded "/" may make the path another route (404) or a trailing-slash redirect (307)
        assert (await client.get(f"/tweets/{segment}")).status_code in (200, 307, 404, 422), value
        assert (await client.get(f"/jobs/{segment}")).status_code in (307, 404, 422), value
        assert (await client.post("/emotion", params={"start_date": value})).status_code in (202, 422)
        assert (await client.post("/stance", params={"limit": value})).status_code in (202, 422)
        assert (await client.post("/stance", params={"target": value})).status_code in (202, 422)
