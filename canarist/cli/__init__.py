"""The ``canarist`` command. Each group of subcommands lives in its own module of this package.

Exit codes: 0 success, 2 invalid input (a policy, a flag), 1 other; ``analyze`` and ``backtest``
exit with the verdict and say when Prometheus failed (exits.py), ``canarist status --watch`` with
how the rollout ended; each lists its codes in its ``--help``.
"""

from __future__ import annotations

import typer

from canarist.cli.analysis import register as register_analysis
from canarist.cli.demo import register as register_demo
from canarist.cli.policy import policy_app, token_app
from canarist.cli.processes import register as register_processes
from canarist.cli.report import report
from canarist.cli.rollouts import register as register_rollouts

app = typer.Typer(help="Canarist: progressive delivery judged by evidence.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")
app.add_typer(token_app, name="token")
register_analysis(app)
register_rollouts(app)
register_processes(app)
app.command("report")(report)
register_demo(app)


def main() -> None:
    app()
