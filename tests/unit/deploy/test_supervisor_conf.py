"""The supervisord configuration `make up` writes: one program per replica, distinct ports, REPLICA_ID."""

from __future__ import annotations

import configparser
import shlex
import socket
from pathlib import Path

import pytest

from deploy.local.supervisor_conf import SERVICES, Service, metrics_port, render


def parse(text: str) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser()
    parser.read_string(text)
    return parser


def environment(section: configparser.SectionProxy) -> dict[str, str]:
    pairs = shlex.split(section["environment"].replace(",", " "))
    return dict(pair.split("=", 1) for pair in pairs)


def programs(conf: configparser.RawConfigParser) -> dict[str, configparser.SectionProxy]:
    return {name.removeprefix("program:"): conf[name] for name in conf.sections() if name.startswith("program:")}


def test_replicas_get_their_own_program_replica_id_and_metrics_port(tmp_path: Path) -> None:
    replicas = {"emotion": 3, "stance": 2, "gateway-indexer": 2}
    conf = parse(render(tmp_path, "/venv/python", replicas, {}, {}))
    found = programs(conf)
    assert sorted(found) == sorted(
        ["emotion-0", "emotion-1", "emotion-2", "stance-0", "stance-1", "gateway-indexer-0", "gateway-indexer-1",
         "gateway-0"]
    )
    assert environment(found["emotion-2"])["REPLICA_ID"] == f"{socket.gethostname()}-2"  # unique across hosts
    ports = [
        int(value) for section in found.values() for key, value in environment(section).items() if "METRICS_PORT" in key
    ]
    assert len(ports) == 7 and len(set(ports)) == 7  # every worker replica, no two on one port
    assert environment(found["emotion-0"])["EMOTION_METRICS_PORT"] == "9102"
    assert environment(found["stance-1"])["STANCE_METRICS_PORT"] == "9113"
    assert found["gateway-indexer-1"]["command"] == "/venv/python -m gateway.indexer"
    assert found["emotion-1"]["stdout_logfile"] == f"{tmp_path}/emotion-1.log"


def test_every_exit_is_restarted_and_supervisord_never_gives_up(tmp_path: Path) -> None:
    for section in programs(parse(render(tmp_path, "python", {"emotion": 2}, {}, {}))).values():
        assert section["autorestart"] == "true"  # 0, 2 (a configuration error), crashes, SIGKILLs
        assert int(section["startsecs"]) > 0  # a process dying at start is retried with backoff...
        assert int(section["startretries"]) >= 100_000  # ...and never marked FATAL in practice


def test_budget_variables_reach_every_worker_and_percent_signs_survive(tmp_path: Path) -> None:
    conf = parse(render(tmp_path, "python", {"emotion": 2}, {}, {"STANCE_N_THREADS": "1", "ODD": "50%"}))
    for section in programs(conf).values():
        env = environment(section)
        assert env["STANCE_N_THREADS"] == "1"
        assert env["ODD"] == "50%%"  # supervisord expands %(...)s; %% is a literal %


@pytest.mark.parametrize("service", [s for s in SERVICES if s.port_variable])
def test_an_explicit_base_port_moves_every_replica_and_zero_turns_metrics_off(service: Service) -> None:
    assert service.port_variable is not None
    assert metrics_port(service, 2, {service.port_variable: "7000"}) == 7020
    assert metrics_port(service, 2, {service.port_variable: "0"}) == 0
