"""``canarist demo``: the whole idea, working, on one machine (canarist/demo/run.py).

Exit codes: 0 when Canarist decided every release as the scenario expects (the healthy one
promoted, the bad one aborted with its alert), 1 when it did not, 2 when the demo cannot run
here (a missing Debian package: `make demo` installs them).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

if TYPE_CHECKING:
    from canarist.demo.run import Demo

DEMO_HELP = "Run a healthy and a bad release end to end on local processes behind NGINX."


def demo_command(
    keep: Annotated[
        bool, typer.Option(help="leave the stack running at the end, with its URLs printed")
    ] = False,
    workdir: Annotated[
        Path | None, typer.Option(help="where the stack keeps its data (default: a temp dir)")
    ] = None,
    time_scale: Annotated[
        float, typer.Option(min=1, help="divide every policy duration by this")
    ] = 20.0,
    rate: Annotated[float, typer.Option(min=1, help="requests per second of load")] = 50.0,
    policy_dir: Annotated[Path, typer.Option(help="the example policies")] = Path("policies"),
) -> None:
    """Run a healthy and a bad release end to end on local processes behind NGINX."""
    from canarist.demo import view  # noqa: PLC0415 - the demo's imports only when asked
    from canarist.demo.run import Demo, DemoError, DemoOptions, run_releases  # noqa: PLC0415

    console = Console()
    options = DemoOptions(
        workdir=workdir, policy_dir=policy_dir, time_scale=time_scale, rate=rate, keep=keep
    )
    try:
        with Demo(options) as demo:
            console.print(
                f"[bold]Canarist demo[/] in {demo.workdir}: API {demo.api_url}, router "
                f"http://127.0.0.1:{demo.router_port}/, Prometheus {demo.prometheus_url}, "
                f"Alertmanager {demo.alertmanager_url}",
                soft_wrap=True,  # URLs stay whole, to copy
            )
            console.print(
                f"[bold]Dashboard[/] {demo.dashboard_url} (sign in with the demo's token: "
                f"{demo.token})",
                soft_wrap=True,
                highlight=False,
            )
            with view.LiveView(console) as live:
                results = run_releases(demo, live)
            view.summary(console, results, demo.load.counts() if demo.load else {}, keep)
            if keep:
                _wait_for_interrupt(console, demo)
                demo.stop()
    except DemoError as exc:
        console.print(f"[bold red]demo cannot run:[/] {exc}")
        raise typer.Exit(2) from None
    if not all(result.as_expected for result in results):
        console.print("[bold red]Canarist did not decide as the scenario expects.[/]")
        raise typer.Exit(1)
    console.print("[bold green]Both releases decided as expected; every process stopped.[/]")


def _wait_for_interrupt(console: Console, demo: Demo) -> None:
    console.print(
        f"The stack keeps running (token for the API: {demo.token}). Press Ctrl-C to stop it.",
        soft_wrap=True,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()


def register(app: typer.Typer) -> None:
    app.command("demo", help=DEMO_HELP)(demo_command)
