"""Records as a release of Canarist leaves them in Redis: made once per release, loaded by the
upgrade tests (test_store_upgrade.py) to show that a later release carries them on.

``python -m tests.workers.stored_records tests/fixtures/stored/<name>`` starts a Redis of its own,
runs three rollouts through ``engine.step`` and the Redis store, as the task does, under the
policy ``default-canary`` as shipped, and writes into the new folder ``<name>``:

- ``policy.yaml``: that policy, frozen: the rollouts' own policy file, which an upgrade of
  Canarist does not change (since pinning, each rollout's also lies in the store, by digest);
- ``in-analysis.json``: a canary at 25% with looks taken and another one due (submitted with an
  idempotency key);
- ``paused.json``: the same, then paused by a person;
- ``aborted.json``: a canary that failed its analysis and was rolled back, with its alert
  waiting in the outbox.

Each file holds every key the rollout's life left under the store's prefix (the prefix cut),
with its type and value exactly as stored: hash fields, stream entries with their ids, sorted
set members with their scores. A value that is JSON text of an object (a rollout's state, an
event, an outbox payload) is kept as that object, for people to read, and ``restore`` writes it
back as the same compact text: ``dump`` checks that the round trip gives the very bytes stored.

The folder of a released version is never written again: the tests prove that records in flight
at an upgrade are carried on, and only the records that version wrote prove it. A release that
changes what it stores adds a folder of its own (the script refuses to write into one that
exists); see tests/fixtures/stored/README.md.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import redis

from analyzer.policy import load_policy_text
from analyzer.verdict import Outcome
from canarist.demo.stack import start_redis
from tests.workers.rollout_driver import POLICIES, Driver, always, healthy
from workers.actions import Action, Observation, RecordEvent
from workers.intake import split
from workers.state import Phase, RolloutState
from workers.store import IdempotencyKey, RedisStateStore

STORED = Path(__file__).resolve().parents[1] / "fixtures" / "stored"
T0 = 1_700_000_000.0
SCENARIOS = ("in-analysis", "paused", "aborted")
POLICY_FILE = "policy.yaml"


class Recorded(Driver):
    """A driver whose every step is saved in the store, as the task saves it."""

    def __init__(self, store: RedisStateStore, rollout_id: str, key: str | None) -> None:
        text = (POLICIES / "default-canary.yaml").read_text(encoding="utf-8")
        super().__init__(load_policy_text(text), rollout_id, now=T0)
        self.store = store
        digest = store.policies.put(text)  # pinned, as intake submits it
        self.state = replace(self.state, next_due_at=T0, policy_digest=digest)
        submitted = RecordEvent(
            "submitted",
            "submitted by ci: checkout v2 in shop with policy default-canary on kubernetes",
            {"app": "checkout", "namespace": "shop", "version": "v2", "platform": "kubernetes"},
            "ci",
        )
        idempotency = None if key is None else IdempotencyKey(key, "0" * 64)
        self.revision = store.create(self.state, idempotency, events=[submitted]).revision

    def send(self, observation: Observation) -> list[Action]:
        actions = super().send(observation)
        events, outbox = split(actions)
        self.revision = self.store.save(self.state, self.revision, events=events, outbox=outbox)
        return actions


def play(store: RedisStateStore, scenario: str) -> str:
    """Run ``scenario``'s rollout into ``store``; return its id."""
    rollout_id = f"checkout-{scenario}"
    driver = Recorded(store, rollout_id, "ci-run-4711" if scenario == "in-analysis" else None)
    driver.run(healthy(driver.policy), until=_looked_at_25)
    if scenario == "paused":
        driver.command("pause", "alice")
    if scenario == "aborted":
        driver.run(always(driver.policy, Outcome.FAIL), until=lambda state: state.phase.terminal)
        assert driver.state.phase is Phase.ABORTED, driver.state.phase
    return rollout_id


def _looked_at_25(state: RolloutState) -> bool:
    """In the analysis at 25%, with two looks taken and the next one due."""
    window_start = state.window_start or 0.0
    return state.canary_weight == 25 and (state.last_look_at or 0.0) >= window_start + 120


