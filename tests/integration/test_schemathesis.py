"""Schemathesis against the gateway's own OpenAPI schema: the real app served by uvicorn, wired to
the real Elasticsearch, Kafka and Jaeger; every documented operation, a bounded number of
generated requests each; no request may get a 5xx answer.

Twice: without API keys (every route open), and with ``GATEWAY_API_KEYS`` set. In the keyed run
most cases carry the valid key from 127.0.0.1, so they reach the handlers; every third goes from
127.0.0.2 with the key Schemathesis made up (or none), so the 401 answers and then the 429
lock-out of a client guessing keys are fuzzed too, while the other client is unaffected."""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings
from pydantic import SecretStr
from requests.adapters import HTTPAdapter
from schemathesis.checks import not_a_server_error

from common.settings import KafkaSettings
from gateway.api.main import create_app
from gateway.settings import GatewaySettings
from tests.conftest import _delete_topics
from tests.e2e.stack import free_port

pytestmark = [pytest.mark.kafka, pytest.mark.es, pytest.mark.jaeger]

EXAMPLES_PER_OPERATION = 20  # about 15 operations: about a minute in all
KEYED_EXAMPLES_PER_OPERATION = 10  # the keyed run: about half a minute more
FUZZ_KEY = "fuzz-key-0123456789"
GUESSER = "127.0.0.2"  # loopback too: the keyed run's wrong keys come from their own address
GUESSES_EVERY = 3
guesser_statuses: Counter[int] = Counter()

schemathesis.serializer.alias("application/x-ndjson", "text/plain")  # POST /ingest's JSON Lines body
# Header values with a control character other than tab are not valid HTTP: uvicorn's parser
# answers 400 and closes the connection before the app sees the request, and a client still
# sending its body then reads a connection reset. Generated (Schemathesis allows every code
# point up to 255 but CR and LF), they tested uvicorn rather than the gateway and made this
# test fail now and then (an X-API-Key with a form feed); reproduced and excluded.
INVALID_HEADER_CHARACTERS = "".join(chr(code) for code in range(32) if chr(code) != "\t")


@contextlib.contextmanager
def serve(es_url: str, **overrides: Any) -> Iterator[str]:
    """``python -m gateway.api`` as uvicorn runs it (lifespan included), on a free port."""
    prefix, index = f"test-{uuid.uuid4().hex[:10]}.", f"test-tweets-{uuid.uuid4().hex[:10]}"
    kafka = KafkaSettings(topic_prefix=prefix, partitions=1)
    app = create_app(GatewaySettings(es_url=es_url, index=index, kafka=kafka, **overrides))
    port = free_port()
    # Keep-alive longer than any pause between generated requests: with uvicorn's 5 s default, a
    # busy host let the server close an idle pooled connection just as the client reused it
    # (a connection reset, reported as a flaky failure, never a server error).
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on", timeout_keep_alive=120)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="gateway-under-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the gateway did not start"
        time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
        with contextlib.suppress(Exception):
            _delete_topics(kafka.bootstrap_servers, prefix)
        with contextlib.suppress(httpx.HTTPError):
            httpx.delete(f"{es_url}/{index},{index}-jobs", params={"ignore_unavailable": "true"}, timeout=30)


@pytest.fixture(scope="module")
def es_url() -> str:  # module-scoped twin of the conftest fixture, for the module-scoped server
    return GatewaySettings().es_url


@pytest.fixture(scope="module")
def live_gateway(es_url: str) -> Iterator[str]:
    with serve(es_url) as url:
        yield url


@pytest.fixture(scope="module")
def keyed_gateway(es_url: str) -> Iterator[str]:
    # The valid key's own rate limit is out of the way, so its cases reach the handlers; the
    # guesser is locked out after 5 wrong keys (for the whole run).
    with serve(es_url, api_keys=SecretStr(f"fuzz:{FUZZ_KEY}"), rate_limit=1_000_000, auth_failure_limit=5) as url:
        yield url


def load(url: str) -> schemathesis.BaseSchema:
    loaded = schemathesis.openapi.from_url(f"{url}/openapi.json")
    # The coverage phase (every boundary value of every parameter) alone takes minutes here;
    # the examples and fuzzing phases, valid and invalid inputs alike, keep to the budget.
    loaded.config.phases.coverage.enabled = False
    loaded.config.generation.update(exclude_header_characters=INVALID_HEADER_CHARACTERS)
    return loaded


@pytest.fixture(scope="module")
def api_schema(live_gateway: str) -> schemathesis.BaseSchema:
    return load(live_gateway)


@pytest.fixture(scope="module")
def keyed_api_schema(keyed_gateway: str) -> schemathesis.BaseSchema:
    return load(keyed_gateway)


class FromAddress(HTTPAdapter):
    """Connects from ``host``: the gateway sees another client address."""

    def __init__(self, host: str) -> None:
        self.host = host
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, source_address=(self.host, 0), **kwargs)


@pytest.fixture(scope="module")
def guesser_session() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.mount("http://", FromAddress(GUESSER))
        yield session


schema = schemathesis.pytest.from_fixture("api_schema")
keyed_schema = schemathesis.pytest.from_fixture("keyed_api_schema")
case_numbers = itertools.count()


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_generated_request_gets_a_server_error(case: schemathesis.Case) -> None:
    response = case.call(timeout=30)
    case.validate_response(response, checks=[not_a_server_error])


@keyed_schema.parametrize()
@settings(max_examples=KEYED_EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_generated_request_gets_a_server_error_with_keys_set(
    case: schemathesis.Case, guesser_session: requests.Session
) -> None:
    if next(case_numbers) % GUESSES_EVERY == 0:  # as generated: a made-up key, or none
        response = case.call(timeout=30, session=guesser_session)
        guesser_statuses[response.status_code] += 1
    else:
        response = case.call(timeout=30, headers={"X-API-Key": FUZZ_KEY})
    case.validate_response(response, checks=[not_a_server_error])


def test_the_keyed_run_met_the_401_and_the_429_of_a_guessing_client() -> None:
    if not guesser_statuses:
        pytest.skip("the keyed Schemathesis run did not run in this session")
    assert guesser_statuses[401] >= 1 and guesser_statuses[429] >= 1, guesser_statuses
