"""The demo's HTTP service: one process per instance, whose health the flags decide.

``python -m canarist.demo.service --port P --version V [--latency 0.02] [--extra-latency 0]
[--error-rate 0] [--tail-latency-share 0 --tail-latency 0.5] [--memory-growth-mb-per-min 0]``

``GET /`` does simulated work: a lognormal service time whose median is ``--latency``, plus
``--extra-latency``, plus ``--tail-latency`` for a ``--tail-latency-share`` of requests; with
probability ``--error-rate`` it answers 500. ``GET /healthz`` answers 200 at once; ``GET
/metrics`` is Prometheus' text format with the metrics the shipped policies judge:
``http_requests_total{code}``, ``http_request_duration_seconds`` (buckets dense around the demo's
latencies) and ``process_resident_memory_bytes`` (the real RSS: ``--memory-growth-mb-per-min``
really allocates and holds memory). The metrics carry no version label: Prometheus adds app,
version and track from the local platform's file_sd targets. Every response has the header
``x-canarist-version``, so a client can tell which version served it. SIGTERM stops it cleanly.
"""

from __future__ import annotations

import argparse
import math
import random
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

VERSION_HEADER = "x-canarist-version"
BUCKETS = (
    *(round(0.005 * step, 3) for step in range(1, 11)),  # 5 ms steps up to 50 ms
    0.06, 0.07, 0.08, 0.09, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip
MEMORY_CAP_MB = 1024  # --memory-growth stops holding more than this, to spare the machine
LOGNORMAL_SIGMA = 0.25  # spread of the service time around its median


@dataclass(frozen=True)
class Behaviour:
    """What the flags ask of the service."""

    version: str
    latency: float = 0.02
    extra_latency: float = 0.0
    error_rate: float = 0.0
    tail_latency_share: float = 0.0
    tail_latency: float = 0.5
    memory_growth_mb_per_min: float = 0.0

    def service_time(self, rng: random.Random) -> float:
        seconds = self.extra_latency
        if self.latency > 0:
            seconds += rng.lognormvariate(math.log(self.latency), LOGNORMAL_SIGMA)
        if self.tail_latency_share > 0 and rng.random() < self.tail_latency_share:
            seconds += self.tail_latency
        return seconds


class DemoService:
    """The server, its metrics and its memory ballast; ``serve()`` blocks until ``stop()``."""

    def __init__(self, behaviour: Behaviour, port: int, host: str = "127.0.0.1") -> None:
        self.behaviour = behaviour
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.requests = Counter(
            "http_requests_total", "Requests to /, by status code", ["code"], registry=self.registry
        )
        self.duration = Histogram(
            "http_request_duration_seconds",
            "Time to answer a request to /",
            buckets=BUCKETS,
            registry=self.registry,
        )
        self._rng, self._rng_lock = random.Random(), threading.Lock()
        self._ballast: list[bytes] = []
        self._stopping = threading.Event()
        self.server = ThreadingHTTPServer((host, port), _handler(self))
        self.server.daemon_threads = True

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def draw(self) -> tuple[float, bool]:
        """One request's service time and whether it fails."""
        with self._rng_lock:
            seconds = self.behaviour.service_time(self._rng)
            return seconds, self._rng.random() < self.behaviour.error_rate

    def serve(self) -> None:
        if self.behaviour.memory_growth_mb_per_min > 0:
            threading.Thread(target=self._grow, name="ballast", daemon=True).start()
        try:
            self.server.serve_forever(poll_interval=0.2)
        finally:
            self.server.server_close()

    def stop(self) -> None:
        """Stop serving (from any thread but the one in ``serve``)."""
        self._stopping.set()
        self.server.shutdown()

    def _grow(self) -> None:
        per_second = self.behaviour.memory_growth_mb_per_min / 60 * 1024 * 1024
        held = 0.0
        while not self._stopping.wait(1.0) and held < MEMORY_CAP_MB * 1024 * 1024:
            chunk = int(per_second)
            self._ballast.append(b"\xa5" * chunk)  # written, so it is resident, not just mapped
            held += chunk


def _handler(service: DemoService) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive with NGINX's upstream connections
        disable_nagle_algorithm = True  # headers and body are two writes: no delayed-ACK stall
        server_version = "canarist-demo"

        def do_GET(self) -> None:
            if self.path == "/healthz":
                self._answer(200, b"ok\n")
            elif self.path == "/metrics":
                self._answer(200, generate_latest(service.registry), CONTENT_TYPE_LATEST)
            elif self.path == "/" or self.path.startswith("/?"):
                self._work()
            else:
                self._answer(404, b"not found\n")

        def _work(self) -> None:
            started = time.perf_counter()
            seconds, fails = service.draw()
            time.sleep(seconds)
            code = 500 if fails else 200
            service.duration.observe(time.perf_counter() - started)
            service.requests.labels(str(code)).inc()
            self._answer(
                code, f"{service.behaviour.version} {'failed' if fails else 'ok'}\n".encode()
            )

        def _answer(self, code: int, body: bytes, content_type: str = "text/plain") -> None:
            try:
                self.send_response(code)
                self.send_header(VERSION_HEADER, service.behaviour.version)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up: not our error
                self.close_connection = True

        def log_message(self, format: str, *args: Any) -> None:
            return None  # one line per request would fill the instance's log

    return Handler


def parse_args(argv: Sequence[str] | None = None) -> tuple[Behaviour, int]:
    parser = argparse.ArgumentParser(prog="python -m canarist.demo.service", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--version", required=True)
    parser.add_argument("--latency", type=float, default=0.02, help="median seconds of work")
    parser.add_argument("--extra-latency", type=float, default=0.0, help="seconds added to each")
    parser.add_argument("--error-rate", type=float, default=0.0, help="share answered with 500")
    parser.add_argument("--tail-latency-share", type=float, default=0.0)
    parser.add_argument("--tail-latency", type=float, default=0.5)
    parser.add_argument("--memory-growth-mb-per-min", type=float, default=0.0)
    args = parser.parse_args(argv)
    if not 0 <= args.error_rate <= 1 or not 0 <= args.tail_latency_share <= 1:
        parser.error("--error-rate and --tail-latency-share are shares between 0 and 1")
    if min(args.latency, args.extra_latency, args.tail_latency) < 0:
        parser.error("latencies are seconds, not negative")
    behaviour = Behaviour(
        args.version, args.latency, args.extra_latency, args.error_rate,
        args.tail_latency_share, args.tail_latency, args.memory_growth_mb_per_min,
    )  # fmt: skip
    return behaviour, args.port


def main(argv: Sequence[str] | None = None) -> None:
    behaviour, port = parse_args(argv)
    service = DemoService(behaviour, port)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=service.stop, name="stop").start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    service.serve()


if __name__ == "__main__":
    main()
