"""Writes the supervisord configuration that `make up` runs the pipeline's processes under.

    python deploy/local/supervisor_conf.py --run DIR [--replicas emotion=3 ...] [--set NAME=VALUE ...]

One ``[program:<service>-<n>]`` per replica (not ``numprocs``): supervisord's ``update`` then
adds or removes only the replicas that changed when the counts change, and leaves the others
running. Every replica gets ``REPLICA_ID=<host>-<n>`` and its own metrics port, the service's base
port + 10 * n (emotion 9102, 9112, 9122…; stance 9103, 9113…; indexer 9104, 9114…), so
replicas of different services never collide. ``--set`` adds variables to every worker (the
CPU budget's thread counts). Every exit is restarted, whatever its status (0, 2 for a
configuration error such as a missing model, a crash, a SIGKILL): a replica never stops for
good on its own. A process that keeps dying within ``startsecs`` is retried with supervisord's
backoff (1, 2, 3… s longer each time) and never given up (``startretries`` is practically
endless), so fixing the cause (fetching the model) is enough to bring it back.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Service:
    name: str  # program prefix, log file prefix, make variable <NAME>_REPLICAS
    module: str
    port_variable: str | None  # the setting that holds the replica's /metrics port
    base_port: int = 0
    scalable: bool = True


SERVICES = (
    Service("gateway-indexer", "gateway.indexer", "GATEWAY_METRICS_PORT", 9104),
    Service("emotion", "emotion", "EMOTION_METRICS_PORT", 9102),
    Service("stance", "stance", "STANCE_METRICS_PORT", 9103),
    # The API is stateless but binds one host port; run more behind a load balancer instead.
    Service("gateway", "gateway.api", None, scalable=False),
)
REPLICA_VARIABLES = {"gateway-indexer": "INDEXER_REPLICAS", "emotion": "EMOTION_REPLICAS", "stance": "STANCE_REPLICAS"}
PORT_STRIDE = 10
START_RETRIES = 1_000_000  # supervisord marks a process FATAL (never restarted) after this many


def metrics_port(service: Service, replica: int, environ: Mapping[str, str]) -> int:
    """The base port (overridable by the service's own setting) plus 10 per replica."""
    if service.port_variable is None:
        raise ValueError(f"{service.name} has no worker metrics port")
    base = int(environ.get(service.port_variable, service.base_port))
    return 0 if base == 0 else base + PORT_STRIDE * replica  # 0 keeps /metrics off for every replica


def replica_env(service: Service, replica: int, environ: Mapping[str, str], extra: Mapping[str, str]) -> dict[str, str]:
    # The host name keeps the id unique when several hosts run replicas of one group (it names
    # the replica's Kafka transactional id); the number keeps it stable across restarts.
    env = {"REPLICA_ID": f"{socket.gethostname()}-{replica}", **extra}
    if service.port_variable is not None:
        env[service.port_variable] = str(metrics_port(service, replica, environ))
    return env


def _quote(value: str) -> str:
    # supervisord expands %(name)s in values: a literal % must be doubled.
    return '"' + value.replace("%", "%%").replace('"', '\\"') + '"'


def render(
    run: Path, python: str, replicas: Mapping[str, int], environ: Mapping[str, str], extra: Mapping[str, str]
) -> str:
    sections = [
        f"""[unix_http_server]
file={run}/supervisor.sock
chmod=0700

[supervisord]
logfile={run}/supervisord.log
logfile_maxbytes=10MB
logfile_backups=2
pidfile={run}/supervisord.pid
childlogdir={run}
directory={ROOT}
nodaemon=false

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{run}/supervisor.sock
"""
    ]
    for service in SERVICES:
        count = replicas.get(service.name, 1) if service.scalable else 1
        for replica in range(count):
            env = replica_env(service, replica, environ, extra)
            name = f"{service.name}-{replica}"
            sections.append(
                f"""[program:{name}]
command={python} -m {service.module}
directory={ROOT}
environment={",".join(f"{key}={_quote(value)}" for key, value in env.items())}
autostart=true
autorestart=true
exitcodes=0
startsecs=5
startretries={START_RETRIES}
stopsignal=TERM
stopwaitsecs=30
stopasgroup=true
killasgroup=true
redirect_stderr=true
stdout_logfile={run}/{name}.log
stdout_logfile_maxbytes=50MB
stdout_logfile_backups=3
"""
            )
    return "\n".join(sections)


def _pairs(values: list[str], what: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key:
            raise SystemExit(f"{what} takes NAME=VALUE, got {value!r}")
        pairs[key] = rest
    return pairs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="socket, pid file and logs")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--replicas", action="append", default=[], help="SERVICE=N (emotion, stance, gateway-indexer)")
    parser.add_argument("--set", action="append", default=[], help="NAME=VALUE for every worker")
    args = parser.parse_args(argv)
    replicas = {name: int(count) for name, count in _pairs(args.replicas, "--replicas").items()}
    unknown = set(replicas) - set(REPLICA_VARIABLES)
    if unknown or any(count < 1 for count in replicas.values()):
        raise SystemExit(f"--replicas: services {sorted(REPLICA_VARIABLES)} with N >= 1, got {args.replicas}")
    sys.stdout.write(render(args.run.resolve(), args.python, replicas, os.environ, _pairs(args.set, "--set")))


if __name__ == "__main__":
    main()
