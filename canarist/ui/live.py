"""What the dashboard's pages show, gathered for a signed-in person: used by the pages and by
the JSON the page script polls, so both always say the same.

The list reads the rollouts of the token's namespaces, one listing per namespace as the API
does, so another namespace's newest rollouts cannot crowd out the viewer's. Each row's badges
are the last look's verdict per metric, read from the audit trail (the record keeps only the
summary) and cached per rollout until its record changes, so a poll every two seconds reads
each trail once per change, not once per poll.

The rollout page is the report (canarist/report/) rebuilt from the store and Prometheus, with
the actions after its summary; its version is the record's revision, so a poll that finds the
same revision is answered without rebuilding anything.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass

from fastapi import Request

from canarist.api.auth import Caller
from canarist.api.models import latest_evidence
from canarist.api.report import metric_source, rollout_policy
from canarist.api.routes import services
from canarist.report.build import build_report, render_sections
from canarist.report.page import title
from canarist.ui.actions import offered
from canarist.ui.sessions import COOKIE, Session, Sessions, token_named
from canarist.ui.views import Filters, Row, Viewer, actions_section, rollout_page, rollout_parts
from workers.errors import NotFound
from workers.state import RolloutState

MAX_CACHED = 2000


class Dashboard:
    """The dashboard's parts in one API process: the sessions (kept in the store, shared by
    every process) and this process's cache of the badges."""

    def __init__(self, sessions: Sessions) -> None:
        self.sessions = sessions
        self._badges: dict[str, tuple[float, tuple[tuple[str, str], ...]]] = {}
        self._lock = threading.Lock()

    def cached_badges(self, state: RolloutState) -> tuple[tuple[str, str], ...] | None:
        with self._lock:
            kept = self._badges.get(state.id)
        return kept[1] if kept is not None and kept[0] == state.updated_at else None

    def keep_badges(self, state: RolloutState, badges: tuple[tuple[str, str], ...]) -> None:
        with self._lock:
            if len(self._badges) >= MAX_CACHED:
                self._badges.clear()
            self._badges[state.id] = (state.updated_at, badges)


@dataclass(frozen=True)
class SignedIn:
    session: Session
    caller: Caller

    def viewer(self) -> Viewer:
        return Viewer(self.caller.name, self.session.csrf, self.caller.token.grants("operate"))


def dashboard(request: Request) -> Dashboard:
    board: Dashboard = request.app.state.dashboard
    return board


def signed_in(request: Request) -> SignedIn | None:
    """The request's live session and its token (re-read from the settings), if it may read."""
    session = dashboard(request).sessions.find(request.cookies.get(COOKIE))
    if session is None:
        return None
    token = token_named(services(request).settings, session.token_name)
    if token is None or not token.grants("read"):
        return None
    return SignedIn(session, Caller(token))


def list_parts(request: Request, who: SignedIn, filters: Filters) -> tuple[list[Row], float]:
    found, board = services(request), dashboard(request)
    scopes = [filters.namespace] if filters.namespace else who.caller.namespaces
    states = [state for scope in scopes for state in found.intake.list(scope)]
    states = [
        state
        for state in states
        if who.caller.token.allows(state.namespace)
        and (not filters.app or state.app == filters.app)
        and (not filters.phase or state.phase.value == filters.phase)
    ]
    states.sort(key=lambda state: (state.created_at, state.id), reverse=True)
    rows = []
    for state in states:
        badges = board.cached_badges(state)
        if badges is None:
            badges = _metric_outcomes(request, state)
            board.keep_badges(state, badges)
        label, count = found.labels(state)
        rows.append(Row(state, label, count, badges))
    return rows, found.intake.clock()


def _metric_outcomes(request: Request, state: RolloutState) -> tuple[tuple[str, str], ...]:
    try:
        _, events = services(request).intake.get(state.id)
    except NotFound:
        return ()
    verdict = latest_evidence(events) or {}
    metrics = verdict.get("metrics", [])
    outcomes = []
    for metric in metrics if isinstance(metrics, list) else []:
        judgement = metric.get("judgement", {}) if isinstance(metric, dict) else {}
        if isinstance(judgement, dict) and "outcome" in judgement:
            outcomes.append((str(metric.get("name", "?")), str(judgement["outcome"])))
    return tuple(outcomes)


@dataclass(frozen=True)
class RolloutView:
    state: RolloutState
    title: str
    parts: dict[str, str]
    version: str

    def page(self, viewer: Viewer, notice: str) -> str:
        return rollout_page(self.state, self.parts, self.title, self.version, notice, viewer)


def rollout_view(request: Request, who: SignedIn, rollout_id: str) -> RolloutView:
    """The rollout's page parts; NotFound when it is unknown or outside the token's scope."""
    found = services(request)
    stored = found.intake.store.load(rollout_id)
    if not who.caller.token.allows(stored.state.namespace):
        raise NotFound(f"no rollout {rollout_id}")
    policy, problem = rollout_policy(found.intake, stored.state)
    with metric_source(request, found.settings) as source:
        report = build_report(
            found.intake.store,
            source,
            policy,
            rollout_id,
            now=found.intake.clock(),
            policy_problem=problem,
        )
    state = report.history.state
    actions = actions_section(state, offered(state), who.viewer())
    parts = rollout_parts(render_sections(report), actions)
    return RolloutView(state, title(report.history), parts, str(stored.revision))


def version_of(parts: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]
