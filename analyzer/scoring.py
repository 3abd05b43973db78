"""From per-metric judgements to one verdict: weights, critical metrics, dry runs and missing data.

This is Kayenta's weighted-sum scoring adapted to a policy whose metrics carry their own weights:

- a critical metric that FAILs fails the analysis whatever the score;
- dry-run metrics are judged and reported, never counted;
- score = 100 x weight of PASS metrics / weight of counted metrics. Kayenta sums group scores by
  group weight; with a group's weight the sum of its metrics' weights this is the same number
  (``group_scores`` reports the per-group view);
- FAIL when even counting every undecided metric as PASS the score is below ``marginal_score``;
  PASS when the score reaches ``pass_score`` and no critical metric is undecided; else INCONCLUSIVE.

Two departures from Kayenta, both so that missing data never promotes: a metric without data
follows its own ``no_data`` policy (Kayenta fails the canary when half the metrics have none), and
when no counted metric had any data the verdict is INCONCLUSIVE even if every one says
``no_data: pass``.

``allocate_alpha`` splits the policy's false-abort rate across metrics (weighted Bonferroni), so a
policy with ten metrics does not abort ten times as often as one with one.
"""

from __future__ import annotations

from collections.abc import Sequence

from analyzer.policy.metrics import MetricBase
from analyzer.policy.models import Policy
from analyzer.verdict import Judgement, MetricVerdict, Outcome, Reason, Verdict

_NO_DATA_OUTCOMES = {
    "pass": Outcome.PASS,
    "fail": Outcome.FAIL,
    "inconclusive": Outcome.INCONCLUSIVE,
}


def metric_weights(policy: Policy) -> dict[str, float]:
    """Each metric's share of the score in percent; 0 for dry-run metrics, which never count.

    Unset weights share what the set ones leave of 100 equally, as Kayenta does for groups without
    a weight; the policy checks allow only all or none, so in practice this is "equal if unset".
    """
    counted = [metric for metric in policy.metrics if not metric.dry_run]
    unset = [metric for metric in counted if metric.weight is None]
    left = max(0.0, 100.0 - sum(metric.weight or 0.0 for metric in counted))
    share = left / len(unset) if unset else 0.0
    return {
        metric.name: 0.0 if metric.dry_run else (metric.weight or share)
        for metric in policy.metrics
    }


def allocate_alpha(policy: Policy) -> dict[str, float]:
    """Each metric's alpha: the policy's alpha times its weight share among counted metrics.

    The counted metrics' alphas add up to the policy's false-abort rate (Bonferroni: the chance
    that any of them falsely fails is at most that). A dry-run metric gets the alpha it would have
    if it were counted with equal shares (alpha / (counted + 1)), so the dry run previews how it
    would behave once enabled; it adds nothing to the rollout's false-abort rate, as it never
    aborts.
    """
    alpha = policy.analysis.false_abort_rate
    weights = metric_weights(policy)
    counted = [metric.name for metric in policy.metrics if not metric.dry_run]
    total = sum(weights[name] for name in counted)
    return {
        metric.name: alpha / (len(counted) + 1)
        if metric.dry_run
        else alpha * weights[metric.name] / total
        for metric in policy.metrics
    }


def apply_no_data(metric: MetricBase, judgement: Judgement) -> Judgement:
    """A NO_DATA judgement counted as the metric's ``no_data`` policy says; others unchanged.

    The reason code stays NO_DATA so that scoring can still tell missing data from evidence.
    Applying it twice changes nothing.
    """
    if judgement.reason_code is not Reason.NO_DATA or "no_data_policy" in judgement.details:
        return judgement
    return judgement.model_copy(
        update={
            "outcome": _NO_DATA_OUTCOMES[metric.no_data],
            "reason": f"{judgement.reason} (counted as no_data: {metric.no_data})",
            "details": {**judgement.details, "no_data_policy": metric.no_data},
        }
    )


def settle(
    policy: Policy, metric_verdicts: Sequence[MetricVerdict], final: bool = False
) -> list[MetricVerdict]:
    """The verdicts as they count, in policy order.

    Weight, critical, dry_run and group come from the policy, whatever the caller set. At a final
    look (see ``score``) ``no_data`` policies apply and harmless evidence counts as PASS.
    """
    by_name = {verdict.name: verdict for verdict in metric_verdicts}
    names = [metric.name for metric in policy.metrics]
    if len(by_name) != len(metric_verdicts) or set(by_name) != set(names):
        raise ValueError(
            f"verdicts for {sorted(v.name for v in metric_verdicts)} do not match the policy's "
            f"metrics {sorted(names)}"
        )
    weights = metric_weights(policy)
    settled = []
    for metric in policy.metrics:
        judgement = by_name[metric.name].judgement
        if final:
            judgement = _final_look(apply_no_data(metric, judgement))
        update = {
            "judgement": judgement,
            "weight": weights[metric.name],
            "critical": metric.critical,
            "dry_run": metric.dry_run,
            "group": metric.group,
        }
        settled.append(by_name[metric.name].model_copy(update=update))
    return settled


