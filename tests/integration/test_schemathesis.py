"""Schemathesis against the gateway's own OpenAPI schema: the real app served by uvicorn, wired to
the real Elasticsearch, Kafka and Jaeger; every documented operation, a bounded number of
generated requests each; no request may get a 5xx answer."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from common.settings import KafkaSettings
from gateway.api.main import create_app
from gateway.settings import GatewaySettings
from tests.conftest import _delete_topics
from tests.e2e.stack import free_port

pytestmark = [pytest.mark.kafka, pytest.mark.es, pytest.mark.jaeger]

EXAMPLES_PER_OPERATION = 20  # about 15 operations: about a minute in all

schemathesis.serializer.alias("application/x-ndjson", "text/plain")  # POST /ingest's JSON Lines body


@pytest.fixture(scope="module")
def live_gateway(es_url: str) -> Iterator[str]:
    """``python -m gateway.api`` as uvicorn runs it (lifespan included), on a free port."""
    prefix, index = f"test-{uuid.uuid4().hex[:10]}.", f"test-tweets-{uuid.uuid4().hex[:10]}"
    kafka = KafkaSettings(topic_prefix=prefix, partitions=1)
    app = create_app(GatewaySettings(es_url=es_url, index=index, kafka=kafka))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on"))
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
def api_schema(live_gateway: str) -> schemathesis.BaseSchema:
    loaded = schemathesis.openapi.from_url(f"{live_gateway}/openapi.json")
    # The coverage phase (every boundary value of every parameter) alone takes minutes here;
    # the examples and fuzzing phases, valid and invalid inputs alike, keep to the budget.
    loaded.config.phases.coverage.enabled = False
    return loaded


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_generated_request_gets_a_server_error(case: schemathesis.Case) -> None:
    response = case.call(timeout=30)
    case.validate_response(response, checks=[not_a_server_error])
