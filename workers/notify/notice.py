"""What every notifier says: a rollout's transition and the evidence behind it, as frozen data.

A ``Notice`` is built once from the engine's ``Notify`` action and is all a notifier needs, so
retries of the same notice render the same alert byte for byte. It is JSON-able
(``to_record``/``from_record``) so the outbox or a webhook receiver can keep it as is.

The evidence of a ``Notify`` is a ``Verdict`` dumped to JSON (or nothing, for a person's abort or a
platform failure). The notice keeps the metrics that drove the decision, FAIL first, each with its
one-line reason and key numbers; the rest of the verdict stays in the report behind ``report_url``.

The report link is opened from an alert by a browser, which cannot send a bearer token, so with a
report secret the link carries ``?sig=``: the first 32 hex characters of HMAC-SHA256(secret,
rollout id). It grants reading that one rollout's report and nothing else; the API checks it
(canarist/api/report.py), and changing the secret revokes every link at once.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, cast, get_args
from urllib.parse import quote

from pydantic import ValidationError

from analyzer.judges.decisions import format_evalue
from analyzer.verdict import MetricVerdict, Outcome, Verdict
from workers.actions import Notify, NotifyKind

REPORT_URL_TEMPLATE = "{base_url}/v1/rollouts/{rollout_id}/report"
"""Where a person reads the whole verdict; ``rollout_id`` is URL-quoted."""
REPORT_SIGNATURE_CHARS = 32
"""Hex characters of the HMAC kept in a link: 128 bits, short enough for a chat message."""

_KINDS: tuple[str, ...] = get_args(NotifyKind)
_TITLES: Mapping[str, str] = {
    "aborted": "Rollout aborted",
    "failed": "Rollout failed",
    "paused": "Rollout paused",
    "promoted": "Rollout promoted",
    "started": "Rollout started",
    "stage": "Rollout moved on",
    "awaiting_approval": "Rollout awaiting approval",
}
_log = logging.getLogger(__name__)


def report_signature(secret: str, rollout_id: str) -> str:
    """The ``sig`` of a report link: hex HMAC-SHA256(secret, rollout_id), 32 characters."""
    digest = hmac.new(secret.encode("utf-8"), rollout_id.encode("utf-8"), hashlib.sha256)
    return digest.hexdigest()[:REPORT_SIGNATURE_CHARS]


def report_url(
    base_url: str | None,
    rollout_id: str,
    template: str = REPORT_URL_TEMPLATE,
    *,
    secret: str | None = None,
) -> str | None:
    """The report link for ``rollout_id``, or None without a base URL; signed (``?sig=``) when
    a ``secret`` is given, so a browser can open it without a token."""
    if not base_url:
        return None
    url = template.format(base_url=base_url.rstrip("/"), rollout_id=quote(rollout_id, safe=""))
    if secret:
        url += ("&" if "?" in url else "?") + f"sig={report_signature(secret, rollout_id)}"
    return url


@dataclass(frozen=True)
class MetricNote:
    """One metric behind the decision: its outcome, the judge's sentence and the key numbers."""

    name: str
    outcome: str
    reason: str
    critical: bool = False
    effect: float | None = None
    effect_interval: tuple[float, float] | None = None
    p_value: float | None = None
    e_value: float | None = None
    threshold: float | None = None
    baseline: Mapping[str, float] = field(default_factory=dict)
    canary: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def of(cls, metric: MetricVerdict) -> MetricNote:
        judgement = metric.judgement
        interval = judgement.effect_interval
        finite_interval = None
        if interval is not None and all(math.isfinite(bound) for bound in interval):
            finite_interval = (float(interval[0]), float(interval[1]))
        return cls(
            name=metric.name,
            outcome=metric.outcome.value,
            reason=judgement.reason,
            critical=metric.critical,
            effect=_finite(judgement.effect),
            effect_interval=finite_interval,
            p_value=_finite(judgement.p_value),
            e_value=_finite(judgement.e_value),
            threshold=_finite(judgement.threshold),
            baseline=_finite_values(judgement.baseline),
            canary=_finite_values(judgement.canary),
        )

    def line(self) -> str:
        """``error-ratio FAIL (critical): <reason> [effect +425% (+210%..+700%), e-value …]``."""
        flags = " (critical)" if self.critical else ""
        numbers = []
        if self.effect is not None:
            shown = f"effect {self.effect:+.1%}"
            if self.effect_interval is not None:
                low, high = self.effect_interval
                shown += f" ({low:+.1%}..{high:+.1%})"
            numbers.append(shown)
        if self.e_value is not None:
            bar = "" if self.threshold is None else f" (bar {format_evalue(self.threshold)})"
            numbers.append(f"e-value {format_evalue(self.e_value)}{bar}")
        if self.p_value is not None:
            numbers.append(f"p-value {self.p_value:.3g}" + _bar(self.threshold))
        tail = f" [{', '.join(numbers)}]" if numbers else ""
        return f"{self.name} {self.outcome.upper()}{flags}: {self.reason}{tail}"