def dump(client: redis.Redis, prefix: str) -> dict[str, Any]:
    """Every key under ``prefix``, by name without it: type, value and, if it expires, pttl."""
    keys: dict[str, Any] = {}
    for name in sorted(client.scan_iter(match=f"{prefix}*")):
        kind, entry = client.type(name), {}
        if kind == "hash":
            entry["hash"] = {field: _readable(text) for field, text in client.hgetall(name).items()}
        elif kind == "stream":
            entries = client.xrange(name)
            entry["stream"] = [
                [entry_id, {field: _readable(text) for field, text in fields.items()}]
                for entry_id, fields in entries
            ]
        elif kind == "zset":
            members = client.zrange(name, 0, -1, withscores=True, score_cast_func=_score)
            entry["zset"] = [[member, score] for member, score in members]
        elif kind == "string":
            entry["string"] = client.get(name)
        else:
            raise ValueError(f"{name}: a {kind} key, which the store does not write")
        ttl = client.pttl(name)
        if ttl > 0:
            entry["pttl"] = ttl
        keys[name.removeprefix(prefix)] = entry
    return keys


def restore(client: redis.Redis, prefix: str, keys: dict[str, Any]) -> None:
    """Write ``keys`` (as ``dump`` made them) under ``prefix``, byte for byte as stored."""
    for name, entry in keys.items():
        key = prefix + name
        if "hash" in entry:
            client.hset(key, mapping={f: _stored(v) for f, v in entry["hash"].items()})
        elif "stream" in entry:
            for entry_id, fields in entry["stream"]:
                client.xadd(key, {f: _stored(v) for f, v in fields.items()}, id=entry_id)
        elif "zset" in entry:
            client.zadd(key, {member: float(score) for member, score in entry["zset"]})
        else:
            client.set(key, entry["string"])
        if "pttl" in entry:
            client.pexpire(key, entry["pttl"])


def rewrite_state(client: redis.Redis, prefix: str, rollout_id: str, **changes: Any) -> str:
    """Change a stored rollout's record as another release would have written it (a change to
    None removes the field); return the new text."""
    key = f"{prefix}rollout:{rollout_id}"
    record = {**json.loads(client.hget(key, "state")), **changes}
    record = {name: value for name, value in record.items() if changes.get(name, 0) is not None}
    text = json.dumps(record, sort_keys=True, separators=(",", ":"))
    client.hset(key, "state", text)
    return text


def _score(raw: bytes | str) -> str:
    """A sorted set's score as Redis wrote it (``inf`` for the due index's +inf)."""
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _readable(text: str) -> Any:
    """JSON text of an object as that object, when it comes back as the very same text."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, dict) and _stored(value) == text else text


def _stored(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def _commit() -> str:
    try:
        answer = subprocess.run(
            ["git", "describe", "--always", "--dirty"], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return answer.stdout.strip()


def write(folder: Path, url: str) -> None:
    folder.mkdir(parents=True)
    shutil.copyfile(POLICIES / "default-canary.yaml", folder / POLICY_FILE)
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        for scenario in SCENARIOS:
            prefix = f"fixture:{scenario}:"
            store = RedisStateStore(client, prefix)
            rollout_id = play(store, scenario)
            record = {
                "written_by": f"Canarist at {_commit()}",
                "rollout": rollout_id,
                "policy": POLICY_FILE,
                "keys": dump(client, prefix),
            }
            text = json.dumps(record, indent=1) + "\n"
            (folder / f"{scenario}.json").write_text(text, encoding="utf-8")
    finally:
        client.close()


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(f"usage: python -m tests.workers.stored_records FOLDER\n{__doc__}", file=sys.stderr)
        return 2
    folder = Path(argv[0])
    if folder.exists():
        print(
            f"{folder} exists: a released version's records are never written again; "
            "name a new folder",
            file=sys.stderr,
        )
        return 1
    with tempfile.TemporaryDirectory(prefix="stored-records-") as workdir:
        server = start_redis(Path(workdir))
        try:
            write(folder, server.url)
        finally:
            server.stop()
    print(f"wrote {', '.join(f'{s}.json' for s in SCENARIOS)} and {POLICY_FILE} in {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
