"""How ``canarist list`` and ``canarist status`` show rollouts: aligned columns for a list, and
for one rollout its phase, stage, weight, last verdict per metric and recent events."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from workers.actions import EventKind
from workers.policies import short_digest

RECENT_EVENTS = 8


def _stage(rollout: dict[str, Any]) -> str:
    index, count, label = rollout["stage_index"], rollout["stage_count"], rollout["stage_label"]
    where = f"{index + 1}/{count}" if count else f"{index + 1}"
    return f"{where} {label}" if label else where


def _verdict(rollout: dict[str, Any]) -> str:
    verdict = rollout.get("last_verdict")
    return "-" if not verdict else f"{verdict['outcome'].upper()}: {verdict['reason']}"


def _policy(rollout: dict[str, Any]) -> str:
    """The policy's name and the short digest of the policy it pinned at submit."""
    digest = rollout.get("policy_digest")
    return rollout["policy"] if not digest else f"{rollout['policy']} @ {short_digest(digest)}"


def rollouts_text(rollouts: list[dict[str, Any]]) -> str:
    """Aligned columns like ``kubectl get``: never truncated, easy to grep."""
    rows = [["ID", "APP", "NAMESPACE", "VERSION", "PHASE", "STAGE", "WEIGHT", "VERDICT"]]
    for r in rollouts:
        verdict = (r.get("last_verdict") or {}).get("outcome", "-")
        named = [r[key] for key in ("id", "app", "namespace", "version", "phase")]
        rows.append([*named, _stage(r), f"{r['canary_weight']}%", verdict])
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return "\n".join(
        "   ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def status_view(rollout: dict[str, Any]) -> Group:
    """The rollout's phase, stage, weight and last verdict per metric, and its recent events.

    Every value is shown as plain text (``Text``), never as rich markup: a reason may hold
    brackets, such as an effect's interval."""
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column(overflow="fold")
    rows = {
        "rollout": f"{rollout['id']}: {rollout['app']} {rollout['version']} "
        f"in {rollout['namespace']} (policy {_policy(rollout)})",
        "phase": rollout["phase"] + (" (final)" if rollout["terminal"] else ""),
        "stage": _stage(rollout),
        "compared with": rollout.get("compared_with"),
        "weight": f"{rollout['canary_weight']}%",
        "verdict": _verdict(rollout),
        "pause reason": rollout.get("pause_reason"),
        "approval": _approval(rollout),
        "abort reason": rollout.get("abort_reason"),
        # However old: an alert nobody received matters more than the recent events.
        "NOT ALERTED": "\n".join(
            event["message"]
            for event in rollout.get("events", [])
            if event["kind"] == EventKind.ALERT_UNDELIVERED
        ),
    }
    for name, value in rows.items():
        if value:
            head.add_row(name, Text(value))
    parts: list[Any] = [head]
    evidence = (rollout.get("last_verdict") or {}).get("evidence") or {}
    if evidence.get("metrics"):
        metrics = _table("last verdict per metric", "metric", "outcome", "effect", "reason")
        for metric in evidence["metrics"]:
            judgement, effect = metric["judgement"], metric["judgement"].get("effect")
            shown = "-" if effect is None else f"{effect:+.1%}"
            cells = (metric["name"], judgement["outcome"], shown, judgement["reason"])
            metrics.add_row(*map(Text, cells))
        parts.append(metrics)
    events = rollout.get("events", [])[-RECENT_EVENTS:]
    if events:
        trail = _table("recent events", "at", "kind", "by", "message")
        for event in events:
            at = event["at"][:19].replace("T", " ")
            cells = (at, event["kind"], event["actor"] or "-", event["message"])
            trail.add_row(*map(Text, cells))
        parts.append(trail)
    return Group(*parts)


def _approval(rollout: dict[str, Any]) -> str | None:
    """What a rollout awaiting approval waits for, and the command that gives it."""
    if rollout["phase"] != "awaiting_approval":
        return None
    return f"awaited: canarist approve {rollout['id']} --reason '...' (or abort)"


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title)
    for column in columns:
        table.add_column(column, overflow="fold")
    return table
