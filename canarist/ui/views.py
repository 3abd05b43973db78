"""The dashboard's HTML: the frame every page shares, the rollouts list, the rollout page's own
parts (the rest is the report's, canarist/report/), sign-in and the confirmation of an action.

Everything is rendered on the server, so reading works without JavaScript; the script
(static/dashboard.js) only replaces the parts marked ``part-<name>`` with fresh ones. Each value
from a person or a policy goes through ``esc``. There is no inline script or style attribute, so
the page passes its Content-Security-Policy (``default-src 'self'``). A phase or an outcome is
always written out in words beside its colour.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

from canarist.report.formatting import duration, esc, utc
from canarist.report.page import PHASE_TONE
from canarist.ui.actions import UiAction
from workers.state import Phase, RolloutState

STATIC = "/ui/static"


@dataclass(frozen=True)
class Viewer:
    """Who is looking, as the frame shows it: their token's name and their sign-out form."""

    name: str
    csrf: str
    may_act: bool


@dataclass(frozen=True)
class Row:
    """One rollout as the list shows it."""

    state: RolloutState
    stage_label: str | None
    stage_count: int | None
    metric_outcomes: tuple[tuple[str, str], ...]  # (metric, pass | inconclusive | fail)


@dataclass(frozen=True)
class Filters:
    namespace: str = ""
    app: str = ""
    phase: str = ""

    def query(self) -> str:
        pairs = {k: v for k, v in vars(self).items() if v}
        return urlencode(pairs)


def frame(
    title: str, body: str, viewer: Viewer | None, *, live: str = "", version: str = ""
) -> str:
    """A whole page. ``live``: the JSON URL the script polls for this page's parts."""
    who = ""
    if viewer is not None:
        who = (
            f'<span class="who">Signed in as <strong>{esc(viewer.name)}</strong>'
            f"{'' if viewer.may_act else ' (read only)'}</span>"
            f'<form method="post" action="/ui/sign-out" class="inline">{csrf_field(viewer.csrf)}'
            '<button type="submit">Sign out</button></form>'
        )
    live_attrs = f' data-live="{esc(live)}" data-version="{esc(version)}"' if live else ""
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{esc(title)} · Canarist</title>"
        f'<link rel="icon" href="{STATIC}/favicon.svg" type="image/svg+xml">'
        f'<link rel="stylesheet" href="{STATIC}/report.css">'
        f'<link rel="stylesheet" href="{STATIC}/dashboard.css">'
        f'<script src="{STATIC}/dashboard.js" defer></script></head><body>'
        '<a class="skip" href="#content">Skip to content</a>'
        '<nav class="bar" aria-label="Canarist"><a class="home" href="/ui/rollouts">Canarist</a>'
        f'<a href="/ui/rollouts">Rollouts</a>{who}</nav>'
        f'<main id="content"{live_attrs}>'
        '<p id="live-status" class="live-status" role="status"></p>'
        f"{body}</main></body></html>"
    )


def csrf_field(csrf: str) -> str:
    return f'<input type="hidden" name="csrf" value="{esc(csrf)}">'


def part(name: str, html: str, tag: str = "div") -> str:
    return f'<{tag} id="part-{esc(name)}">{html}</{tag}>'


def phase_badge(phase: Phase) -> str:
    tone = PHASE_TONE.get(phase, "")
    return f'<span class="phase {tone}">{esc(phase.value.replace("_", " "))}</span>'


def outcome_badge(metric: str, outcome: str) -> str:
    return (
        f'<span class="badge {esc(outcome)}" title="{esc(metric)}: {esc(outcome)}">'
        f"{esc(metric)}: {esc(outcome.upper())}</span>"
    )


def list_page(rows: Sequence[Row], filters: Filters, now: float, viewer: Viewer) -> str:
    body = (
        "<h1>Rollouts</h1>"
        f"{filter_form(filters)}"
        f"<p>{part('count', count_text(rows), 'span')}</p>"
        '<div class="scroll"><table class="rollouts"><caption>Rollouts you may see, newest first'
        "</caption><thead><tr>"
        + "".join(
            f'<th scope="col">{name}</th>'
            for name in (
                "App",
                "Version",
                "Policy",
                "Platform",
                "Phase",
                "Stage",
                "Weight",
                "Last verdict",
                "Age",
            )
        )
        + f"</tr></thead>{part('rows', list_rows(rows, now), 'tbody')}</table></div>"
    )
    query = filters.query()
    live = "/ui/live/rollouts" + (f"?{query}" if query else "")
    return frame("Rollouts", body, viewer, live=live)


def count_text(rows: Sequence[Row]) -> str:
    return f"{len(rows)} rollout{'' if len(rows) == 1 else 's'}"


def filter_form(filters: Filters) -> str:
    phases = "".join(
        f'<option value="{phase.value}"{" selected" if filters.phase == phase.value else ""}>'
        f"{esc(phase.value.replace('_', ' '))}</option>"
        for phase in Phase
    )
    return (
        '<form method="get" action="/ui/rollouts" class="filters" role="search">'
        f'<label>Namespace <input name="namespace" value="{esc(filters.namespace)}"></label>'
        f'<label>App <input name="app" value="{esc(filters.app)}"></label>'
        f'<label>Phase <select name="phase"><option value="">any</option>{phases}</select></label>'
        '<button type="submit">Filter</button> <a href="/ui/rollouts">Clear</a></form>'
    )


def list_rows(rows: Sequence[Row], now: float) -> str:
    if not rows:
        return '<tr><td colspan="9">No rollouts match.</td></tr>'
    return "".join(row_html(row, now) for row in rows)


