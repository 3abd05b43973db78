"""Which simulated series a policy's PromQL template asks for, or why the simulator cannot say.

The benchmark plays Prometheus for the queries a policy renders, so it must recognise them: by
metric name, by aggregation and by grouping (``by (pod)``, ``by (le)``, ``by (le, pod)``, prefix or
postfix), whatever the spacing. Two forms are understood:

- counters: ``sum [by (…)] (increase(NAME{ {{ selector }}[, code=~"5.."] }[{{ interval }}]))``
  for ``http_requests_total`` (with or without the 5xx matcher) and
  ``http_request_duration_seconds_bucket`` / ``_sum`` / ``_count``;
- the memory gauge: ``sum|avg|max|min [by (pod)] (process_resident_memory_bytes{…})``.

Anything else — another function, another matcher, a job's args, a histogram without ``le`` —
raises ``UnansweredQueryError`` naming the template and the reason: a wrong answer would quietly
measure something else.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import NoReturn


class UnansweredQueryError(ValueError):
    """A template the simulator has no data for."""


class Family(enum.Enum):
    """A simulated quantity, per minute."""

    ERRORS = "5xx responses"
    REQUESTS = "responses"
    BUCKETS = "latency bucket counts"
    LATENCY_SUM = "latency sum"
    LATENCY_COUNT = "latency count"
    MEMORY = "resident memory"


@dataclass(frozen=True)
class QueryShape:
    family: Family
    aggregation: str  # sum, avg, max or min across the version's pods (or per pod)
    per_pod: bool  # one series per pod, labelled {"pod": name}


_COUNTERS = {
    "http_requests_total": Family.REQUESTS,
    "http_request_duration_seconds_bucket": Family.BUCKETS,
    "http_request_duration_seconds_sum": Family.LATENCY_SUM,
    "http_request_duration_seconds_count": Family.LATENCY_COUNT,
}
_GAUGES = {"process_resident_memory_bytes": Family.MEMORY}

_NAME = r"(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)"
_OUTER = re.compile(
    r"^(?P<agg>sum|avg|max|min)\s*(?:by\s*\((?P<prefix>[^()]*)\)\s*)?\((?P<inner>.*)\)$",
    re.DOTALL,
)
_POSTFIX = re.compile(r"\)\s*by\s*\((?P<labels>[^()]*)\)$")
_COUNTER = re.compile(
    r"^increase\s*\(\s*" + _NAME + r"\s*\{(?P<matchers>.*)\}\s*\[(?P<range>[^\]]*)\]\s*\)$",
    re.DOTALL,
)
_GAUGE = re.compile(r"^" + _NAME + r"\s*\{(?P<matchers>.*)\}$", re.DOTALL)
_SELECTOR = re.compile(r"\{\{\s*selector\s*\}\}")
_INTERVAL = re.compile(r"^\s*(\{\{\s*interval\s*\}\}|1m)\s*$")
_MATCHER = re.compile(
    r'^(?P<label>[A-Za-z_][A-Za-z0-9_]*)\s*(?P<op>=~|!~|!=|=)\s*"(?P<value>[^"]*)"$'
)
_FIVE_XX = ("code", "=~", "5..")


def recognise(template: str) -> QueryShape:
    """The shape of ``template``; ``UnansweredQueryError`` if the simulator cannot answer it."""
    text = template.strip()
    postfix = _POSTFIX.search(text)
    if postfix is not None:
        text = text[: postfix.start() + 1]
    outer = _OUTER.match(text)
    if outer is None:
        _refuse(template, "expected sum/avg/max/min [by (…)] ( … ) around one metric")
    if outer["prefix"] is not None and postfix is not None:
        _refuse(template, "two 'by' clauses")
    grouping = _labels(outer["prefix"] or (postfix["labels"] if postfix else ""))
    inner = outer["inner"].strip()
    counter, gauge = _COUNTER.match(inner), _GAUGE.match(inner)
    if counter is not None and counter["name"] in _COUNTERS:
        if outer["agg"] != "sum":
            _refuse(template, f"{outer['agg']}() of a counter's increase: only sum() is simulated")
        if not _INTERVAL.match(counter["range"]):
            _refuse(template, f"range [{counter['range']}]: the simulator has 1-minute points")
        family = _COUNTERS[counter["name"]]
        five_xx = _matchers(template, counter["matchers"])
        if five_xx and family is not Family.REQUESTS:
            _refuse(template, "a code matcher on a latency series")
        family = Family.ERRORS if five_xx else family
    elif gauge is not None and gauge["name"] in _GAUGES:
        if _matchers(template, gauge["matchers"]):
            _refuse(template, "a code matcher on a gauge")
        family = _GAUGES[gauge["name"]]
    else:
        known = ", ".join([*_COUNTERS, *_GAUGES])
        _refuse(template, f"not increase() of a known counter nor a known gauge ({known})")
    wants_le = family is Family.BUCKETS
    if ("le" in grouping) != wants_le:
        _refuse(
            template, "histogram buckets need 'by (le)'" if wants_le else "'le' on no histogram"
        )
    if grouping - {"le", "pod"}:
        _refuse(template, f"grouping by {sorted(grouping - {'le', 'pod'})}: only pod and le exist")
    return QueryShape(family, outer["agg"], per_pod="pod" in grouping)


def _labels(text: str) -> frozenset[str]:
    return frozenset(label.strip() for label in text.split(",") if label.strip())


def _matchers(template: str, text: str) -> bool:
    """Check the matchers beside ``{{ selector }}``; True when they pick 5xx responses."""
    if len(_SELECTOR.findall(text)) != 1:
        _refuse(template, "the series selector must hold {{ selector }} exactly once")
    rest = [part.strip() for part in _SELECTOR.sub("", text).split(",") if part.strip()]
    five_xx = False
    for part in rest:
        matcher = _MATCHER.match(part)
        if matcher is None or (matcher["label"], matcher["op"], matcher["value"]) != _FIVE_XX:
            _refuse(template, f'matcher {part!r}: only code=~"5.." is simulated')
        five_xx = True
    return five_xx


def _refuse(template: str, reason: str) -> NoReturn:
    raise UnansweredQueryError(f"the simulator cannot answer {template!r}: {reason}")
