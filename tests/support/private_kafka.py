"""A private single-node Kafka on free ports, for tests that must stop and restart the broker
(the shared one on 9092 serves everyone's tests and is never touched). ``deploy/local/infra.sh``
runs it with its own run directory, so its data survives a stop/start like a real outage."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class PrivateKafka:
    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.port, self.controller_port = free_port(), free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"

    def _infra(self, verb: str) -> None:
        env = {
            **os.environ,
            "TWEETPIPE_RUN_DIR": str(self.run_dir),
            "TWEETPIPE_KAFKA_PORT": str(self.port),
            "TWEETPIPE_KAFKA_CONTROLLER_PORT": str(self.controller_port),
        }
        done = subprocess.run(
            ["bash", str(REPO / "deploy" / "local" / "infra.sh"), verb, "kafka"],
            env=env, capture_output=True, text=True, timeout=300, check=False,
        )
        assert done.returncode == 0, f"infra.sh {verb} kafka failed: {done.stderr[-2000:]}"

    def up(self) -> None:
        self._infra("up")

    def down(self) -> None:
        self._infra("down")

    def remove(self) -> None:
        self.down()
        shutil.rmtree(self.run_dir, ignore_errors=True)
