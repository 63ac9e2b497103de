"""A private Kafka broker and Elasticsearch node for the fault tests, which stop and restart them.

Started by ``deploy/local/infra.sh`` with its own run directory (data, logs, pids) and free
ports, reusing the downloads that ``make up-infra`` cached, so the shared servers on 9092/9200
that everything else uses are never touched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.e2e.stack import REPO, free_port

INFRA = REPO / "deploy" / "local" / "infra.sh"


@dataclass
class PrivateInfra:
    run_dir: Path
    kafka_port: int
    es_port: int
    env: dict[str, str]

    @classmethod
    @contextlib.contextmanager
    def running(cls) -> Iterator[PrivateInfra]:
        """Start both servers; stop them and delete their data afterwards.

        The run directory lives under $TWEETPIPE_HOME, not pytest's tmp: Elasticsearch runs as
        an unprivileged user when we are root, and pytest resets its tmp root to mode 0700.
        """
        home = Path(os.environ.get("TWEETPIPE_HOME", Path.home() / ".cache" / "tweet-pipeline"))
        private = cls.create(home / "run-faults" / uuid.uuid4().hex[:10])
        try:
            private.start()
            yield private
        finally:
            private.stop()
            shutil.rmtree(private.run_dir, ignore_errors=True)

    @classmethod
    def create(cls, run_dir: Path) -> PrivateInfra:
        kafka_port, es_port = free_port(), free_port()
        env = {
            **os.environ,
            "TWEETPIPE_RUN_DIR": str(run_dir),
            "TWEETPIPE_KAFKA_PORT": str(kafka_port),
            "TWEETPIPE_KAFKA_CONTROLLER_PORT": str(free_port()),
            "TWEETPIPE_ES_PORT": str(es_port),
            "TWEETPIPE_ES_TRANSPORT_PORT": str(free_port()),
            "TWEETPIPE_STOP_SECONDS": "60",
        }
        return cls(run_dir, kafka_port, es_port, env)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def es_url(self) -> str:
        return f"http://127.0.0.1:{self.es_port}"

    def _infra(self, command: str, *components: str) -> float:
        """Run ``infra.sh command components``; returns how long it took."""
        started = time.monotonic()
        result = subprocess.run(
            ["bash", str(INFRA), command, *components], env=self.env, capture_output=True, text=True, timeout=400
        )
        assert result.returncode == 0, f"infra.sh {command} {components} failed:\n{result.stderr[-4000:]}"
        return time.monotonic() - started

    def start(self, *components: str) -> float:
        return self._infra("up", *(components or ("kafka", "elasticsearch")))

    def stop(self, *components: str) -> float:
        return self._infra("down", *(components or ("kafka", "elasticsearch")))

    def kill(self, component: str) -> None:
        """A hard fault: SIGKILL the server (no shutdown hooks, no flush), and wait until it is gone."""
        pid = int((self.run_dir / component / f"{component}.pid").read_text().strip())
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)
        raise AssertionError(f"{component} (pid {pid}) still alive 30 s after SIGKILL")

    def es_up(self) -> bool:
        try:
            return httpx.get(f"{self.es_url}/_cluster/health", timeout=5).status_code == 200
        except httpx.TransportError:
            return False
