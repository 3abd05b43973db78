"""``canarist submit|list|status|abort|promote|pause|resume|retry`` over the HTTP API, and
``canarist api|worker|beat`` to run the service's processes.

The rollout commands are thin clients of the API (``--api``, env ``CANARIST_API_URL``, else the
settings' ``api_url``; ``--token``, env ``CANARIST_TOKEN``), so a person and a CI job go through
the same authentication, namespace scopes and audit trail as any other caller. Exit codes: 0 on
success, 2 when the API refuses the request (any 4xx; its reason is printed), 1 when the API
cannot be reached or fails (5xx).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import time
from collections.abc import Callable
from typing import Annotated, Any, NoReturn

import httpx
import typer
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from canarist.cli.analysis import parse_args
from canarist.settings import Settings
from workers.delivery import ALERT_UNDELIVERED

REFUSED, FAILED = 2, 1
TIMEOUT_SECONDS = 30.0
RECENT_EVENTS = 8

ApiOption = Annotated[
    str | None,
    typer.Option("--api", envvar="CANARIST_API_URL", help="API base URL (default: settings)"),
]
TokenOption = Annotated[
    str | None,
    typer.Option("--token", envvar="CANARIST_TOKEN", help="bearer token", show_default=False),
]
JsonOption = Annotated[bool, typer.Option("--json", help="print the API's JSON answer")]
IdArgument = Annotated[str, typer.Argument(help="the rollout's id")]

out = Console(highlight=False, soft_wrap=True)
err = Console(highlight=False, soft_wrap=True, stderr=True)


class ApiClient:
    """One API session: translates every failure into a message and an exit code."""

    def __init__(self, api: str | None, token: str | None) -> None:
        self.base_url = (api or _settings_api_url()).rstrip("/")
        self.token = token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=TIMEOUT_SECONDS)

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._http.close()

    def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        try:
            response = self._http.request(method, path, json=body, headers=headers, params=params)
        except httpx.TransportError as exc:
            reason = str(exc) or type(exc).__name__
            _fail(FAILED, f"cannot reach the Canarist API at {self.base_url}: {reason}")
        if response.is_success:
            answer: dict[str, Any] = response.json()
            return answer
        self._refused(response)

    def _refused(self, response: httpx.Response) -> NoReturn:
        try:
            answer = response.json()
            problems = [f"  {p['field']}: {p['message']}" for p in answer.get("problems", [])]
            message = answer["error"] if problems else f"{answer['error']}: {answer['detail']}"
        except (ValueError, KeyError, TypeError):
            message, problems = response.text.strip() or response.reason_phrase, []
        lines = [f"error: {response.status_code} {message}", *problems]
        if response.status_code == 401 and not self.token:
            lines.append("hint: pass --token or set CANARIST_TOKEN")
        _fail(REFUSED if response.status_code < 500 else FAILED, "\n".join(lines))


def _settings_api_url() -> str:
    try:
        return Settings().api_url
    except (ValueError, OSError) as exc:
        _fail(REFUSED, f"no --api given and the settings do not load: {exc}")


def _fail(code: int, message: str) -> NoReturn:
    err.print(message, markup=False)
    raise typer.Exit(code)


# -- rendering --------------------------------------------------------------------------------


def _stage(rollout: dict[str, Any]) -> str:
    index, count, label = rollout["stage_index"], rollout["stage_count"], rollout["stage_label"]
    where = f"{index + 1}/{count}" if count else f"{index + 1}"
    return f"{where} {label}" if label else where


def _verdict(rollout: dict[str, Any]) -> str:
    verdict = rollout.get("last_verdict")
    return "-" if not verdict else f"{verdict['outcome'].upper()}: {verdict['reason']}"


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
        f"in {rollout['namespace']} (policy {rollout['policy']})",
        "phase": rollout["phase"] + (" (final)" if rollout["terminal"] else ""),
        "stage": _stage(rollout),
        "weight": f"{rollout['canary_weight']}%",
        "verdict": _verdict(rollout),
        "pause reason": rollout.get("pause_reason"),
        "abort reason": rollout.get("abort_reason"),
        # However old: an alert nobody received matters more than the recent events.
        "NOT ALERTED": "\n".join(
            event["message"]
            for event in rollout.get("events", [])
            if event["kind"] == ALERT_UNDELIVERED
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


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title)
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


# -- rollout commands -------------------------------------------------------------------------


def submit(
    app: Annotated[str, typer.Option(help="the application")],
    namespace: Annotated[str, typer.Option(help="where it runs")],
    version: Annotated[str, typer.Option(help="the new version")],
    policy: Annotated[str, typer.Option(help="policy name (its file name without .yaml)")],
    baseline: Annotated[str, typer.Option(help='baseline matchers: app="x",version="v1"')],
    canary: Annotated[str, typer.Option(help='canary matchers: app="x",version="v2"')],
    image: Annotated[
        str | None,
        typer.Option(help="the new image (local platform: the command line, with {port})"),
    ] = None,
    container_image: Annotated[
        list[str] | None,
        typer.Option(help="container=image, for pods with several containers (repeatable)"),
    ] = None,
    platform: Annotated[str, typer.Option(help="kubernetes, local or observe")] = "observe",
    arg: Annotated[list[str] | None, typer.Option("--arg", help="k=v for the policy")] = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="the same key always returns the same rollout")
    ] = None,
    api: ApiOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Queue a rollout of a new version; print its id."""
    job: dict[str, Any] = {
        "app": app,
        "namespace": namespace,
        "version": version,
        "policy": policy,
        "platform": platform,
        "args": parse_args(arg),
        "baseline": baseline,
        "canary": canary,
    }
    if image is not None:
        job["image"] = image
    if container_image:
        job["images"] = parse_args(container_image, "--container-image")
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
    with ApiClient(api, token) as client:
        answer = client.call("POST", "/v1/rollouts", job, headers)
    if as_json:
        typer.echo(_json(answer))
        return
    note = "" if answer["created"] else " (already submitted with this idempotency key)"
    out.print(f"{answer['id']}{note}", markup=False)


