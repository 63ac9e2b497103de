"""Runs the pipeline's services as real processes (`python -m ...`) for end-to-end tests.

Each stack gets its own topic prefix, index and API port, so tests never share state.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]

MODULES = {
    "gateway-indexer": "gateway.indexer",
    "gateway": "gateway.api",
    "emotion": "emotion",
    "stance": "stance",
}
METRICS_PORTS = {
    "gateway-indexer": "GATEWAY_METRICS_PORT",
    "emotion": "EMOTION_METRICS_PORT",
    "stance": "STANCE_METRICS_PORT",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Stack:
    env: dict[str, str]
    logs: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @classmethod
    def create(cls, tmp: Path, prefix: str, index: str, extra: dict[str, str]) -> Stack:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(REPO / "libs"), str(REPO / "services"), str(REPO)]),
            "PYTHONUNBUFFERED": "1",
            "KAFKA_TOPIC_PREFIX": prefix,
            "GATEWAY_INDEX": index,
            "GATEWAY_PORT": str(free_port()),
            "GATEWAY_INDEXER_BATCH_SIZE": "200",
            "EMOTION_METRICS_PORT": str(free_port()),
            "STANCE_METRICS_PORT": str(free_port()),
            "GATEWAY_METRICS_PORT": str(free_port()),
            "STANCE_N_THREADS": "1",
            **extra,
        }
        return cls(env=env, logs=tmp)

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.env['GATEWAY_PORT']}"

    def start(self, name: str, replica: int | None = None, module: str | None = None) -> str:
        """Start ``name`` (``<name>-<replica>`` with REPLICA_ID and /metrics off, for replicas).

        ``module`` runs another entry point in its place (a test-support wrapper). Returns the
        process's key for :meth:`kill` and :meth:`stop`.
        """
        key, env = name, self.env
        if replica is not None:
            key = f"{name}-{replica}"
            env = {**self.env, "REPLICA_ID": str(replica), METRICS_PORTS.get(name, "UNUSED_METRICS_PORT"): "0"}
        log = (self.logs / f"{key}.log").open("ab")
        self.processes[key] = subprocess.Popen(
            [sys.executable, "-m", module or MODULES[name]], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        return key

    def stop(self, name: str) -> int:
        """A clean leave: SIGTERM, then the exit status (0 unless the worker failed)."""
        process = self.processes.pop(name)
        process.send_signal(signal.SIGTERM)
        return process.wait(60)

    def kill(self, name: str) -> None:
        """A crash: SIGKILL, no chance to commit or flush anything."""
        process = self.processes.pop(name)
        process.send_signal(signal.SIGKILL)
        process.wait(30)

    def stop_all(self) -> None:
        for process in self.processes.values():
            process.send_signal(signal.SIGTERM)
        for name, process in list(self.processes.items()):
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
            self.processes.pop(name)

    def assert_running(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                tail = (self.logs / f"{name}.log").read_text(errors="replace")[-3000:]
                raise AssertionError(f"{name} exited with {process.returncode}:\n{tail}")

    def wait_ready(self, timeout: float = 120) -> None:
        """Until the API answers /readyz (Kafka and Elasticsearch reachable)."""
        deadline = time.monotonic() + timeout
        while True:
            self.assert_running()
            try:
                if httpx.get(f"{self.api}/readyz", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass  # not listening yet
            if time.monotonic() > deadline:
                raise AssertionError(f"gateway API not ready at {self.api} after {timeout:.0f}s")
            time.sleep(0.5)

    def replay(self, path: Path, *args: str) -> dict[str, Any]:
        summary = self.logs / f"summary-{path.stem}.json"
        result = subprocess.run(
            [sys.executable, "-m", "ingestor", "replay", str(path), "--summary-json", str(summary), *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, f"replay failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        return dict(json.loads(summary.read_text()))

    def all_tweets(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        with httpx.Client(base_url=self.api, timeout=30) as client:
            while True:
                params: dict[str, str | int] = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
                page = client.get("/tweets", params=params).raise_for_status().json()
                items.extend(page["items"])
                cursor = page["next_cursor"]
                if not cursor:
                    return items
