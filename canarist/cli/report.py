"""``canarist report ROLLOUT_ID [--output FILE]``: the rollout report as an HTML file.

Where the service runs (its settings: ``redis.url``, ``prometheus``, ``policy_dir``), this
renders the same page as ``GET /v1/rollouts/{id}/report`` straight from the state store and
Prometheus, so it works when the API is down, and the file can be attached to an incident.
Without ``--output`` the page goes to stdout. Exit codes: 0 written, 2 unknown rollout or bad
settings, 1 the state store cannot be read.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from analyzer.errors import PolicyError
from analyzer.policy import Policy
from analyzer.sources.prometheus import PrometheusSource
from canarist.report import render_report, write_report
from canarist.settings import Settings
from workers.errors import CorruptRecord, IntakeError, NotFound, StoreError
from workers.policies import PinnedPolicies, PolicyDir
from workers.state import RolloutState
from workers.store import StateStore, store_from_url

INVALID, FAILED = 2, 1


def report(
    rollout_id: Annotated[str, typer.Argument(help="the rollout's id")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="write here instead of stdout")
    ] = None,
) -> None:
    """Write the rollout's report (HTML: decision, charts, evidence, timeline)."""
    try:
        settings = Settings()
    except (ValueError, OSError) as exc:
        _fail(INVALID, f"the settings do not load: {exc}")
    store = store_from_url(settings.redis.url)
    try:
        state = store.load(rollout_id).state
        policy, problem = _policy(settings.policy_dir, store, state)
        token = settings.prometheus.bearer_token
        with PrometheusSource(
            settings.prometheus.url,
            settings.prometheus.timeout_seconds,
            bearer_token=token.get_secret_value() if token is not None else None,
        ) as source:
            page = render_report(
                store, source, policy, rollout_id, now=time.time(), policy_problem=problem
            )
    except NotFound:
        _fail(INVALID, f"no rollout {rollout_id}")
    except CorruptRecord as exc:
        _fail(FAILED, f"the rollout cannot be read: {exc}")
    except StoreError as exc:
        _fail(FAILED, f"the state store cannot be read: {exc}")
    if output is None:
        sys.stdout.write(page)
        return
    typer.echo(f"report of {rollout_id} written to {write_report(output, page)}", err=True)


def _policy(
    policy_dir: Path, store: StateStore, state: RolloutState
) -> tuple[Policy | None, str | None]:
    """The policy the rollout pinned at submit, or (before pinning) its file as it is now."""
    try:
        if state.policy_digest is not None:
            return PinnedPolicies(store.policies).load(state.policy, state.policy_digest), None
        return PolicyDir(policy_dir).load(state.policy), None
    except (IntakeError, PolicyError) as exc:
        problem = f"policy {state.policy!r} cannot be loaded, so there are no data charts: {exc}"
        return None, problem


def _fail(code: int, message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)
