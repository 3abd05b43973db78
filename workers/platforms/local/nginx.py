"""The local platform's router: one NGINX master for every app of a state directory.

``render`` turns each app's ``AppRoute`` (which loopback ports serve the stable and the canary
version, the canary's weight and the requests matched to it) into one nginx.conf; it is pure.
A weighted split is ``split_clients`` on ``$request_id`` (with a fresh baseline a second bucket,
of the canary's size, goes to the baseline's pool), or, with ``traffic.sticky``, on the user's key
(``_sticky_maps``); a header or cookie match is a ``map``
that sends a matching request to the canary whatever the weight. Exact values are matched as
anchored, escaped regular expressions because NGINX compares map strings case-insensitively.

Sticky: ``split_clients`` hashes its key (MurmurHash2) into [0, 100%) and gives each bucket in
order its share, so the canary's bucket, first, is [0, weight): a key in it at 5% is in it at 50%
(raising the weight only adds users), and a fresh baseline's bucket follows it. The key is the
header's value, or the cookie's; without it, the request's id (that request alone is split at
random). When the router owns the cookie, a request without it gets ``Set-Cookie`` with the very
``$request_id`` its split was keyed on, so the user's first request and every later one agree.

``NginxRouter.publish`` applies a rendering: it checks the candidate with ``nginx -t`` first (a bad
rendering never replaces a working one: the error is a ``PlatformError`` with NGINX's message),
then starts NGINX or reloads it with SIGHUP to the recorded master, and waits until a control
server on a private port answers with the new generation number: only then is the reload done,
which is what "traffic back to stable first, then stop the canary" relies on. If the reload
fails (a port taken since the check), the previous configuration file is put back.
Everything NGINX writes (pid, error log, temporary files) stays under the directory; ``nginx -e``
keeps even its first messages out of /var/log. Callers hold the router lock around ``publish``.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analyzer.policy.traffic import StickyKey, StickyKind
from workers.actions import Match
from workers.platforms.base import PlatformError
from workers.platforms.local import process as proc

INSTALL_HINT = "install it with `sudo scripts/install-system-packages.sh nginx`"
_HEADER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_COOKIE_NAME = re.compile(r"^[!#$%&'*+.^`|~0-9A-Za-z_-]+$")  # an RFC 6265 token
_RESERVED = re.compile(r"[\x00-\x1f\x7f]")
CONFIRM_SECONDS = 10.0
STICKY_COOKIE_SECONDS = 30 * 24 * 3600  # a month: longer than a rollout, shorter than forever


@dataclass(frozen=True)
class AppRoute:
    """How one app's listen port sends requests: the ports of each pool and the split."""

    key: str  # unique in the configuration: a prefix for its upstreams and variables
    listen_port: int
    stable: tuple[int, ...]
    canary: tuple[int, ...] = ()
    weight: int = 0  # percent of requests to the canary pool
    match: tuple[Match, ...] = ()  # requests sent to the canary pool whatever the weight
    baseline: tuple[int, ...] = ()  # a fresh baseline's pool...
    baseline_weight: int = 0  # ...and its percent of requests, taken from the stable's
    sticky: StickyKey | None = None  # the split keyed on a user, not a request


def check_match(rule: Match) -> None:
    """Refuse a match NGINX cannot express safely, before anything is rendered."""
    pattern = _HEADER_NAME if rule.kind == "header" else _COOKIE_NAME
    if rule.kind == "cookie" and rule.regex:
        pattern = re.compile(r"^[A-Za-z0-9_]+$")  # matched as $cookie_<name>
    if not pattern.fullmatch(rule.name):
        raise PlatformError(f"the local platform cannot match on {rule.kind} name {rule.name!r}")
    if _RESERVED.search(rule.value):
        raise PlatformError(f"{rule.kind} {rule.name}: control characters in {rule.value!r}")


