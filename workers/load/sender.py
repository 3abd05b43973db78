"""One bounded synthetic load: requests at a steady rate until its time or count is up.

``LoadSender`` paces arrivals at ``1 / rate`` from one thread and sends each from a small pool,
with a timeout, so a slow target never makes it send faster later or queue without end: an
arrival that finds every sender busy is counted as skipped. It stops by itself at ``ends_at``
(read once against the monotonic clock, so a clock change cannot stretch it) or after ``total``
requests, and at once on ``stop()``. Its threads are daemons of the load process: they end with it.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from analyzer.policy.load import MAX_RATE_PER_SECOND, MAX_TOTAL_REQUESTS, LoadRequestSpec

NO_ANSWER = 0
TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class LoadTally:
    """What a load sent and saw: the audit trail's and the report's numbers."""

    sent: int = 0
    errors: int = 0  # no answer, or a 5xx
    skipped: int = 0  # arrivals dropped because every sender was busy
    statuses: Mapping[int, int] = field(default_factory=dict)  # 0: no answer
    seconds: float = 0.0

    def as_data(self) -> dict[str, object]:
        return {
            "sent": self.sent,
            "errors": self.errors,
            "skipped": self.skipped,
            "statuses": {str(code): count for code, count in sorted(self.statuses.items())},
            "seconds": round(self.seconds, 1),
        }


class LoadSender:
    """Sends ``requests`` in turn to ``url`` at ``rate`` per second, at most ``total``."""

    def __init__(
        self,
        url: str,
        requests: Sequence[LoadRequestSpec],
        *,
        rate: float,
        total: int,
        ends_at: float,
        headers: Mapping[str, str] | None = None,
        clock: float | None = None,
    ) -> None:
        if not requests or not 0 < rate <= MAX_RATE_PER_SECOND or total > MAX_TOTAL_REQUESTS:
            raise ValueError(
                f"a load needs requests, a rate up to {MAX_RATE_PER_SECOND:g}/s and at most "
                f"{MAX_TOTAL_REQUESTS} requests"
            )  # the policy's bounds, held again where the requests are sent
        self.url, self.requests, self.rate, self.total = url.rstrip("/"), requests, rate, total
        self.headers = dict(headers or {})
        now = time.time() if clock is None else clock
        self._deadline = time.monotonic() + max(0.0, ends_at - now)
        self.workers = max(2, min(64, int(rate * TIMEOUT_SECONDS) + 2))
        self._lock = threading.Lock()
        self._statuses: Counter[int] = Counter()
        self._sent = self._skipped = 0
        self._free = threading.Semaphore(self.workers)
        self._stop = threading.Event()
        self._done = threading.Event()
        self._started = time.monotonic()
        self._ended: float | None = None
        self.ended_by = ""  # once finished: "count", "time" or "stop" (told to)
        self._thread = threading.Thread(target=self._run, name="canarist-load", daemon=True)

    def start(self) -> LoadSender:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop sending now; requests in flight finish within their timeout."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait until it has stopped (and its requests have ended); True if it has."""
        return self._done.wait(timeout)

    @property
    def finished(self) -> bool:
        return self._done.is_set()

    def tally(self) -> LoadTally:
        with self._lock:
            statuses = dict(self._statuses)
            sent, skipped = self._sent, self._skipped
        errors = sum(n for code, n in statuses.items() if code == NO_ANSWER or code >= 500)
        seconds = (self._ended or time.monotonic()) - self._started
        return LoadTally(sent, errors, skipped, statuses, seconds)

    def _run(self) -> None:
        limits = httpx.Limits(max_connections=self.workers, max_keepalive_connections=self.workers)
        client = httpx.Client(timeout=TIMEOUT_SECONDS, limits=limits, trust_env=False)
        pool = ThreadPoolExecutor(self.workers, thread_name_prefix="canarist-load")
        try:
            self._pace(client, pool)
        finally:
            pool.shutdown(wait=True)
            client.close()
            self._ended = time.monotonic()
            self._done.set()

    def _pace(self, client: httpx.Client, pool: ThreadPoolExecutor) -> None:
        gap, due, index = 1.0 / self.rate, time.monotonic(), 0
        self.ended_by = "count"
        while index < self.total:
            if due >= self._deadline:
                self.ended_by = "time"
                return
            if self._stop.wait(max(0.0, due - time.monotonic())):
                self.ended_by = "stop"
                return
            due += gap
            if not self._free.acquire(blocking=False):
                with self._lock:
                    self._skipped += 1
                index += 1  # a skipped arrival counts against the total: the bound is arrivals
                continue
            pool.submit(self._send, client, self.requests[index % len(self.requests)])
            index += 1

    def _send(self, client: httpx.Client, request: LoadRequestSpec) -> None:
        try:
            response = client.request(
                request.method,
                self.url + request.path,
                headers=self.headers | dict(request.headers),
                content=request.body,
            )
            status = response.status_code
        except httpx.HTTPError:
            status = NO_ANSWER
        finally:
            self._free.release()
        with self._lock:
            self._sent += 1
            self._statuses[status] += 1


def read_sample(path: Path) -> tuple[LoadRequestSpec, ...]:
    """A recorded sample: one ``METHOD /path`` (or ``/path``, a GET) a line; ``#`` comments.

    ValueError naming the file and line of the first line it cannot read."""
    requests = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        method, target = ("GET", parts[0]) if len(parts) == 1 else (parts[0].upper(), parts[1])
        try:
            requests.append(LoadRequestSpec(method=method, path=target))
        except ValueError as exc:
            where = f"{path.name}:{number}"
            raise ValueError(f"{where}: not a request like 'GET /items': {raw!r}") from exc
    if not requests:
        raise ValueError(f"{path.name}: no request in the sample")
    return tuple(requests)
