"""`deploy/local/services.sh` (what `make up` runs): replicas under supervisord, on the shared servers.

The stack gets its own topic prefix, index, ports and run directory, so it never meets the
services a developer started with `make up`.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.stack import REPO, free_port
from tests.fakes.fake_llm_api import FakeLlmApi, running_fake_api

pytestmark = [pytest.mark.kafka, pytest.mark.es, pytest.mark.model]

SERVICES_SH = REPO / "deploy" / "local" / "services.sh"


@pytest.fixture
def fake_api() -> Iterator[FakeLlmApi]:
    with running_fake_api() as api:
        yield api


@pytest.fixture
def env(
    tmp_path: Path, topic_prefix: str, index_name: str, tiny_emotion_model: Path, fake_api: FakeLlmApi
) -> Iterator[dict[str, str]]:
    environ = {k: v for k, v in os.environ.items() if k != "OTEL_EXPORTER_OTLP_ENDPOINT"}
    env = {
        **environ,
        "TWEETPIPE_HOME": str(tmp_path / "home"),
        "KAFKA_TOPIC_PREFIX": topic_prefix,
        "GATEWAY_INDEX": index_name,
        "GATEWAY_PORT": str(free_port()),
        # Replica n serves /metrics on base + 10 n: bases far apart, away from the defaults.
        "EMOTION_METRICS_PORT": str(free_port()),
        "STANCE_METRICS_PORT": str(free_port()),
        "GATEWAY_METRICS_PORT": str(free_port()),
        "EMOTION_MODEL": str(tiny_emotion_model),
        "STANCE_PROVIDER": "openai",
        "STANCE_API_BASE_URL": fake_api.base_url,
        "STANCE_API_KEY": "supervised-test-key",
        "STANCE_ALLOW_INSECURE_API_URL": "true",
        "EMOTION_REPLICAS": "2",
        "STANCE_REPLICAS": "1",
        "INDEXER_REPLICAS": "1",
    }
    yield env
    subprocess.run(["bash", str(SERVICES_SH), "down"], env=env, capture_output=True, timeout=120)


def services(env: dict[str, str], command: str) -> str:
    result = subprocess.run(["bash", str(SERVICES_SH), command], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"services.sh {command}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def programs(status: str) -> dict[str, tuple[str, int | None]]:
    """``supervisorctl status`` lines: program → (state, pid)."""
    found = {}
    for line in status.splitlines():
        match = re.match(r"^(\S+)\s+(\w+)\s*(?:pid (\d+))?", line)
        if match and "-" in match[1]:
            found[match[1]] = (match[2], int(match[3]) if match[3] else None)
    return found


def wait_running(env: dict[str, str], program: str, not_pid: int | None, timeout: float = 120) -> int:
    deadline = time.monotonic() + timeout
    while True:
        state, pid = programs(subprocess.run(
            ["bash", str(SERVICES_SH), "status"], env=env, capture_output=True, text=True, timeout=60
        ).stdout).get(program, ("missing", None))
        if state == "RUNNING" and pid is not None and pid != not_pid:
            return pid
        if time.monotonic() > deadline:
            raise AssertionError(f"{program} not RUNNING again (state {state}, pid {pid}) after {timeout:.0f}s")
        time.sleep(1)


def test_replicas_get_their_own_metrics_port_a_killed_one_is_restarted_and_down_stops_all(
    env: dict[str, str],
) -> None:
    services(env, "up")
    expected = ["emotion-0", "emotion-1", "gateway-0", "gateway-indexer-0", "stance-0"]
    pids = {program: wait_running(env, program, not_pid=None) for program in expected}
    assert sorted(programs(services(env, "status"))) == expected
    base = int(env["EMOTION_METRICS_PORT"])
    for port in (base, base + 10):  # one /metrics per emotion replica
        assert httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).status_code == 200

    killed = pids["emotion-1"]
    os.kill(killed, signal.SIGKILL)
    pids["emotion-1"] = wait_running(env, "emotion-1", not_pid=killed)
    assert all(wait_running(env, p, not_pid=None) == pid for p, pid in pids.items() if p != "emotion-1")

    services(env, "down")
    deadline = time.monotonic() + 60
    while (alive := [pid for pid in pids.values() if Path(f"/proc/{pid}").exists()]) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert alive == []