def render(routes: Sequence[AppRoute], *, generation: int, control_port: int, home: Path) -> str:
    """The whole nginx.conf; ``generation`` is what the control server answers."""
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};\n" if os.geteuid() == 0 else ""
    temp = "\n".join(
        f"    {kind}_temp_path {home / 'temp' / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    blocks = "\n".join(_app_block(route) for route in sorted(routes, key=lambda r: r.key))
    return f"""# Written by the Canarist local platform; every change is checked with nginx -t.
{user}worker_processes 1;
pid {home / "nginx.pid"};
error_log {home / "error.log"} warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
{temp}
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host $host;
    proxy_set_header X-Request-Id $request_id;
    proxy_next_upstream error timeout;
    server {{
        listen {proc.HOST}:{control_port};
        location / {{ return 200 "{generation}\\n"; }}
    }}
{blocks}}}
"""


def _app_block(route: AppRoute) -> str:
    key, lines = route.key, []
    pools = (("stable", route.stable), ("canary", route.canary), ("baseline", route.baseline))
    for pool, ports in pools:
        if ports:
            servers = " ".join(f"server {proc.HOST}:{port} max_fails=0;" for port in ports)
            lines.append(f"    upstream {key}_{pool} {{ {servers} keepalive 8; }}")
    selectors = []
    for index, rule in enumerate(route.match):  # rendered even while unused, so -t checks them
        check_match(rule)
        variable = f"${key}_match{index}"
        lines.append(f'    map {_source(rule)} {variable} {{ default ""; {_pattern(rule)} c; }}')
        selectors.append(variable)
    split_key = "$request_id"
    if route.sticky is not None:
        sticky_lines, split_key = _sticky_maps(key, route.sticky)
        lines.extend(sticky_lines)
    fresh = route.baseline_weight if route.baseline and route.canary else 0
    if 0 < route.weight < 100:
        variable, share = f"${key}_split", f" {fresh}% b;" if fresh else ""
        lines.append(
            f'    split_clients "{split_key}" {variable} {{ {route.weight}% c;{share} * ""; }}'
        )
        selectors.append(variable)
    if route.stable and route.canary and route.weight < 100 and selectors:
        joined = "".join(selectors)
        baseline = f" b {key}_baseline;" if fresh else ""  # only the split says b alone
        lines.append(
            f'    map "{joined}" ${key}_pool {{ "" {key}_stable;{baseline} default {key}_canary; }}'
        )
        target = f"proxy_pass http://${key}_pool;"
    elif route.canary and (route.weight >= 100 or not route.stable):
        target = f"proxy_pass http://{key}_canary;"
    elif route.stable:
        target = f"proxy_pass http://{key}_stable;"
    else:
        target = 'return 503 "no healthy instance\\n";'
    lines.append(
        f"    server {{\n        listen {proc.HOST}:{route.listen_port};\n"
        f"        location / {{ {target}{_sticky_cookie(key, route.sticky)} }}\n    }}"
    )
    return "\n".join(lines) + "\n"


def check_sticky(sticky: StickyKey) -> None:
    """Refuse a sticky key NGINX cannot read safely, before anything is rendered."""
    pattern = _HEADER_NAME if sticky.kind == StickyKind.HEADER else _COOKIE_NAME
    if not pattern.fullmatch(sticky.name):
        raise PlatformError(f"the local platform cannot split on {sticky.describe()}")


def _sticky_maps(key: str, sticky: StickyKey) -> tuple[list[str], str]:
    """The maps that give each request its user's key (``$<key>_user``: the header's or the
    cookie's value, else the request's id), and that key as ``split_clients`` takes it."""
    check_sticky(sticky)
    lines = []
    if sticky.kind == StickyKind.HEADER:
        source = "$http_" + sticky.name.lower().replace("-", "_")
    else:  # read from the Cookie header: $cookie_<name> cannot name every cookie
        source = f"${key}_user_cookie"
        pattern = _quote(rf"~(^|;)\s*{re.escape(sticky.name)}=([^;\s]+)")
        lines.append(f'    map $http_cookie {source} {{ {pattern} $2; default ""; }}')
    lines.append(f'    map {source} ${key}_user {{ "" $request_id; default {source}; }}')
    if sticky.kind == StickyKind.ROUTER_COOKIE:
        cookie = (
            f"{sticky.name}=$request_id; Path=/; Max-Age={STICKY_COOKIE_SECONDS}; "
            "SameSite=Lax; HttpOnly"
        )
        lines.append(f'    map {source} ${key}_set_cookie {{ "" "{cookie}"; default ""; }}')
    return lines, f"${key}_user"


def _sticky_cookie(key: str, sticky: StickyKey | None) -> str:
    """The router's cookie, to a user who has none yet (an empty value sends no header)."""
    if sticky is None or sticky.kind != StickyKind.ROUTER_COOKIE:
        return ""
    return f" add_header Set-Cookie ${key}_set_cookie always;"


def _source(rule: Match) -> str:
    if rule.kind == "header":
        return "$http_" + rule.name.lower().replace("-", "_")
    return f"$cookie_{rule.name}" if rule.regex else "$http_cookie"


def _pattern(rule: Match) -> str:
    if rule.regex:
        return _quote("~" + rule.value)
    if rule.kind == "header":
        return _quote(f"~^{re.escape(rule.value)}$")
    name, value = re.escape(rule.name), re.escape(rule.value)
    return _quote(rf"~(^|;)\s*{name}={value}\s*(;|$)")


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class NginxRouter:
    """Starts, reloads and stops the NGINX master of one state directory."""

    def __init__(self, home: Path, nginx: str) -> None:
        self.home, self._nginx = home, nginx
        self.config, self._state_file = home / "nginx.conf", home / "router.json"
        self._old_workers: set[int] = set()

    def binary(self) -> str:
        search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
        found = shutil.which(self._nginx, path=search)
        if found is None:
            raise PlatformError(f"nginx ({self._nginx}) was not found: {INSTALL_HINT}")
        return found

    def state(self) -> dict[str, Any]:
        return proc.read_json(self._state_file) or {"generation": 0}

    def master(self) -> dict[str, int] | None:
        """The recorded NGINX master (PID and start time), if that very process still runs.

        Only the master counts: workers whose master died keep serving the old configuration
        but obey no reload, so such a router is dead (``_start`` stops what is left of it)."""
        master = self.state().get("master")
        if not master:
            return None
        pid, start = int(master["pid"]), int(master["start"])
        ticks = proc.start_time(pid)
        return {"pid": pid, "start": start} if ticks is not None and start in (0, ticks) else None

    def started_at(self) -> float | None:
        """When the running master was started (Unix seconds), if it runs and that is known."""
        started = self.state().get("started_at")
        return float(started) if started is not None and self.master() else None

    def check(self, routes: Sequence[AppRoute]) -> None:
        """``nginx -t`` on a rendering of ``routes``; PlatformError with NGINX's message."""
        state = self.state()
        port = state.get("control_port") or proc.free_port()
        self._test(
            render(routes, generation=state["generation"], control_port=port, home=self.home)
        )

    def publish(self, routes: Sequence[AppRoute]) -> int:
        """Make the running NGINX serve ``routes``; returns the generation it serves."""
        state, master = self.state(), self.master()
        port = int(state["control_port"]) if master else proc.free_port()
        digest = _digest(render(routes, generation=0, control_port=port, home=self.home))
        if master and digest == state.get("digest"):
            return int(state["generation"])
        generation = int(state["generation"]) + 1
        text = render(routes, generation=generation, control_port=port, home=self.home)
        self._test(text)
        previous = self.config.read_text(encoding="utf-8") if self.config.exists() else None
        proc.write_atomic(self.config, text)
        started_at = state.get("started_at")
        try:
            reloaded = self._reload(master) if master else None
            if reloaded is None:  # none ran, or it died just now: start one
                reloaded, started_at = self._start(state.get("master")), time.time()
            self._confirm(port, generation)
        except PlatformError:
            if previous is not None:
                proc.write_atomic(self.config, previous)
            raise
        record = {"generation": generation, "control_port": port, "digest": digest}
        record |= {"master": reloaded, "started_at": started_at}
        proc.write_atomic(self._state_file, _json(record))
        return generation

    def stop(self, grace: float) -> None:
        """Stop the master and its workers (graceful first), by the recorded PID; workers
        left behind by a master that died are stopped too (they share its process group)."""
        master = self.state().get("master")
        if master:
            proc.stop([(int(master["pid"]), int(master["start"]))], grace, signal.SIGQUIT)
        state = self.state()
        state.pop("master", None)
        proc.write_atomic(self._state_file, _json(state))

    def _test(self, text: str) -> None:
        candidate = self.home / "nginx.conf.candidate"
        proc.write_atomic(candidate, text)
        code, output = self._run("-t", "-c", str(candidate))
        if code != 0:
            raise PlatformError(f"nginx refused the configuration: {_errors(output)}")

    def _start(self, dead: dict[str, int] | None) -> dict[str, int]:
        """Start a master; first stop what is left of ``dead``, the one recorded before (its
        orphaned workers would keep the ports and refuse the new master's listen)."""
        if dead:
            proc.stop([(int(dead["pid"]), int(dead["start"]))], 1.0, signal.SIGQUIT)
        (self.home / "nginx.pid").unlink(missing_ok=True)
        code, output = self._run("-c", str(self.config))
        if code != 0:
            raise PlatformError(f"nginx did not start: {_errors(output)}")
        pid = int((self.home / "nginx.pid").read_text(encoding="utf-8").strip())
        return {"pid": pid, "start": proc.start_time(pid) or 0}

    def _reload(self, master: dict[str, int]) -> dict[str, int] | None:
        """SIGHUP to the master; None if it is gone (it died since ``master()`` looked: a
        zombie, which nothing may reap in a container, takes the signal without a word)."""
        self._old_workers = proc.children(master["pid"])
        try:
            os.kill(master["pid"], signal.SIGHUP)
        except ProcessLookupError:
            return None
        return master if proc.start_time(master["pid"]) is not None else None

    def _confirm(self, port: int, generation: int) -> None:
        """Wait until every new connection reaches a worker of ``generation``'s configuration.

        The master starts the new workers, and only about 100 ms later tells the old ones to
        stop accepting: until they are gone, a new connection may still reach an old worker."""
        deadline = time.monotonic() + CONFIRM_SECONDS
        while _generation(port) != generation:
            if time.monotonic() >= deadline:
                log = self.home / "error.log"
                raise PlatformError(f"nginx did not apply the configuration: {proc.log_tail(log)}")
            time.sleep(0.02)
        old, self._old_workers = self._old_workers, set()
        while old and time.monotonic() < deadline:  # then they only finish requests in flight
            old &= {pid for pid in old if proc.start_time(pid) is not None}
            time.sleep(0.02)

    def _run(self, *arguments: str) -> tuple[int, str]:
        """Run nginx; its output goes to a file, not a pipe the daemon could keep open."""
        (self.home / "temp").mkdir(parents=True, exist_ok=True)
        command = [self.binary(), "-p", f"{self.home}/", "-e", str(self.home / "error.log")]
        output = self.home / "nginx.out"
        try:
            with output.open("w") as handle:
                code = subprocess.run(
                    [*command, *arguments],
                    stdin=subprocess.DEVNULL,
                    stdout=handle,
                    stderr=subprocess.STDOUT,
                    timeout=30,
                    check=False,
                ).returncode
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PlatformError(f"could not run nginx: {exc}") from exc
        return code, output.read_text(encoding="utf-8", errors="replace")


def _generation(port: int) -> int | None:
    connection = http.client.HTTPConnection(proc.HOST, port, timeout=0.5)
    try:
        connection.request("GET", "/")
        return int(connection.getresponse().read().decode().strip())
    except (OSError, http.client.HTTPException, ValueError):
        return None
    finally:
        connection.close()


def _errors(output: str) -> str:
    lines = [line for line in output.splitlines() if "[emerg]" in line or "[alert]" in line]
    return " ".join(lines or output.splitlines()[-2:] or ["no output"]).strip()


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _json(record: dict[str, Any]) -> str:
    return json.dumps(record, indent=2, sort_keys=True) + "\n"