@dataclass(frozen=True)
class Notice:
    """One transition of one rollout, as people are told about it."""

    kind: NotifyKind
    rollout_id: str
    app: str
    namespace: str
    policy: str
    version: str
    reason: str
    occurred_at: float  # Unix seconds of the transition: retries must not move it
    metrics: tuple[MetricNote, ...] = ()
    report_url: str | None = None
    dedupe_key: str = ""

    @classmethod
    def from_action(
        cls,
        action: Notify,
        *,
        policy: str,
        occurred_at: float,
        base_url: str | None = None,
        report_url_template: str = REPORT_URL_TEMPLATE,
        report_secret: str | None = None,
    ) -> Notice:
        """The notice of ``action``; ``occurred_at`` is when the engine decided (the outbox's
        enqueue time), ``base_url`` the service's public URL for the report link, signed with
        ``report_secret`` when one is set."""
        return cls(
            kind=action.kind,
            rollout_id=action.rollout_id,
            app=action.app,
            namespace=action.namespace,
            policy=policy,
            version=action.version,
            reason=action.reason,
            occurred_at=occurred_at,
            metrics=metrics_behind(action.evidence),
            report_url=report_url(
                base_url, action.rollout_id, report_url_template, secret=report_secret
            ),
            dedupe_key=action.dedupe_key,
        )

    @property
    def title(self) -> str:
        """``Rollout aborted: checkout v2 in shop``."""
        return f"{_TITLES[self.kind]}: {self.app} {self.version} in {self.namespace}"

    def metrics_text(self) -> str:
        """One line per metric behind the decision; empty when the evidence named none."""
        return "\n".join(metric.line() for metric in self.metrics)

    def to_record(self) -> dict[str, Any]:
        """A JSON-safe dict: tuples become lists."""
        record = asdict(self)
        record["metrics"] = [
            {**note, "effect_interval": _listed(note["effect_interval"])}
            for note in record["metrics"]
        ]
        return record

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Notice:
        """The inverse of ``to_record``; raises ValueError on a bad kind or field."""
        values = dict(record)
        if values.get("kind") not in _KINDS:
            raise ValueError(f"bad notice kind {values.get('kind')!r}; known: {', '.join(_KINDS)}")
        try:
            notes = [dict(note) for note in values.get("metrics", ())]
            for note in notes:
                interval = note.get("effect_interval")
                note["effect_interval"] = tuple(interval) if interval is not None else None
            values["metrics"] = tuple(MetricNote(**note) for note in notes)
            return cls(**values)
        except TypeError as exc:
            raise ValueError(f"bad notice record: {exc}") from exc


def metrics_behind(evidence: Mapping[str, Any]) -> tuple[MetricNote, ...]:
    """The metrics a verdict's decision rests on: every counted FAIL, then those it names in
    ``decided_by`` (an inconclusive pause names its undecided metrics), worst first.

    Evidence that is empty or not a Verdict gives no metrics: the notice still goes out.
    """
    if not evidence:
        return ()
    try:
        verdict = Verdict.model_validate(dict(evidence))
    except ValidationError as exc:
        _log.warning("notice evidence is not a Verdict; sending without metrics: %s", exc)
        return ()
    decided = set(verdict.decided_by)
    chosen = [
        metric
        for metric in verdict.metrics
        if metric.name in decided or (metric.outcome is Outcome.FAIL and not metric.dry_run)
    ]
    chosen.sort(key=lambda metric: -metric.outcome.severity)  # stable: policy order kept
    return tuple(MetricNote.of(metric) for metric in chosen)


def _finite(value: float | None) -> float | None:
    """JSON has no inf or NaN; an unbounded number is shown as unknown."""
    return float(value) if value is not None and math.isfinite(value) else None


def _finite_values(values: Mapping[str, float]) -> dict[str, float]:
    return {key: float(value) for key, value in values.items() if math.isfinite(value)}


def _listed(interval: object) -> list[float] | None:
    return list(cast(tuple[float, float], interval)) if interval is not None else None


def _bar(threshold: float | None) -> str:
    return f" (bar {threshold:.3g})" if threshold is not None else ""