def list_command(
    namespace: Annotated[str | None, typer.Option(help="only this namespace")] = None,
    api: ApiOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Rollouts the token may see, newest first."""
    params = {"namespace": namespace} if namespace else None
    with ApiClient(api, token) as client:
        answer = client.call("GET", "/v1/rollouts", params=params)
    if as_json:
        typer.echo(_json(answer))
    else:
        typer.echo(rollouts_text(answer["rollouts"]))


def status(
    rollout_id: IdArgument,
    watch: Annotated[bool, typer.Option("--watch", help="follow until it finishes")] = False,
    interval: Annotated[float, typer.Option(min=0.1, help="seconds between looks")] = 2.0,
    api: ApiOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Phase, stage, weight, last verdict per metric and recent events of one rollout."""
    path = f"/v1/rollouts/{rollout_id}"
    with ApiClient(api, token) as client:
        rollout = client.call("GET", path)
        if as_json:
            typer.echo(_json(rollout))
            return
        if not watch or rollout["terminal"]:
            out.print(status_view(rollout))
            return
        with Live(status_view(rollout), console=out, auto_refresh=False) as live:
            while not rollout["terminal"]:
                time.sleep(interval)
                rollout = client.call("GET", path)
                live.update(status_view(rollout), refresh=True)


ReasonOption = Annotated[str, typer.Option(help="why, recorded with the command")]
_SUMMARIES = {
    "abort": "Roll back to the stable version.",
    "pause": "Hold at the current stage.",
    "resume": "Carry on after a pause.",
    "retry": "Start an aborted or failed rollout again.",
}


def _command(kind: str) -> Callable[..., None]:
    def run(
        rollout_id: IdArgument,
        reason: ReasonOption = "",
        api: ApiOption = None,
        token: TokenOption = None,
        as_json: JsonOption = False,
    ) -> None:
        _send(kind, rollout_id, {"reason": reason}, api, token, as_json)

    run.__doc__ = _SUMMARIES[kind]
    return run


def promote(
    rollout_id: IdArgument,
    full: Annotated[bool, typer.Option("--full", help="skip every remaining stage")] = False,
    reason: ReasonOption = "",
    api: ApiOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Pass the current stage (with --full, every remaining stage and its analysis)."""
    _send("promote", rollout_id, {"full": full, "reason": reason}, api, token, as_json)


def _send(
    kind: str,
    rollout_id: str,
    body: dict[str, Any],
    api: str | None,
    token: str | None,
    as_json: bool,
) -> None:
    with ApiClient(api, token) as client:
        rollout = client.call("POST", f"/v1/rollouts/{rollout_id}/{kind}", body)
    if as_json:
        typer.echo(_json(rollout))
    else:
        out.print(f"{kind} sent to {rollout_id}: phase {rollout['phase']}", markup=False)


def _json(answer: dict[str, Any]) -> str:
    return json.dumps(answer, indent=2)


def register(app: typer.Typer) -> None:
    app.command("submit")(submit)
    app.command("list")(list_command)
    app.command("status")(status)
    for kind in _SUMMARIES:
        app.command(kind)(_command(kind))
    app.command("promote")(promote)
    app.command("api")(api_command)
    app.command("worker", context_settings=_PASSTHROUGH)(worker_command)
    app.command("beat", context_settings=_PASSTHROUGH)(beat_command)


# -- processes --------------------------------------------------------------------------------

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


def _celery() -> tuple[Any, Any]:
    """The Celery app built from the service's settings (environment and settings file), as
    ``celery -A`` could not: the workers' module reads only environment variables."""
    if importlib.util.find_spec(CELERY_MODULE) is None:
        _fail(FAILED, f"{CELERY_MODULE} is not installed: this build has no Celery workers")
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
