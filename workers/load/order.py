"""Which synthetic load a rollout wants now, and where it goes: pure, read from the state.

A rollout wants load while it is PROGRESSING through an ``Analyze`` stage whose policy asked for
it, its platform change is done (nothing awaited), and the load's own time is not up: from the
stage's start for ``load.duration`` (default and at most the stage's). Pausing, aborting,
moving on or a new attempt all end the want, and the runner stops the load at its next read.

The target is the new version alone, through the same service users reach, so the metrics label
the load's requests exactly as they would label a user's:

- local: the app's NGINX router with ``x-canarist-preview`` (the router sends it to the new
  version whatever the weight; workers/platforms/local/model.py ``PREVIEW_HEADER``);
- kubernetes: the preview (canary) Service, ``http://<app>-canary.<namespace>.svc:<port>``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

from analyzer.policy import Policy
from analyzer.policy.load import MAX_TOTAL_REQUESTS, LoadRequestSpec, LoadSpec
from workers.state import Phase, RolloutState
from workers.strategies import Analyze, plan_for

DEFAULT_SERVICE_PORT = 80


@dataclass(frozen=True)
class LoadKey:
    """One analysis window: a stage of an attempt, as (re)started at ``started_at`` (a person's
    resume starts it over), and its ``extension`` (0: the step's own window). A load is sent
    once for each."""

    rollout_id: str
    attempt: int
    stage_index: int
    started_at: float = 0.0
    extension: int = 0


@dataclass(frozen=True)
class LoadOrder:
    """A bounded load: ``rate`` per second from ``starts_at`` to ``ends_at``, ``total`` at most."""

    key: LoadKey
    rate: float
    starts_at: float
    ends_at: float
    total: int
    requests: tuple[LoadRequestSpec, ...] | str  # or a sample file in the policy directory
    headers: tuple[tuple[str, str], ...]
    port: int | None

    def remaining(self, now: float) -> int:
        """The requests still allowed at ``now``: the total, less the share of time gone, so a
        load started late, or resumed by a restarted load process, keeps to its share."""
        span = max(self.ends_at - self.starts_at, 1e-9)
        left = max(0.0, min(1.0, (self.ends_at - now) / span))
        return math.ceil(self.total * left)


def wanted(state: RolloutState, policy: Policy, now: float) -> LoadOrder | None:
    """The load ``state`` wants at ``now``, or None."""
    if state.phase is not Phase.PROGRESSING or state.awaiting is not None:
        return None
    if state.stage_started_at is None:
        return None
    plan = plan_for(policy.strategy)
    if not 0 <= state.stage_index < len(plan):
        return None
    stage = plan[state.stage_index]
    if not isinstance(stage, Analyze) or stage.load is None:
        return None
    order = order_for(state, stage.load, stage.duration)
    return order if order.starts_at <= now < order.ends_at else None


def order_for(state: RolloutState, load: LoadSpec, stage_seconds: float) -> LoadOrder:
    """From the stage's start (warming up through ``begin_after``) to the end of the load's
    share of the analysis window, never past the stage's last look; an extension of the window
    (an inconclusive last look) gets its own load over the extension, with the same bounds. At
    most its rate over that time (one more, so that time, not count, ends it) or its
    ``max_requests``, and never more than ``MAX_TOTAL_REQUESTS``."""
    step = timedelta(seconds=stage_seconds)
    started = state.stage_started_at or state.updated_at
    window = max(started, state.window_start or started)
    last_look = state.final_look_at or window + stage_seconds
    starts = started if state.extensions == 0 else last_look - stage_seconds
    window = window if state.extensions == 0 else starts
    ends = min(last_look, window + load.seconds(step))
    requests = load.requests if isinstance(load.requests, str) else tuple(load.requests)
    key = LoadKey(state.id, state.attempt, state.stage_index, started, state.extensions)
    return LoadOrder(
        key,
        load.rate,
        starts,
        ends,
        min(
            math.ceil(load.rate * (ends - starts)) + 1,
            load.total(step) if load.max_requests else MAX_TOTAL_REQUESTS,
        ),
        requests,
        tuple(sorted(load.headers.items())),
        load.port,
    )


def kubernetes_url(state: RolloutState, port: int | None) -> str:
    """The preview Service's in-cluster URL."""
    service = state.spec.traffic.resolved(state.app).canary_service
    return f"http://{service}.{state.namespace}.svc:{port or DEFAULT_SERVICE_PORT}"
