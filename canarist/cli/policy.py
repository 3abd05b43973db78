"""``canarist policy validate|schema|list|show|diff`` and ``canarist token new``: tooling for SREs
and admins. ``list``, ``show`` and ``diff`` ask the API what the server runs (GET /v1/policies,
like the rollout commands: ``--api``/``CANARIST_API_URL``, ``--token``/``CANARIST_TOKEN``)."""

from __future__ import annotations

import difflib
import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import typer
from pydantic import ValidationError
from rich.console import Console

from analyzer.errors import CanaristError, PolicyError
from analyzer.policy import Policy, load_policy
from analyzer.policy.promql import Selector
from analyzer.policy.schema import policy_schema_text
from analyzer.sources.prometheus import PrometheusSource
from canarist.cli.inputs import parse_args
from canarist.cli.policy_probe import ProbeReport, probe_policy
from canarist.cli.rollouts import ApiClient, ApiOption, JsonOption, TokenOption
from canarist.settings import ApiToken, hash_token, new_token
from workers.policies import short_digest

policy_app = typer.Typer(
    help="Validate policies, export their schema, and see the server's.", no_args_is_help=True
)
token_app = typer.Typer(help="API tokens.", no_args_is_help=True)

INVALID = 2
_OPTIONS = {"name": "--name", "namespaces": "--namespace", "roles": "--role"}


PROMETHEUS_FAILED = 4
_VALIDATE_HELP = (
    "Check policies; print FILE:LINE: field: message for every problem.\n\n"
    "With --prometheus, each query of a valid policy also runs once per version named "
    "(--baseline, --canary) over the last hour, and each query field gets a line with its "
    "series count per version, or a warning: no series for that version. A warning does not "
    "fail validation.\n\n"
    "Exit codes: 0 every policy valid (warnings or not); 2 a policy invalid, or a query "
    "Prometheus refuses; 4 Prometheus unreachable (and no policy invalid)."
)


@policy_app.command("validate", help=_VALIDATE_HELP)
def validate(
    files: Annotated[list[Path], typer.Argument(help="policy files to check")],
    prometheus_url: Annotated[
        str | None,
        typer.Option("--prometheus", help="also run each query once against this Prometheus"),
    ] = None,
    baseline: Annotated[
        str | None, typer.Option(help='with --prometheus: baseline matchers, app="x",version="v1"')
    ] = None,
    canary: Annotated[
        str | None, typer.Option(help='with --prometheus: canary matchers, app="x",version="v2"')
    ] = None,
    arg: Annotated[
        list[str] | None, typer.Option("--arg", help="with --prometheus: k=v for the policy's args")
    ] = None,
) -> None:
    console = Console(highlight=False, soft_wrap=True)
    probe = _probe_or_exit(prometheus_url, baseline, canary, arg)
    failed, unreachable = 0, None
    for path in files:
        try:
            policy = load_policy(path)
        except PolicyError as error:
            failed += 1
            for problem in error.problems:
                console.print(problem.render(str(path)), markup=False)
            continue
        console.print(
            f"{path}: ok ({policy.strategy.type} strategy, {len(policy.metrics)} metrics: "
            f"{', '.join(metric.name for metric in policy.metrics)})",
            markup=False,
        )
        if probe is not None and unreachable is None:
            report = probe(path, policy)
            for line in report.lines:
                console.print(line, markup=False)
            failed += 1 if report.refused else 0
            unreachable = report.unreachable
    if unreachable is not None:
        console.print(f"error: Prometheus at {prometheus_url}: {unreachable}", markup=False)
    if failed:
        console.print(f"{failed} of {len(files)} policies invalid", markup=False)
        raise typer.Exit(INVALID)
    if unreachable is not None:
        raise typer.Exit(PROMETHEUS_FAILED)


def _probe_or_exit(
    url: str | None, baseline: str | None, canary: str | None, arg: list[str] | None
) -> Callable[[Path, Policy], ProbeReport] | None:
    """How to probe a valid policy against ``url``, or None without --prometheus."""
    if url is None:
        if baseline or canary or arg:
            raise typer.BadParameter("--baseline, --canary and --arg need --prometheus")
        return None
    try:
        named = {"baseline": baseline, "canary": canary}
        versions = {name: Selector.parse(text) for name, text in named.items() if text}
        source = PrometheusSource(url)
    except (CanaristError, ValueError) as exc:
        raise typer.BadParameter(str(exc)) from None
    if not versions:
        raise typer.BadParameter("--prometheus needs --baseline or --canary (or both)")
    args = parse_args(arg)
    return lambda path, policy: probe_policy(path, policy, source, versions, args)


@policy_app.command("schema")
def schema(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="write here instead of stdout")
    ] = None,
) -> None:
    """Print the JSON Schema of the policy language (policies/schema.json is generated by it)."""
    text = policy_schema_text()
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")