def group_scores(settled: Sequence[MetricVerdict]) -> dict[str, float]:
    """Kayenta's group scores over counted metrics: 100 x PASS weight / weight, per group.

    A metric without a group is a group of one, under its own name.
    """
    passed: dict[str, float] = {}
    weighed: dict[str, float] = {}
    for verdict in settled:
        if verdict.dry_run:
            continue
        group = verdict.group or verdict.name
        weighed[group] = weighed.get(group, 0.0) + verdict.weight
        won = verdict.weight if verdict.outcome is Outcome.PASS else 0.0
        passed[group] = passed.get(group, 0.0) + won
    return {group: round(100.0 * passed[group] / weighed[group], 2) for group in weighed}


def score(policy: Policy, metric_verdicts: Sequence[MetricVerdict], final: bool = False) -> Verdict:
    """The overall verdict of one analysis pass.

    ``final`` is True on the last look of a step, when no more data will come for it: the caller
    (analysis.py) passes it then. At a final look a metric without data follows its ``no_data``
    policy (before, it stays INCONCLUSIVE so the step waits for data), and an INCONCLUSIVE
    judgement made on enough data that showed no harm (reason_code EVIDENCE and
    ``details["regression_detected"] is False``) counts as PASS; NO_DATA and TOO_FEW_SAMPLES never
    do.
    """
    settled = settle(policy, metric_verdicts, final)
    counted = [verdict for verdict in settled if not verdict.dry_run]
    total = sum(verdict.weight for verdict in counted)
    if not counted or total <= 0:
        return Verdict(
            outcome=Outcome.INCONCLUSIVE,
            reason="no metric counts toward the score",
            metrics=settled,
        )
    passed = [v for v in counted if v.outcome is Outcome.PASS]
    failed = [v for v in counted if v.outcome is Outcome.FAIL]
    undecided = [v for v in counted if v.outcome is Outcome.INCONCLUSIVE]
    now = round(100.0 * sum(v.weight for v in passed) / total, 2)
    best = round(100.0 * sum(v.weight for v in [*passed, *undecided]) / total, 2)
    analysis = policy.analysis

    def verdict(outcome: Outcome, reason: str, decided_by: list[MetricVerdict]) -> Verdict:
        names = [v.name for v in decided_by]
        return Verdict(outcome=outcome, reason=reason, score=now, decided_by=names, metrics=settled)

    # A FAIL's sentence leads with the metric that failed and its effect (the judgement's own
    # reason starts so), then why that fails the analysis; the score it cites is the score.
    critical_failed = [v for v in failed if v.critical]
    if critical_failed:
        first = critical_failed[0]
        more = _more(critical_failed, "critical")
        reason = f"{_leading(first)} — FAIL, critical{more}"
        return verdict(Outcome.FAIL, reason, critical_failed)
    if best < analysis.marginal_score:
        reason = (
            f"{_leading(failed[0])} — FAIL{_more(failed, 'failed')}: score {now:g}, at "
            f"most {best:g} were every undecided metric to pass, is below marginal_score "
            f"{analysis.marginal_score:g}"
        )
        return verdict(Outcome.FAIL, reason, failed)
    if all(v.judgement.reason_code is Reason.NO_DATA for v in counted):
        reason = "no counted metric returned data (no_data): missing data never promotes"
        return verdict(Outcome.INCONCLUSIVE, reason, counted)
    critical_undecided = [v for v in undecided if v.critical]
    if now >= analysis.pass_score and not critical_undecided:
        reason = f"score {now:g} reaches pass_score {analysis.pass_score:g}"
        reason += f" ({_names(failed)} failed within that allowance)" if failed else ""
        return verdict(Outcome.PASS, reason, passed)
    if critical_undecided:
        first = critical_undecided[0]
        reason = f"{first.name} (critical) is undecided: {first.judgement.reason}"
        return verdict(Outcome.INCONCLUSIVE, reason, critical_undecided)
    reason = (
        f"score {now:g} is below pass_score {analysis.pass_score:g} but could reach "
        f"{best:g}, above marginal_score {analysis.marginal_score:g}"
    )
    return verdict(Outcome.INCONCLUSIVE, reason, [*failed, *undecided])


def _final_look(judgement: Judgement) -> Judgement:
    harmless = (
        judgement.outcome is Outcome.INCONCLUSIVE
        and judgement.reason_code is Reason.EVIDENCE
        and judgement.details.get("regression_detected") is False
    )
    if not harmless:
        return judgement
    return judgement.model_copy(
        update={
            "outcome": Outcome.PASS,
            "reason": f"{judgement.reason}; at the step's final look no regression was shown",
        }
    )


def _leading(verdict: MetricVerdict) -> str:
    """The metric's reason, led by its name (the sequential and trend judges' reasons are)."""
    reason = verdict.judgement.reason
    return reason if reason.startswith(f"{verdict.name} ") else f"{verdict.name}: {reason}"


def _more(verdicts: Sequence[MetricVerdict], what: str) -> str:
    """`` (and latency, memory also failed)`` after the first of several."""
    if len(verdicts) < 2:
        return ""
    return f" (and {_names(verdicts[1:])} {what} too)"


def _names(verdicts: Sequence[MetricVerdict]) -> str:
    return ", ".join(verdict.name for verdict in verdicts)
