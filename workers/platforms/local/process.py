"""The operating-system side of the local platform: processes, ports, health, files and locks.

Instances are started so that any worker process, including one started after a crash, can
adopt them: each runs in its own session (so it outlives the worker that started it and is its
own process group), is identified by its group leader's PID and that PID's start time (so a PID
reused after a reboot is never mistaken for it), and is judged alive while its group has a
process that is not a zombie. The leader is ``/bin/sh`` as a supervisor only: the command itself
is shlex-split by Python and passed as argv (no shell parses it); the supervisor waits for it and
writes its exit code to a file, so whichever worker finds it dead can say why.

State files are written atomically (write, fsync, rename), and writers serialise on ``flock``
locks: a lock not obtained within its timeout is a ``TemporaryError`` (try again later).
"""

from __future__ import annotations

import contextlib
import fcntl
import http.client
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from workers.errors import TemporaryError

HOST = "127.0.0.1"
# "$0" is the exit-code file; "$@" the command's argv, run as is (never parsed by the shell).
_SUPERVISOR = '"$@"; echo $? > "$0"'
_children: dict[int, subprocess.Popen[bytes]] = {}  # started here: reaped here, no zombies


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return True
        return False


def start_time(pid: int) -> int | None:
    """The start time (clock ticks since boot) of a live, non-zombie ``pid``, else None."""
    fields = _stat(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def live_groups() -> set[int] | None:
    """Process groups with at least one member that is not a zombie; None without /proc."""
    reap()
    try:
        entries = os.listdir("/proc")
    except OSError:
        return None
    groups: set[int] = set()
    for entry in entries:
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields is not None and fields[0] not in ("Z", "X"):
                groups.add(int(fields[2]))
    return groups


def children(pid: int) -> set[int]:
    """The live (non-zombie) child processes of ``pid``; empty without /proc."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return set()
    found = set()
    for entry in entries:
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields is not None and fields[0] not in ("Z", "X") and int(fields[1]) == pid:
                found.add(int(entry))
    return found


def alive(pid: int, started: int, groups: set[int] | None) -> bool:
    """Whether the process group led by ``pid`` (started at ``started``) still runs."""
    if pid <= 0:
        return False
    ticks = start_time(pid)
    if ticks is not None:
        return started in (0, ticks)  # another process now has that PID: not ours
    if groups is not None:
        return pid in groups  # the leader is gone; the command it supervised may live on
    try:
        os.killpg(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def launch(
    argv: Sequence[str], log: Path, exit_file: Path, env: Mapping[str, str]
) -> tuple[int, int]:
    """Start ``argv`` in a session of its own; returns (leader PID, its start time)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    exit_file.unlink(missing_ok=True)
    with log.open("ab") as output:
        process = subprocess.Popen(
            ["/bin/sh", "-c", _SUPERVISOR, str(exit_file), *argv],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=dict(env),
            close_fds=True,
        )
    _children[process.pid] = process
    return process.pid, start_time(process.pid) or 0


def exit_code(exit_file: Path) -> int | None:
    """The code the supervisor recorded, or None if it did not (killed, or never ran)."""
    try:
        return int(exit_file.read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None


def stop(groups: Sequence[tuple[int, int]], grace: float, sig: int = signal.SIGTERM) -> None:
    """Signal each (leader PID, start time) group, wait up to ``grace`` s, then SIGKILL."""
    left = [group for group in groups if alive(*group, live_groups())]
    for signum, wait in ((sig, grace), (signal.SIGKILL, 2.0)):
        for pid, _ in left:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signum)
        deadline = time.monotonic() + wait
        while left and time.monotonic() < deadline:
            time.sleep(0.02)
            running = live_groups()
            left = [group for group in left if alive(*group, running)]
        if not left:
            return


def reap() -> None:
    """Collect the exit status of every process started here that has ended."""
    for pid, process in list(_children.items()):
        if process.poll() is not None:
            _children.pop(pid, None)


def healthy(port: int, path: str = "/healthz", timeout: float = 0.5) -> bool:
    """GET http://127.0.0.1:port/path answers 200."""
    connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        connection.request("GET", path)
        return connection.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def log_tail(log: Path, lines: int = 5, limit: int = 4000) -> str:
    """The last ``lines`` non-empty lines of a log file, for an error message."""
    try:
        with log.open("rb") as handle:
            handle.seek(max(0, log.stat().st_size - limit))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return "(no log)"
    kept = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
    return " | ".join(kept) or "(empty log)"


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so that readers see the old or the new file, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as output:
            output.write(text)
            output.flush()
            os.fsync(output.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> Any:
    """The JSON in ``path``, or None if there is no such file."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


@contextlib.contextmanager
def file_lock(path: Path, timeout: float) -> Iterator[None]:
    """An exclusive ``flock`` on ``path``; TemporaryError if not obtained within ``timeout``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise TemporaryError(f"{path} is locked by another worker", 1.0) from None
                time.sleep(0.02)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name: [state, ppid, pgrp, ...]."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()
