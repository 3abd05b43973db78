"""The demo's load: Poisson arrivals at a steady rate, a share of them from one region.

``LoadGenerator(url, rate_per_s)`` sends GET requests in background threads with exponential
gaps between arrivals (so bursts and lulls look like real users), each with a timeout so a
slow server never stalls the arrivals: an arrival finding every worker busy is counted as
dropped rather than queued. A ``region_share`` of the requests carry ``region_header: region``
(the targeted canary's audience). ``counts()`` tallies responses by the version that served them
(the ``x-canarist-version`` header) and status, so the demo can show who served what; a request
that got no answer counts as status 0, a response without the header as version "-".

Also a command: ``python -m canarist.demo.load --url http://127.0.0.1:8080/ --rate 40``.
"""

from __future__ import annotations

import argparse
import random
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import httpx

VERSION_HEADER = "x-canarist-version"
NO_VERSION, NO_ANSWER = "-", 0


class LoadGenerator:
    """Requests at ``rate_per_s`` on average until ``stop()``; thread-safe counters."""

    def __init__(
        self,
        url: str,
        rate_per_s: float,
        *,
        region_share: float = 0.1,
        region_header: str = "x-region",
        region: str = "KR",
        seed: int | None = None,
        timeout: float = 2.0,
    ) -> None:
        if rate_per_s <= 0 or not 0 <= region_share <= 1:
            raise ValueError("rate_per_s must be positive and region_share between 0 and 1")
        self.url, self.rate = url, rate_per_s
        self.region_share, self.region_header, self.region = region_share, region_header, region
        self.timeout = timeout
        self.workers = max(4, min(256, int(rate_per_s * timeout) + 4))
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, int]] = Counter()
        self._region_counts: Counter[tuple[str, int]] = Counter()
        self._free = threading.Semaphore(self.workers)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._client: httpx.Client | None = None
        self.dropped = 0  # arrivals skipped because every worker was busy

    def start(self) -> LoadGenerator:
        if self._thread is not None:
            raise RuntimeError("the load generator is running already")
        self._stop.clear()
        limits = httpx.Limits(max_connections=self.workers, max_keepalive_connections=self.workers)
        self._client = httpx.Client(timeout=self.timeout, limits=limits, trust_env=False)
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="load")
        self._thread = threading.Thread(target=self._arrivals, name="load-arrivals", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the arrivals and wait (at most a timeout) for the requests in flight."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        if self._client is not None:
            self._client.close()
        self._thread = self._pool = self._client = None

    def counts(self) -> dict[tuple[str, int], int]:
        """Responses so far by (version that served them, status)."""
        with self._lock:
            return dict(self._counts)

    def region_counts(self) -> dict[tuple[str, int], int]:
        """The same, for the requests that carried the region header only."""
        with self._lock:
            return dict(self._region_counts)

    def _arrivals(self) -> None:
        due = time.monotonic()
        while not self._stop.is_set():
            due += self._rng.expovariate(self.rate)
            if self._stop.wait(max(0.0, due - time.monotonic())):
                return
            regional = self._rng.random() < self.region_share
            if not self._free.acquire(blocking=False):
                with self._lock:
                    self.dropped += 1
                continue
            assert self._pool is not None
            self._pool.submit(self._request, regional)

    def _request(self, regional: bool) -> None:
        headers = {self.region_header: self.region} if regional else {}
        try:
            assert self._client is not None
            response = self._client.get(self.url, headers=headers)
            key = (response.headers.get(VERSION_HEADER, NO_VERSION), response.status_code)
        except httpx.HTTPError:
            key = (NO_VERSION, NO_ANSWER)
        finally:
            self._free.release()
        with self._lock:
            self._counts[key] += 1
            if regional:
                self._region_counts[key] += 1


def format_counts(counts: Mapping[tuple[str, int], int]) -> str:
    """``v1 200: 812, v1 500: 4, v2 200: 93`` for a terminal."""
    return ", ".join(f"{version} {status}: {n}" for (version, status), n in sorted(counts.items()))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m canarist.demo.load", description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--rate", type=float, default=40.0, help="requests per second")
    parser.add_argument("--region-share", type=float, default=0.1)
    parser.add_argument("--region-header", default="x-region")
    parser.add_argument("--region", default="KR")
    parser.add_argument("--duration", type=float, default=0.0, help="seconds; 0: until Ctrl-C")
    parser.add_argument("--seed", type=int)
    args = parser.parse_args(argv)
    load = LoadGenerator(
        args.url, args.rate, region_share=args.region_share, region_header=args.region_header,
        region=args.region, seed=args.seed,
    ).start()  # fmt: skip
    started = time.monotonic()
    try:
        while not args.duration or time.monotonic() - started < args.duration:
            time.sleep(min(5.0, args.duration or 5.0))
            print(
                f"{time.monotonic() - started:6.0f} s  {format_counts(load.counts())}", flush=True
            )
    except KeyboardInterrupt:
        pass
    finally:
        load.stop()
    print(f"total  {format_counts(load.counts())}  (dropped {load.dropped})")


if __name__ == "__main__":
    main()
