"""The report as one self-contained HTML document: the decision first, then why, then when.

Order follows what an on-call engineer needs at 3 a.m.: the header says what was decided, why
(in one sentence), by whom, and when; the metric cards show the data and each judge's ruling;
the evidence section shows how the statistics grew look by look; the timeline lists every audit
event. The page has one inline stylesheet and inline SVG, no script and no external URL, so it
opens offline, survives being saved or mailed, and passes a ``default-src 'none'`` policy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from analyzer.verdict import Judgement
from canarist.report.evidence import ChartContext, badge, evidence_chart, looks_table
from canarist.report.formatting import Unit, duration, esc, number, utc
from canarist.report.history import History, decisive_verdict
from canarist.report.hooks import hooks_section
from canarist.report.sections import slug
from canarist.report.svg import COLOURS
from workers.actions import EventKind
from workers.policies import short_digest
from workers.state import Phase
from workers.store import AuditEvent

PHASE_TONE = {
    Phase.PROMOTED: "good",
    Phase.PROMOTING: "good",
    Phase.ABORTED: "bad",
    Phase.ABORTING: "bad",
    Phase.FAILED: "bad",
    Phase.PAUSED: "wait",
    Phase.AWAITING_APPROVAL: "wait",
    Phase.PROGRESSING: "busy",
    Phase.PENDING: "busy",
}

STYLE = """
body{margin:0;background:#f8f9fa;color:#212529;font:14px/1.45 system-ui,-apple-system,
"Segoe UI",Helvetica,Arial,sans-serif}
main{max-width:1040px;margin:0 auto;padding:16px 20px 40px}
h1{font-size:24px;margin:4px 0 8px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid
#dee2e6;padding-bottom:4px}h3{font-size:16px;margin:0 0 6px}
.eyebrow{color:#868e96;font-size:12px;text-transform:uppercase;letter-spacing:.06em}
header.top{background:#fff;border:1px solid #dee2e6;border-left:8px solid #868e96;
border-radius:6px;padding:14px 18px}
header.good{border-left-color:#2f9e44}header.bad{border-left-color:#e03131}
header.wait{border-left-color:#f59f00}header.busy{border-left-color:#1c7ed6}
.decision{font-size:17px;margin:6px 0 10px}
.phase{display:inline-block;padding:2px 10px;border-radius:12px;color:#fff;font-size:13px;
vertical-align:middle;background:#868e96}
.phase.good{background:#2f9e44}.phase.bad{background:#e03131}.phase.wait{background:#f08c00}
.phase.busy{background:#1c7ed6}
.badge{display:inline-block;padding:0 6px;border-radius:4px;font-size:12px;font-weight:600;
color:#fff;background:#868e96;vertical-align:middle}
.badge.pass{background:#2f9e44}.badge.fail{background:#e03131}
.badge.inconclusive{background:#f08c00}
.flag{font-size:12px;color:#c92a2a;border:1px solid #ffc9c9;border-radius:4px;padding:0 5px}
dl.facts{display:grid;grid-template-columns:max-content 1fr max-content 1fr;gap:2px 14px;
margin:0}dl.facts dt,dl.numbers dt{color:#868e96}dl.facts dd,dl.numbers dd{margin:0;
overflow-wrap:anywhere}
dl.numbers{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:8px 0}
.drivers{margin:0 0 10px;padding-left:20px}
article.metric{background:#fff;border:1px solid #dee2e6;border-radius:6px;padding:12px 16px;
margin:12px 0}
.reason{margin:4px 0;font-weight:500}
figure{margin:8px 0}figure.chart svg{display:block;max-width:100%;height:auto}
figcaption,.caption{color:#495057;font-size:12px;margin:2px 0}
.legend{font-size:12px;color:#495057}.key{margin-right:14px}
.swatch{display:inline-block;width:18px;height:3px;vertical-align:middle;margin-right:5px}
table{border-collapse:collapse;width:100%;background:#fff;font-size:12.5px}
th,td{border-bottom:1px solid #e9ecef;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#f1f3f5}td.fail{color:#c92a2a;font-weight:600}td.inconclusive{color:#e67700}
td.pass{color:#2b8a3e}tr.decisive td{background:#fff5f5}tr.kind-phase td{font-weight:600}
td.when{white-space:nowrap}td.message{width:100%}
.problem{background:#fff9db;border:1px solid #ffe066;border-radius:6px;padding:8px 12px}
footer{color:#868e96;font-size:12px;margin-top:28px}
"""
# The legend's swatches are classes, not style attributes, so that the dashboard's policy
# (style-src 'self', no inline styles) accepts the same markup.
STYLE += "".join(f".swatch-{key}{{background:{colour}}}" for key, colour in COLOURS.items())


def document(history: History, generated_at: float, parts: Sequence[tuple[str, str]]) -> str:
    """The whole page: ``parts`` (``sections``) with the stylesheet inline and the footer."""
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{esc(title(history))} · Canarist</title><style>{STYLE}</style></head><body><main>"
        f"{''.join(html for _, html in parts)}{footer(generated_at)}</main></body></html>"
    )


def title(history: History) -> str:
    state = history.state
    return f"{history.decision.headline}: {state.app} {state.spec.version} in {state.namespace}"


def footer(generated_at: float) -> str:
    return (
        f"<footer>Generated {esc(utc(generated_at))} by Canarist from the rollout's audit trail "
        "and Prometheus as they were then. Times are UTC. Shaded: analysis windows; dashed: "
        "traffic changes and the decision.</footer>"
    )


def sections(
    history: History,
    context: ChartContext,
    *,
    policy_name: str | None,
    metric_names: Sequence[str],
    cards: Sequence[str],
    rulings: Mapping[str, Judgement],
    units: Mapping[str, Unit],
    problems: Sequence[str],
) -> list[tuple[str, str]]:
    """The page's parts in order, each ``(name, html)``: the dashboard (canarist/ui/) shows the
    same parts and replaces each one in place when it changes."""
    state = history.state
    warnings = "".join(f'<p class="problem">{esc(problem)}</p>' for problem in problems)
    evidence = "".join(
        evidence_chart(
            name, history.looks, context, rulings.get(name), units.get(name, Unit.NUMBER)
        )
        for name in metric_names
    )
    return [
        ("summary", f"{header(history, policy_name)}{warnings}"),
        (
            "metrics",
            f'<section id="metrics"><h2>Metrics: baseline vs canary</h2>{"".join(cards)}</section>',
        ),
        (
            "evidence",
            f'<section id="evidence"><h2>Evidence, look by look</h2>{evidence}'
            f"{looks_table(history.looks, metric_names, dict(units))}</section>",
        ),
        ("hooks", hooks_section(history.events, history.looks)),
        (
            "timeline",
            f'<section id="timeline"><h2>Timeline</h2>{timeline(history.events, state.created_at)}'
            "</section>",
        ),
    ]


def pinned_policy(name: str, digest: str | None) -> str:
    """The policy's name and, when the rollout pinned it, the short form of its digest."""
    return name if digest is None else f"{name} @ {short_digest(digest)}"


def header(history: History, policy_name: str | None) -> str:
    state, decision = history.state, history.decision
    tone = PHASE_TONE.get(state.phase, "")
    submitted = next((e for e in history.events if e.kind == EventKind.SUBMITTED), None)
    decided = decision.at
    verdict = decisive_verdict(history)
    facts = [
        ("Decided by", decision.by or "not decided yet"),
        ("Namespace", state.namespace),
        ("Submitted", utc(state.created_at)),
        ("Policy", pinned_policy(policy_name or state.policy, state.policy_digest)),
        ("Decided", utc(decided)),
        ("Platform", state.spec.platform),
        ("Took", duration(decided - state.created_at) if decided is not None else "—"),
        ("Strategy", state.spec.strategy),
        ("Submitted by", (submitted.actor or "—") if submitted else "—"),
        ("Attempt", str(state.attempt)),
        ("Baseline", f"{state.spec.compared_with()}: {state.spec.compared_selector}"),
        ("Canary", state.spec.canary_selector),
        ("Rollout", state.id),
        ("Image", state.spec.image or "—"),
        (
            "Score",
            f"{number(verdict.score)} of 100" if verdict and verdict.score is not None else "—",
        ),
    ]
    cells = "".join(f"<dt>{esc(term)}</dt><dd>{esc(value)}</dd>" for term, value in facts)
    return (
        f'<header class="top {tone}"><div class="eyebrow">Canarist rollout report</div>'
        f"<h1>{esc(state.app)} {esc(state.spec.version)} "
        f'<span class="phase {tone}">{esc(state.phase.value)}</span></h1>'
        f'<p class="decision"><strong>{esc(decision.headline)}:</strong> '
        f"{esc(decision.sentence)}</p>{drivers(history)}"
        f'<dl class="facts">{cells}</dl></header>'
    )


def drivers(history: History) -> str:
    """The metrics the decisive verdict names, each linking to its card."""
    decisive = next((look for look in reversed(history.looks) if look.decisive), None)
    if decisive is None:
        return ""
    named = set(decisive.verdict.decided_by)
    items = [
        f'<li><a href="#{esc(slug(metric.name))}">{esc(metric.name)}</a> '
        f"{badge(metric.outcome)}: {esc(metric.judgement.reason)}</li>"
        for metric in decisive.verdict.metrics
        if metric.name in named
    ]
    return f'<ul class="drivers">{"".join(items)}</ul>' if items else ""


def timeline(events: Sequence[AuditEvent], started: float) -> str:
    rows = []
    for event in events:
        offset = event.at - started
        rows.append(
            f'<tr class="kind-{esc(event.kind)}"><td class="when">{esc(utc(event.at))}</td>'
            f'<td class="when">+{esc(duration(offset))}</td><td>{esc(event.kind)}</td>'
            f'<td class="when">{esc(event.actor or "")}</td>'
            f'<td class="message">{esc(event.message)}</td></tr>'
        )
    return (
        '<table class="timeline"><thead><tr><th>Time</th><th>Since submit</th><th>Kind</th>'
        f"<th>Actor</th><th>Message</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )
