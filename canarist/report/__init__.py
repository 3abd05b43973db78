"""The rollout report: one HTML page that shows an on-call engineer why Canarist decided.

Alerts link to it (``/v1/rollouts/{id}/report``, canarist/api/report.py), ``canarist report ID``
writes it to a file, and the demo saves one per rollout. It is gathered from the records the
engine wrote (the state and its audit trail: every look's verdict) and from both versions'
series, queried through the analyzer's own templates (series.py), then rendered as a single
self-contained document: inline CSS, inline SVG drawn by svg.py, no script, no external URL.

    html = render_report(store, source, policy, rollout_id, now=time.time())
    write_report("reports/checkout-v2.html", html)
"""

from canarist.report.build import Report, build_report, render, render_report, write_report

__all__ = ["Report", "build_report", "render", "render_report", "write_report"]
