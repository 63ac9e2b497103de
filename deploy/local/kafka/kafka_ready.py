"""Exit 0 when a Kafka broker at HOST:PORT answers a Metadata request listing at least one broker.

Stdlib only so infra.sh can probe readiness on a fresh machine (no venv, no JVM start per probe).
Usage: python3 kafka_ready.py HOST PORT [TIMEOUT_SECONDS]
"""

from __future__ import annotations

import socket
import struct
import sys

_METADATA_API_KEY = 3
_METADATA_VERSION = 1  # v1: brokers carry rack, topics=null means "all"; old enough for any 3.x broker
_CLIENT_ID = b"tweetpipe-infra"


def _metadata_request(correlation_id: int) -> bytes:
    header = struct.pack(">hhih", _METADATA_API_KEY, _METADATA_VERSION, correlation_id, len(_CLIENT_ID))
    body = struct.pack(">i", -1)  # null topic array
    payload = header + _CLIENT_ID + body
    return struct.pack(">i", len(payload)) + payload


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        chunks.extend(chunk)
    return bytes(chunks)


def broker_count(host: str, port: int, timeout: float) -> int:
    correlation_id = 7
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(_metadata_request(correlation_id))
        (size,) = struct.unpack(">i", _recv_exactly(sock, 4))
        response = _recv_exactly(sock, size)
    got_correlation_id, brokers = struct.unpack_from(">ii", response, 0)
    if got_correlation_id != correlation_id:
        raise ValueError("unexpected correlation id")
    return int(brokers)


def main(argv: list[str]) -> int:
    host, port = argv[1], int(argv[2])
    timeout = float(argv[3]) if len(argv) > 3 else 3.0
    try:
        count = broker_count(host, port, timeout)
    except (OSError, ValueError, struct.error) as exc:
        sys.stderr.write(f"kafka not ready at {host}:{port}: {exc}\n")
        return 1
    if count < 1:
        sys.stderr.write(f"kafka at {host}:{port} lists no live broker yet\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
