"""``canarist api|worker|beat|watch|load``: run the service's processes from the service's settings.

Exit codes: 0 when the process ends normally, 2 when the settings do not load (or ``watch``
finds no cluster credentials), 1 when this build has no Celery workers.
"""

from __future__ import annotations

import importlib
import importlib.util
import signal
import threading
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from canarist.settings import Settings

REFUSED, ERROR = 2, 1
err = Console(highlight=False, soft_wrap=True, stderr=True)


def _fail(code: int, message: str) -> NoReturn:
    err.print(message, markup=False)
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command("api")(api_command)
    app.command("worker", context_settings=_PASSTHROUGH)(worker_command)
    app.command("beat", context_settings=_PASSTHROUGH)(beat_command)
    app.command("watch")(watch_command)
    app.command("load")(load_command)


_PASSTHROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}


def api_command(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error")] = "info",
) -> None:
    """Serve the HTTP API (canarist.api:app) with uvicorn; JSON logs on stderr."""
    import uvicorn  # noqa: PLC0415 - the server only when serving

    from canarist.api.telemetry import configure_logging  # noqa: PLC0415

    uvicorn.run(
        "canarist.api:app",
        host=host,
        port=port,
        log_config=configure_logging(log_level),
        access_log=False,
    )


QueuesOption = Annotated[
    str | None,
    typer.Option(help="comma-separated queues (default: canarist.rollouts,canarist.notify)"),
]
LogLevelOption = Annotated[str, typer.Option(help="debug, info, warning or error")]
CELERY_MODULE = "workers.celery_app"


def worker_command(
    ctx: typer.Context, queues: QueuesOption = None, log_level: LogLevelOption = "info"
) -> None:
    """Run a Celery worker on Canarist's queues; extra arguments go to celery worker."""
    celery, module = _celery()
    queues = queues or f"{module.ROLLOUTS_QUEUE},{module.NOTIFY_QUEUE}"
    _run_celery(celery, ["worker", f"--queues={queues}", *ctx.args], log_level)


def beat_command(ctx: typer.Context, log_level: LogLevelOption = "info") -> None:
    """Run Celery beat (the reconciler and outbox schedule); extra arguments go to celery beat."""
    celery, _ = _celery()
    _run_celery(celery, ["beat", *ctx.args], log_level)


def watch_command(log_level: LogLevelOption = "info") -> None:
    """Start canaries when an opted-in Deployment's pod template changes (GitOps): follow the
    Deployments of CANARIST_WATCH_NAMESPACES until stopped (SIGTERM, Ctrl-C)."""
    import logging.config  # noqa: PLC0415

    try:
        settings = Settings()
    except (ValueError, OSError) as exc:
        _fail(REFUSED, f"the settings do not load: {exc}")
    from canarist.api.broker import intake_over_celery  # noqa: PLC0415 - Celery when asked
    from canarist.api.telemetry import configure_logging  # noqa: PLC0415
    from workers.platforms.base import PlatformError  # noqa: PLC0415
    from workers.platforms.kubernetes.gitops import GitOpsWatch  # noqa: PLC0415
    from workers.store import store_from_url  # noqa: PLC0415
    from workers.watch import IntakeDoor  # noqa: PLC0415

    if not settings.watch_namespaces:  # deploy/base runs the watch before any namespace opts in
        logging.config.dictConfig(configure_logging(log_level))
        logging.getLogger("canarist.watch").warning(
            "CANARIST_WATCH_NAMESPACES names no namespace: watching nothing until restarted"
        )
        stop = _stopped_by_signals()
        while not stop.wait(1.0):  # a timed wait: the signal handler that sets it gets to run
            pass
        return
    intake = intake_over_celery(settings, store_from_url(settings.redis.url))
    try:
        watch = GitOpsWatch.from_env(IntakeDoor(intake), settings.watch_namespaces)
    except PlatformError as exc:
        _fail(REFUSED, str(exc))
    logging.config.dictConfig(configure_logging(log_level))
    watch.run(_stopped_by_signals())


def load_command(log_level: LogLevelOption = "info") -> None:
    """Send the synthetic load that policies ask for (``load:`` on an analysis step) to the new
    versions of the rollouts in the store, each within its bounds, until stopped (SIGTERM,
    Ctrl-C). Run one beside the workers; workers/load/runner.py says why a process of its own."""
    import logging.config  # noqa: PLC0415
    import time  # noqa: PLC0415

    try:
        settings = Settings()
    except (ValueError, OSError) as exc:
        _fail(REFUSED, f"the settings do not load: {exc}")
    from canarist.api.broker import intake_over_celery  # noqa: PLC0415 - Celery when asked
    from canarist.api.telemetry import configure_logging  # noqa: PLC0415
    from workers.load.runner import LoadRunner  # noqa: PLC0415
    from workers.store import store_from_url  # noqa: PLC0415

    store = store_from_url(settings.redis.url)
    intake = intake_over_celery(settings, store)
    logging.config.dictConfig(configure_logging(log_level))
    runner = LoadRunner(
        store, intake.policy_for, intake.record, time.time, policy_dir=settings.policy_dir
    )
    runner.run(_stopped_by_signals())


def _stopped_by_signals() -> threading.Event:
    """An event SIGTERM (Kubernetes stopping the pod) and SIGINT (Ctrl-C) set."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    return stop


def _celery() -> tuple[Any, Any]:
    """The Celery app built from the service's settings (environment and settings file). Unlike
    ``celery -A workers.celery_app``, which loads only the workers' root of them, this refuses a
    setting the service does not know, so a misspelt key stops the process at start-up."""
    if importlib.util.find_spec(CELERY_MODULE) is None:
        _fail(ERROR, f"{CELERY_MODULE} is not installed: this build has no Celery workers")
    try:
        settings = Settings()
    except (ValueError, OSError) as exc:
        _fail(REFUSED, f"the settings do not load: {exc}")
    from canarist.api.broker import celery_from_settings  # noqa: PLC0415 - Celery when asked

    return celery_from_settings(settings), importlib.import_module(CELERY_MODULE)


def _run_celery(celery: Any, argv: list[str], log_level: str) -> None:
    """Run a Celery command in this process, logging JSON lines that carry the rollout id
    (an ``advance`` task's first argument is its rollout: Celery's own lines about it, like
    "succeeded in 0.01s", carry the id too)."""
    import logging.config  # noqa: PLC0415

    from celery.signals import setup_logging, task_postrun, task_prerun  # noqa: PLC0415

    from canarist.api.telemetry import configure_logging, rollout_id_var  # noqa: PLC0415
    from workers.tasks import ADVANCE  # noqa: PLC0415

    running: dict[str, Any] = {}

    def json_logs(**_: object) -> None:  # connected: Celery leaves logging to us
        logging.config.dictConfig(configure_logging(log_level))

    def enter(task_id: str, task: Any, args: Any = (), **_: object) -> None:
        if task.name == ADVANCE and args:
            running[task_id] = rollout_id_var.set(str(args[0]))

    def leave(task_id: str, **_: object) -> None:
        token = running.pop(task_id, None)
        if token is not None:
            rollout_id_var.reset(token)

    setup_logging.connect(json_logs, weak=False)
    task_prerun.connect(enter, weak=False)
    task_postrun.connect(leave, weak=False)
    celery.start([*argv, f"--loglevel={log_level.upper()}"])