@token_app.command("new")
def token_new(
    name: Annotated[str, typer.Option(help="who uses the token; recorded on every action")],
    namespace: Annotated[
        list[str] | None, typer.Option(help="namespace the token may act in (repeat); default all")
    ] = None,
    role: Annotated[
        list[str] | None,
        typer.Option(
            help="read (list, status, report), submit, operate (pause, resume, abort, promote, "
            "retry, approve) or admin (all); repeat for several. Default: read only",
        ),
    ] = None,
) -> None:
    """Make a token: print it once, and the settings entry that stores only its hash.

    A token gets only the roles named (least privilege): a CI job that queues rollouts needs
    --role submit, a person who steers them --role operate; both may read."""
    token = new_token()
    try:
        entry = ApiToken.model_validate(
            {
                "name": name,
                "sha256": hash_token(token),
                "namespaces": namespace or ["*"],
                "roles": list(dict.fromkeys(role or ["read"])),
            }
        )
    except ValidationError as exc:
        for error in exc.errors():
            option = _OPTIONS.get(str(error["loc"][0]), str(error["loc"][0]))
            typer.echo(f"{option}: {error['msg']}", err=True)
        raise typer.Exit(INVALID) from None
    typer.echo(f"token (shown once, give it to {name}): {token}")
    typer.echo("settings entry (api_tokens):")
    typer.echo(
        f"  - name: {entry.name}\n    sha256: {entry.sha256}\n"
        f"    namespaces: {json.dumps(entry.namespaces)}\n    roles: {json.dumps(entry.roles)}"
    )
    typer.echo("or in CANARIST_API_TOKENS (JSON, one entry of the list):")
    typer.echo(f"  {entry.model_dump_json()}")


# -- the server's policies (GET /v1/policies), as a person or a GitOps check sees them ------------

DIFFERENT = 1  # `policy diff`: the local file differs from what the server runs


def _served_call(path: str, api: str | None, token: str | None) -> dict[str, Any]:
    """GET ``path`` from the API; any failure exits 2 (its reason printed), so that a script
    can tell an error from `policy diff`'s 1 (different)."""
    try:
        with ApiClient(api, token) as client:
            return client.call("GET", path)
    except typer.Exit as exc:
        raise typer.Exit(INVALID if exc.exit_code else 0) from None


def policies_text(policies: list[dict[str, Any]]) -> str:
    """Aligned columns like ``canarist list``; a policy that does not load says why."""
    rows = [["NAME", "DIGEST", "STRATEGY", "MODIFIED", "METRICS"]]
    for policy in policies:
        error = policy.get("error")
        shown = f"ERROR: {error.splitlines()[0]}" if error else ",".join(policy["metrics"])
        modified = policy["modified_at"][:19].replace("T", " ")
        strategy = policy["strategy"] or "-"
        rows.append([policy["name"], short_digest(policy["digest"]), strategy, modified, shown])
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return "\n".join(
        "   ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


@policy_app.command("list")
def list_served(
    api: ApiOption = None, token: TokenOption = None, as_json: JsonOption = False
) -> None:
    """The server's policies: name, digest, strategy, modified time, metrics (or the error)."""
    answer = _served_call("/v1/policies", api, token)
    typer.echo(json.dumps(answer, indent=2) if as_json else policies_text(answer["policies"]))


@policy_app.command("show")
def show_served(
    name: Annotated[str, typer.Argument(help="the policy's name (its file's stem)")],
    api: ApiOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print the policy's YAML as the server reads it (its digest and summary on stderr)."""
    answer = _served_call(f"/v1/policies/{quote(name, safe='')}", api, token)
    if as_json:
        typer.echo(json.dumps(answer, indent=2))
        return
    summary = f"{answer['strategy']} strategy, metrics: {', '.join(answer['metrics'])}"
    typer.echo(f"# {answer['name']} @ {answer['digest']}", err=True)
    typer.echo(f"# {answer['error'] or summary}", err=True)
    sys.stdout.write(answer["text"])


@policy_app.command("diff")
def diff_served(
    file: Annotated[Path, typer.Argument(help="the local policy file")],
    name: Annotated[
        str | None, typer.Option("--name", help="the server's policy (default: the file's stem)")
    ] = None,
    api: ApiOption = None,
    token: TokenOption = None,
) -> None:
    """Unified diff from what the server runs to FILE: exit 0 same, 1 different, 2 error."""
    try:
        local = file.read_bytes()
    except OSError as exc:
        typer.echo(f"error: cannot read {file}: {exc.strerror or exc}", err=True)
        raise typer.Exit(INVALID) from None
    served_name = name or file.stem
    served = _served_call(f"/v1/policies/{quote(served_name, safe='')}", api, token)
    if hashlib.sha256(local).hexdigest() == served["digest"]:
        typer.echo(f"{file}: same as the server's {served_name} ({short_digest(served['digest'])})")
        return
    lines = difflib.unified_diff(
        served["text"].splitlines(keepends=True),
        local.decode("utf-8", errors="replace").splitlines(keepends=True),
        fromfile=f"server:{served_name}@{short_digest(served['digest'])}",
        tofile=str(file),
    )
    for line in lines:
        sys.stdout.write(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    raise typer.Exit(DIFFERENT)
