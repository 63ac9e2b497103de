"""A local OpenAI-compatible chat-completions server with scripted faults (stdlib only).

Binds 127.0.0.1 on a random port and serves ``POST /v1/chat/completions`` from a thread pool.
Every request's arrival time, body and the number of requests in flight are recorded, so
tests can assert the client's rate and concurrency limits from the server's side.

Faults are scripted per request: a global FIFO (``script``) or one keyed by a marker
substring of the prompt (``script_for``, which wins). Without a fault the answer is the
label the prompt's tweet asks for: ``love`` → SUPPORT, ``hate`` → OPPOSE, else NEUTRAL.
``down = True`` answers 503 to everything until it is set back.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

FaultKind = Literal["ok", "status", "slow", "malformed", "answer", "drop"]


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    answer: str = ""

    @staticmethod
    def http(status: int, **headers: str) -> Fault:
        return Fault("status", status=status, headers={k.replace("_", "-"): v for k, v in headers.items()})

    @staticmethod
    def slow(delay_s: float) -> Fault:
        return Fault("slow", delay_s=delay_s)

    @staticmethod
    def malformed() -> Fault:
        return Fault("malformed")

    @staticmethod
    def says(answer: str) -> Fault:
        return Fault("answer", answer=answer)

    @staticmethod
    def drop() -> Fault:
        return Fault("drop")


@dataclass(frozen=True)
class RecordedRequest:
    arrived: float  # time.monotonic() at arrival
    body: dict[str, Any]
    fault: FaultKind
    status: int

    @property
    def prompt(self) -> str:
        return str(self.body["messages"][-1]["content"])


def label_for(prompt: str) -> str:
    tweet = prompt.rpartition("Tweet:")[2].lower()
    if "love" in tweet:
        return "SUPPORT"
    if "hate" in tweet:
        return "OPPOSE"
    return "NEUTRAL"


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that timed out and hung up is one of the scripted faults


class FakeLlmApi:
    def __init__(self, *, logprobs: bool = False, latency_s: float = 0.0) -> None:
        self.logprobs = logprobs  # answer with top_logprobs when the request asks for them
        self.latency_s = latency_s
        self.down = False
        self.requests: list[RecordedRequest] = []
        self.max_in_flight = 0
        self._in_flight = 0
        self._lock = threading.Lock()
        self._script: deque[Fault] = deque()
        self._keyed: dict[str, deque[Fault]] = {}
        self._server = _QuietServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-llm-api", daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def start(self) -> FakeLlmApi:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def script(self, *faults: Fault) -> None:
        with self._lock:
            self._script.extend(faults)

    def script_for(self, marker: str, *faults: Fault) -> None:
        with self._lock:
            self._keyed.setdefault(marker, deque()).extend(faults)

    def max_in_any_window(self, window_s: float = 1.0) -> int:
        """Most requests that arrived within any half-open window [t, t + window_s)."""
        times = sorted(r.arrived for r in self.requests)
        best, start = 0, 0
        for end, arrived in enumerate(times):
            while arrived - times[start] >= window_s:
                start += 1
            best = max(best, end - start + 1)
        return best

    def _next_fault(self, prompt: str) -> Fault:
        with self._lock:
            for marker, faults in self._keyed.items():
                if marker in prompt and faults:
                    return faults.popleft()
            if self.down:
                return Fault.http(503)
            return self._script.popleft() if self._script else Fault("ok")

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                pass

            def do_POST(self) -> None:
                arrived = time.monotonic()
                with api._lock:
                    api._in_flight += 1
                    api.max_in_flight = max(api.max_in_flight, api._in_flight)
                try:
                    body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                    fault = api._next_fault(str(body["messages"][-1]["content"]))
                    status = fault.status if fault.kind == "status" else 200
                    with api._lock:
                        api.requests.append(RecordedRequest(arrived, body, fault.kind, status))
                    time.sleep(api.latency_s + fault.delay_s)
                    self._respond(body, fault)
                finally:
                    with api._lock:
                        api._in_flight -= 1

            def _respond(self, body: dict[str, Any], fault: Fault) -> None:
                if fault.kind == "drop":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if fault.kind == "status":
                    self._send(fault.status, json.dumps({"error": {"message": "scripted"}}).encode(), fault.headers)
                    return
                if fault.kind == "malformed":
                    self._send(200, b'{"choices": [{"message": ')
                    return
                prompt = str(body["messages"][-1]["content"])
                answer = fault.answer if fault.kind == "answer" else label_for(prompt)
                choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": answer},
                                          "finish_reason": "stop"}
                if api.logprobs and body.get("logprobs") and fault.kind != "answer":
                    choice["logprobs"] = {"content": [{"token": answer, "logprob": -0.1, "top_logprobs": [
                        {"token": answer, "logprob": -0.1},
                        *({"token": other, "logprob": -3.0} for other in ("SUPPORT", "OPPOSE", "NEUTRAL")
                          if other != answer),
                    ]}]}
                self._send(200, json.dumps({"id": "fake", "object": "chat.completion", "choices": [choice]}).encode())

            def _send(self, status: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

        return Handler


@contextmanager
def running_fake_api(**kwargs: Any) -> Iterator[FakeLlmApi]:
    api = FakeLlmApi(**kwargs).start()
    try:
        yield api
    finally:
        api.stop()