def row_html(row: Row, now: float) -> str:
    state = row.state
    stage = row.stage_label or f"stage {state.stage_index + 1}"
    if row.stage_count is not None:
        stage += f" ({state.stage_index + 1} of {row.stage_count})"
    badges = " ".join(outcome_badge(m, o) for m, o in row.metric_outcomes) or "—"
    badges = f'<span class="badges">{badges}</span>'  # one flex item: it wraps on a phone
    cells = (
        ("App", f'<a href="/ui/rollouts/{esc(state.id)}">{esc(state.app)}</a>'
         f'<div class="sub">{esc(state.namespace)}</div>'),
        ("Version", esc(state.spec.version)),
        ("Policy", esc(state.policy)),
        ("Platform", esc(state.spec.platform)),
        ("Phase", phase_badge(state.phase)),
        ("Stage", esc(stage)),
        ("Weight", f"{state.canary_weight}%"),
        ("Last verdict", badges),
        ("Age", f'<span title="{esc(utc(state.created_at))}">{esc(age(now - state.created_at))}'
         "</span>"),
    )  # fmt: skip
    tds = "".join(f'<td data-label="{label}">{html}</td>' for label, html in cells)
    return f'<tr id="rollout-{esc(state.id)}">{tds}</tr>'


def age(seconds: float) -> str:
    return duration(max(0.0, seconds))


def rollout_parts(report_parts: Sequence[tuple[str, str]], actions_html: str) -> dict[str, str]:
    """The rollout page's live parts: the report's, with the actions after its summary."""
    parts: dict[str, str] = {}
    for name, html in report_parts:
        parts[name] = html
        if name == "summary":
            parts["actions"] = actions_html
    return parts


def rollout_page(
    state: RolloutState, parts: Mapping[str, str], title: str, version: str, notice: str,
    viewer: Viewer,
) -> str:  # fmt: skip
    shown = f'<p class="notice" role="status">{esc(notice)}</p>' if notice else ""
    body = shown + "".join(part(name, html) for name, html in parts.items())
    return frame(title, body, viewer, live=f"/ui/live/rollouts/{state.id}", version=version)


def actions_section(state: RolloutState, actions: Sequence[UiAction], viewer: Viewer) -> str:
    if not viewer.may_act:
        return ""
    if not actions:
        return (
            '<section class="actions" aria-labelledby="actions-title">'
            '<h2 id="actions-title">Actions</h2>'
            f"<p>Nothing to do while the rollout is {esc(state.phase.value)}.</p></section>"
        )
    links = "".join(
        f'<a class="button{" danger" if action.danger else ""}" '
        f'href="/ui/rollouts/{esc(state.id)}/actions/{action.name}">{esc(action.label)}</a> '
        for action in actions
    )
    return (
        '<section class="actions" aria-labelledby="actions-title">'
        f'<h2 id="actions-title">Actions</h2><p class="buttons">{links}</p>'
        '<p class="sub">Each asks you to confirm first.</p></section>'
    )


def confirm_page(
    state: RolloutState, action: UiAction, viewer: Viewer, problem: str = "", reason: str = ""
) -> str:
    named = f"{state.app} {state.spec.version} in {state.namespace}"
    reason_field = (
        '<label for="reason">Reason (required; recorded in the audit trail)</label>'
        f'<textarea id="reason" name="reason" rows="3" required maxlength="500">{esc(reason)}'
        "</textarea>"
        if action.reason_required
        else '<label for="reason">Reason (optional)</label>'
        f'<textarea id="reason" name="reason" rows="2" maxlength="500">{esc(reason)}</textarea>'
    )
    shown = f'<p class="problem" role="alert">{esc(problem)}</p>' if problem else ""
    body = (
        f"<h1>{esc(action.label)} {esc(named)}?</h1>{shown}"
        f"<p>{esc(action.explains)} Rollout <code>{esc(state.id)}</code>, now "
        f"{phase_badge(state.phase)}, at {state.canary_weight}%. It is recorded under "
        f"<strong>{esc(viewer.name)}</strong>.</p>"
        f'<form method="post" action="/ui/rollouts/{esc(state.id)}/actions/{action.name}" '
        f'class="confirm">{csrf_field(viewer.csrf)}{reason_field}<p class="buttons">'
        f'<button type="submit" class="{"danger" if action.danger else ""}">'
        f"{esc(action.label)} {esc(state.app)} {esc(state.spec.version)}</button> "
        f'<a href="/ui/rollouts/{esc(state.id)}">Cancel</a></p></form>'
    )
    return frame(f"{action.label} {named}?", body, viewer)


def sign_in_page(next_url: str, problem: str = "") -> str:
    shown = f'<p class="problem" role="alert">{esc(problem)}</p>' if problem else ""
    body = (
        f"<h1>Sign in</h1>{shown}<p>Paste your Canarist API token once. It stays on the server; "
        "this browser keeps only a session cookie.</p>"
        '<form method="post" action="/ui/sign-in" class="confirm">'
        f'<input type="hidden" name="next" value="{esc(next_url)}">'
        '<label for="token">API token</label>'
        '<input id="token" name="token" type="password" autocomplete="off" required>'
        '<p class="buttons"><button type="submit">Sign in</button></p></form>'
    )
    return frame("Sign in", body, None)


def message_page(title: str, message: str, viewer: Viewer | None) -> str:
    body = (
        f'<h1>{esc(title)}</h1><p class="problem">{esc(message)}</p>'
        '<p><a href="/ui/rollouts">Back to the rollouts</a></p>'
    )
    return frame(title, body, viewer)
