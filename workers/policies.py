"""Policies as the server holds them: the files of its policy directory, and each rollout's own.

``PolicyDir`` reads ``<dir>/<name>.yaml`` (or ``.yml``) once per version of the file
(modification time and size) and keeps what it read: the text, its digest (sha256 of the
bytes), and the parsed ``Policy`` or the ``PolicyError`` that stops it. It is the one cache of
policy files: intake reads a job's policy through it, and ``GET /v1/policies`` lists it.

A rollout pins its whole policy at submit: intake puts the text in the store, content-addressed
(``policy:<digest>``, written once and never changed), and the rollout keeps the digest. From
then on every look, command, status and report reads that text (``PinnedPolicies``, one parse
per digest), so editing the file changes the next rollouts, never those in flight. Rollouts
stored before pinning have no digest and read the file by name, as they always did.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from analyzer.errors import PolicyError, PolicyProblem
from analyzer.policy import Policy, load_policy_text
from analyzer.policy.promql import shown
from analyzer.policy.reading import MAX_POLICY_BYTES, read_policy_file
from workers.errors import InvalidJobError, NotFound, UnknownPolicyError
from workers.job import POLICY_NAME
from workers.store import PolicyTexts
from workers.store.records import policy_digest

SUFFIXES = (".yaml", ".yml")
SHORT_DIGEST = 12  # hex digits shown to people: `canarist status`, the report
CHANGED = "the file changed while it was read: read it again"


def short_digest(digest: str) -> str:
    return digest[:SHORT_DIGEST]


@dataclass(frozen=True)
class PolicyFile:
    """One policy file as read: its text, digest, modification time (Unix seconds), and the
    policy it parses to or the error that stops it (``policy`` None, ``error`` set)."""

    name: str
    text: str
    digest: str
    modified_at: float
    policy: Policy | None
    error: PolicyError | None

    def loaded(self) -> Policy:
        """The policy, or its PolicyError (file, line, field) raised anew."""
        if self.policy is None:
            error = self.error or PolicyError(self.name, [])
            raise PolicyError(error.source, error.problems)
        return self.policy


class PolicyDir:
    """Policies by name (``<dir>/<name>.yaml`` or ``.yml``), each read once per version of its
    file. A name must be a policy name (``POLICY_NAME``), so no name reaches outside the
    directory."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._cache: dict[str, tuple[tuple[int, int], PolicyFile]] = {}
        self._lock = threading.Lock()

    def path(self, name: str) -> Path:
        if not re.fullmatch(POLICY_NAME, name):
            raise UnknownPolicyError(f"{shown(name)} is not a policy name")
        for suffix in SUFFIXES:
            candidate = self.root / f"{name}{suffix}"
            if candidate.is_file():
                return candidate
        # The directory is the server's business, not the caller's: name the policy only.
        raise UnknownPolicyError(f"no policy {name!r}")

    def names(self) -> list[str]:
        """The policy names the directory holds, sorted (a ``.yaml`` hides its ``.yml`` twin)."""
        try:
            found = {
                entry.stem
                for entry in self.root.iterdir()
                if entry.suffix in SUFFIXES
                and re.fullmatch(POLICY_NAME, entry.stem)
                and entry.is_file()
            }
        except OSError:
            return []
        return sorted(found)

    def read(self, name: str) -> PolicyFile:
        """The file as read now; UnknownPolicyError if absent. An invalid file is remembered
        too (with its error), so it is not parsed again until it changes."""
        path = self.path(name)
        stat = path.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            cached = self._cache.get(name)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        read = _read(name, path, stat.st_mtime_ns / 1e9)
        with self._lock:
            self._cache[name] = (stamp, read)
        return read

    def load(self, name: str) -> Policy:
        """The policy; UnknownPolicyError if absent, PolicyError (file, line) if invalid."""
        return self.read(name).loaded()


def _read(name: str, path: Path, modified_at: float) -> PolicyFile:
    try:
        with path.open("rb") as file:
            data = file.read(MAX_POLICY_BYTES + 1)
    except OSError as exc:  # listed with its error, like a file that does not parse
        problem = PolicyProblem((), f"cannot read file: {exc.strerror or exc}")
        error = PolicyError(str(path), [problem])
        return PolicyFile(name, "", hashlib.sha256(b"").hexdigest(), modified_at, None, error)
    digest = hashlib.sha256(data).hexdigest()
    text = data.decode("utf-8", errors="replace")
    try:
        if len(data) > MAX_POLICY_BYTES or text.encode("utf-8") != data:
            # too large, or not UTF-8: the reader's own located problem
            problems = read_policy_file(path)[1] or [PolicyProblem((), CHANGED)]
            raise PolicyError(str(path), problems)
        policy = load_policy_text(text, str(path))
    except PolicyError as exc:
        return PolicyFile(name, text, digest, modified_at, None, exc)
    return PolicyFile(name, text, digest, modified_at, policy, None)


class PinnedPolicies:
    """The policies rollouts pinned, read from the store by digest and parsed once per digest
    (the newest ``capacity`` kept): a look, a status or a report never parses YAML again."""

    def __init__(self, texts: PolicyTexts, capacity: int = 64) -> None:
        self._texts, self._capacity = texts, capacity
        self._parsed: OrderedDict[str, Policy] = OrderedDict()
        self._lock = threading.Lock()

    def pin(self, read: PolicyFile) -> str:
        """Keep the file's text in the store (once per digest); return its digest."""
        digest = self._texts.put(read.text)
        with self._lock:
            if read.policy is not None:
                self._remember(digest, read.policy)
        return digest

    def load(self, name: str, digest: str) -> Policy:
        """The policy pinned as ``digest`` (``name``: for messages). InvalidJobError if its text
        is missing from the store, altered, or no longer parses."""
        with self._lock:
            cached = self._parsed.get(digest)
            if cached is not None:
                self._parsed.move_to_end(digest)
                return cached
        where = f"policy {name!r} as pinned ({short_digest(digest)})"
        try:
            text = self._texts.get(digest)
        except NotFound as exc:
            raise InvalidJobError(f"{where} is missing from the store") from exc
        if policy_digest(text) != digest:
            raise InvalidJobError(f"{where}: the stored text does not match its digest")
        try:
            policy = load_policy_text(text, f"{name}@{short_digest(digest)}")
        except PolicyError as exc:
            problems = "\n".join(problem.render(exc.source) for problem in exc.problems)
            raise InvalidJobError(f"{where} does not load:\n{problems}") from exc
        with self._lock:
            self._remember(digest, policy)
        return policy

    def _remember(self, digest: str, policy: Policy) -> None:
        self._parsed[digest] = policy
        self._parsed.move_to_end(digest)
        while len(self._parsed) > self._capacity:
            self._parsed.popitem(last=False)
