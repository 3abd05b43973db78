"""``canarist submit|list|status|abort|promote|pause|resume|retry|approve`` over the HTTP API.

The rollout commands are thin clients of the API (``--api``, env ``CANARIST_API_URL``, else the
settings' ``api_url``; ``--token``, env ``CANARIST_TOKEN``), so a person and a CI job go through
the same authentication, roles, namespace scopes and audit trail as any other caller. Exit codes:
0 on success, 2 when the API refuses the request (any 4xx; its reason is printed), 1 when the
API cannot be reached or fails (5xx). ``status --watch`` ends with how the rollout ended, so a
pipeline can branch on it: 0 promoted, 3 aborted, 4 failed, 5 no such rollout (``StatusExit``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from enum import IntEnum
from typing import Annotated, Any, NoReturn

import httpx
import typer
from rich.console import Console
from rich.live import Live

from canarist.cli.analysis import parse_args
from canarist.cli.status_view import rollouts_text, status_view
from canarist.settings import Settings
from workers.actions import CommandKind

REFUSED, ERROR = 2, 1
TIMEOUT_SECONDS = 30.0

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


class StatusExit(IntEnum):
    """How ``canarist status`` exits; with ``--watch``, how the rollout ended."""

    PROMOTED = 0  # without --watch: the rollout was shown
    ERROR = 1  # the API cannot be reached, or failed (5xx): as every command
    REFUSED = 2  # the API refused the request (401, 403, 422): as every command
    ABORTED = 3  # rolled back, by its analysis or by a person
    FAILED = 4  # the platform could not do what was asked; rolled back
    NOT_FOUND = 5  # no such rollout, or none the token may see


_ENDED = {
    "promoted": StatusExit.PROMOTED,
    "aborted": StatusExit.ABORTED,
    "failed": StatusExit.FAILED,
}


class ApiClient:
    """One API session: translates every failure into a message and an exit code.

    ``exit_codes`` maps an HTTP status to the exit code of a command that tells it apart."""

    def __init__(
        self, api: str | None, token: str | None, exit_codes: Mapping[int, int] | None = None
    ) -> None:
        self.base_url = (api or _settings_api_url()).rstrip("/")
        self.token = token
        self.exit_codes = dict(exit_codes or {})
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
            _fail(ERROR, f"cannot reach the Canarist API at {self.base_url}: {reason}")
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
        code = REFUSED if response.status_code < 500 else ERROR
        _fail(self.exit_codes.get(response.status_code, code), "\n".join(lines))


def _settings_api_url() -> str:
    try:
        return Settings().api_url
    except (ValueError, OSError) as exc:
        _fail(REFUSED, f"no --api given and the settings do not load: {exc}")


def _fail(code: int, message: str) -> NoReturn:
    err.print(message, markup=False)
    raise typer.Exit(code)


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
    fresh_baseline: Annotated[
        str | None,
        typer.Option(help="the fresh baseline's matchers (policy analysis.baseline: fresh)"),
    ] = None,
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
    if fresh_baseline is not None:
        job["fresh_baseline"] = fresh_baseline
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
    """Phase, stage, weight, last verdict per metric and recent events of one rollout.

    With --watch, follow it to its end and exit with how it ended (the read role suffices):

      0  promoted (without --watch: the rollout was shown)
      1  the API cannot be reached, or failed (5xx)
      2  the API refused the request (401, 403, 422)
      3  aborted: rolled back, by its analysis or by a person
      4  failed: the platform could not do what was asked; rolled back
      5  no such rollout, or none this token may see
    """
    path = f"/v1/rollouts/{rollout_id}"
    with ApiClient(api, token, {404: StatusExit.NOT_FOUND}) as client:
        rollout = client.call("GET", path)
        if as_json:
            while watch and not rollout["terminal"]:
                time.sleep(interval)
                rollout = client.call("GET", path)
            typer.echo(_json(rollout))
        elif not watch or rollout["terminal"]:
            out.print(status_view(rollout))
        else:
            with Live(status_view(rollout), console=out, auto_refresh=False) as live:
                while not rollout["terminal"]:
                    time.sleep(interval)
                    rollout = client.call("GET", path)
                    live.update(status_view(rollout), refresh=True)
    if watch:
        raise typer.Exit(_ENDED.get(rollout["phase"], StatusExit.ERROR))


ReasonOption = Annotated[str, typer.Option(help="why, recorded with the command")]
_SUMMARIES: dict[CommandKind, str] = {  # promote has a command of its own (--full)
    "abort": "Roll back to the stable version.",
    "pause": "Hold at the current stage.",
    "resume": "Carry on after a pause.",
    "retry": "Start an aborted or failed rollout again.",
    "approve": "Approve the promotion of a rollout awaiting approval (confirm_promotion: manual).",
}


def _command(kind: CommandKind) -> Callable[..., None]:
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
    kind: CommandKind,
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
