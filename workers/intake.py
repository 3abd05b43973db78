"""The one way in: every door (HTTP API, CLI through the API, Celery task) validates a job and
changes a rollout through this module, so they cannot disagree.

``RolloutJob`` is the validated job (pydantic, extra="forbid"); ``Intake`` does the operations:

- ``submit(job, actor)``: check the policy and its args, create the rollout PENDING and due now,
  make it the app's latest (superseding the previous one, retried when the lane moves), tell the
  previous one ``Superseded`` and enqueue ``advance``. An idempotency key already used returns
  the rollout it created (``created=False``); the same key for a different job is refused.
- ``command(id, kind, actor)``: a person's abort/promote/pause/resume/retry.
- ``get(id)``, ``list(namespace)``: read-only.
- ``tell(id, observation)``: the load -> ``engine.step`` -> compare-and-set save -> enqueue path
  that commands, ``Superseded`` and ``Released`` share (retried on Conflict). Platform actions are
  not applied here: the enqueued ``advance`` task applies them (the engine re-asserts what its
  state awaits), so the API process needs no platform credentials.

Errors, for the doors to translate (the API: 404, 422, 404, 503)::

    WorkerError (workers/errors.py)
    └── IntakeError
        ├── UnknownPolicyError      no policy of that name in the policy directory
        ├── InvalidJobError         args not satisfied, policy file invalid, key reused
        └── RolloutNotFoundError    no rollout with that id
    TemporaryError / StoreUnavailable   the store is busy or down: retry later
"""

from __future__ import annotations

import builtins
import contextlib
import re
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from analyzer.analysis import resolve_args
from analyzer.errors import PolicyError, SelectorError, TemplateError
from analyzer.policy import Policy, load_policy
from analyzer.policy.promql import Selector
from analyzer.policy.traffic import Traffic
from workers.actions import (
    Action,
    CommandKind,
    ManualCommand,
    Notify,
    Observation,
    RecordEvent,
    Release,
    Superseded,
)
from workers.engine import step
from workers.errors import Conflict, NotFound, TemporaryError, WorkerError
from workers.platforms import platform_names
from workers.state import RolloutSpec, RolloutState, TrafficSpec
from workers.store import AuditEvent, StateStore

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
LABEL_VALUE = r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$"
POLICY_NAME = r"^[a-z0-9]([a-z0-9_.-]{0,61}[a-z0-9])?$"  # analyzer.policy.base.Name
IMAGE = r"^\S{1,512}$"
CAS_ATTEMPTS = 8
COMMANDS: tuple[str, ...] = get_args(CommandKind)
Enqueue = Callable[[str, int], None]


class IntakeError(WorkerError):
    """Base of what intake refuses."""


class UnknownPolicyError(IntakeError, LookupError):
    """The job names a policy the policy directory does not hold."""


class InvalidJobError(IntakeError, ValueError):
    """The job cannot run as given; the message says why, naming the field or file."""


class RolloutNotFoundError(IntakeError, LookupError):
    """No rollout has that id."""


class RolloutJob(BaseModel):
    """A request to roll ``version`` of ``app`` out in ``namespace``, judged by ``policy``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    app: str = Field(pattern=DNS_LABEL, description="DNS-1123 label, e.g. checkout")
    namespace: str = Field(pattern=DNS_LABEL, description="DNS-1123 label, e.g. shop")
    version: str = Field(pattern=LABEL_VALUE, description="the new version, e.g. v2 or 1.4.0")
    image: str | None = Field(
        default=None,
        min_length=1,
        max_length=512,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description="kubernetes: the new image of the pod's only container, or of the one named "
        "like the app; local: the new version's command line, with a {port} placeholder",
    )
    images: dict[str, str] = Field(
        default_factory=dict,
        description="new images by container name, for pods with several containers",
    )
    policy: str = Field(pattern=POLICY_NAME, description="a policy file's stem in the policy dir")
    platform: str = Field(default="observe", description="where traffic moves: observe, ...")
    args: dict[str, str] = Field(default_factory=dict, description="values for the policy's args")
    baseline: str = Field(min_length=1, description='label matchers, e.g. app="checkout",v="1"')
    canary: str = Field(min_length=1, description="label matchers of the new version's series")
    idempotency_key: str | None = Field(
        default=None, min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$"
    )

    @field_validator("platform")
    @classmethod
    def _known_platform(cls, name: str) -> str:
        if name not in platform_names():
            raise ValueError(f"unknown platform {name!r}; known: {', '.join(platform_names())}")
        return name

    @field_validator("images")
    @classmethod
    def _images(cls, images: dict[str, str]) -> dict[str, str]:
        for container, image in images.items():
            if not re.fullmatch(DNS_LABEL, container):
                raise ValueError(f"container name {container!r} is not a DNS-1123 label")
            if not re.fullmatch(IMAGE, image):
                raise ValueError(f"image {image!r} of container {container!r} is not an image")
        return images

    @field_validator("baseline", "canary")
    @classmethod
    def _selector(cls, text: str) -> str:
        try:
            return Selector.parse(text).render()
        except SelectorError as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _distinct_versions(self) -> RolloutJob:
        if self.baseline == self.canary:
            raise ValueError("baseline and canary select the same series: nothing to compare")
        return self

    @model_validator(mode="after")
    def _image_fits_the_platform(self) -> RolloutJob:
        if self.image is None:
            return self
        if self.platform == "local" and "{port}" not in self.image:
            raise ValueError(
                "image: the local platform runs a command line, which must contain {port}"
            )
        if self.platform != "local" and re.search(r"\s", self.image):
            raise ValueError(
                "image must not contain whitespace (only the local platform takes a command line)"
            )
        return self

    def spec(
        self, args: dict[str, str], strategy: str = "canary", traffic: Traffic | None = None
    ) -> RolloutSpec:
        """The rollout's spec, with the policy's strategy type and traffic section at submit."""
        return RolloutSpec(
            version=self.version,
            image=self.image or "",
            platform=self.platform,
            baseline_selector=self.baseline,
            canary_selector=self.canary,
            args=tuple(sorted(args.items())),
            strategy=strategy,
            images=tuple(sorted(self.images.items())),
            traffic=traffic_spec(traffic or Traffic(), self.app),
        )


def traffic_spec(traffic: Traffic, app: str) -> TrafficSpec:
    """The policy's traffic section as the rollout keeps it, every name resolved for ``app``."""
    return TrafficSpec(
        router=traffic.router,
        route=traffic.route or "",
        ingress=traffic.ingress or "",
        stable_service=traffic.stable_service or "",
        canary_service=traffic.canary_service or "",
        version_label=traffic.version_label,
    ).resolved(app)


@dataclass(frozen=True)
class Submitted:
    rollout_id: str
    created: bool  # False: the idempotency key named an existing rollout
    superseded: str | None  # the app's previous rollout, told to stand down


class PolicyDir:
    """Policies by name (``<dir>/<name>.yaml``), re-read when the file changes."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._cache: dict[str, tuple[tuple[int, int], Policy]] = {}
        self._lock = threading.Lock()

    def path(self, name: str) -> Path:
        if not re.fullmatch(POLICY_NAME, name):
            raise UnknownPolicyError(f"{name!r} is not a policy name")
        for suffix in (".yaml", ".yml"):
            candidate = self.root / f"{name}{suffix}"
            if candidate.is_file():
                return candidate
        raise UnknownPolicyError(f"no policy {name!r} in {self.root}")

    def load(self, name: str) -> Policy:
        """The policy; UnknownPolicyError if absent, PolicyError (file, line) if invalid."""
        path = self.path(name)
        stat = path.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            cached = self._cache.get(name)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        policy = load_policy(path)
        with self._lock:
            self._cache[name] = (stamp, policy)
        return policy


class Intake:
    """Validated submissions and commands over a StateStore; see the module docstring."""

    def __init__(
        self,
        store: StateStore,
        policy_dir: Path,
        clock: Callable[[], float],
        enqueue: Enqueue,
        *,
        on_outbox: Callable[[], None] | None = None,
    ) -> None:
        """``enqueue(id, revision)`` schedules ``advance`` now; ``on_outbox()`` (optional) wakes
        the outbox delivery after a save queued an alert or a hand-over."""
        self.store, self.clock = store, clock
        self.policies = PolicyDir(policy_dir)
        self._enqueue, self._on_outbox = enqueue, on_outbox

    # -- submit ---------------------------------------------------------------------------------
    def policy(self, name: str) -> Policy:
        """The named policy; UnknownPolicyError, or InvalidJobError naming file and line."""
        try:
            return self.policies.load(name)
        except PolicyError as exc:
            raise InvalidJobError(f"policy {name!r} is invalid:\n{exc}") from exc

    def check(self, job: RolloutJob) -> tuple[Policy, dict[str, str]]:
        """The job's policy and its resolved args, or the reason the job cannot run."""
        policy = self.policy(job.policy)
        needs_router = job.platform == "kubernetes" and policy.strategy.type == "targeted"
        if needs_router and policy.traffic.router == "replicas":
            raise InvalidJobError(
                f"policy {job.policy!r} targets an audience, which on Kubernetes needs a router "
                "that matches requests: set traffic.router to gateway_api or nginx_ingress "
                "(replica counts cannot send a chosen audience to the canary)"
            )
        try:
            return policy, resolve_args(policy, job.args)
        except TemplateError as exc:
            raise InvalidJobError(f"args: {exc}") from exc

    def submit(self, job: RolloutJob, actor: str) -> Submitted:
        policy, args = self.check(job)
        now, spec = self.clock(), job.spec(args, policy.strategy.type, policy.traffic)
        summary = f"{job.app} {job.version} in {job.namespace} with policy {job.policy}"
        event = RecordEvent(
            "submitted",
            f"submitted by {actor}: {summary} on {job.platform}",
            job.model_dump(mode="json", exclude={"idempotency_key"}),
            actor,
        )
        for _ in range(CAS_ATTEMPTS):
            latest = self.store.latest_for(job.app, job.namespace)
            state = RolloutState.new(
                f"{job.app}-{uuid.uuid4().hex[:12]}",
                app=job.app,
                namespace=job.namespace,
                policy=job.policy,
                spec=spec,
                now=now,
                supersedes=latest,
            )
            state = replace(state, next_due_at=now)  # the reconciler's safety net from the start
            try:
                created = self.store.create(state, job.idempotency_key, events=[event])
            except Conflict:
                continue  # another submission for the app won the lane: supersede it instead
            break
        else:
            raise TemporaryError(f"{job.app} in {job.namespace}: submissions keep racing")
        if not created.created:
            return self._replayed(job, created.rollout_id)
        if latest is not None:
            self._stand_down(latest, state.id)
        self._enqueue(state.id, created.revision)
        return Submitted(state.id, True, latest)

    def _replayed(self, job: RolloutJob, rollout_id: str) -> Submitted:
        existing = self.store.load(rollout_id).state
        same = (existing.app, existing.namespace, existing.policy, existing.spec.version)
        if same != (job.app, job.namespace, job.policy, job.version) or (
            existing.spec.baseline_selector,
            existing.spec.canary_selector,
        ) != (job.baseline, job.canary):
            # Say nothing of the other job: its namespace may be one the caller cannot see.
            raise InvalidJobError(
                f"idempotency key {job.idempotency_key!r} was already used for a different job; "
                "use a new key"
            )
        if existing.supersedes is not None:  # heal a crash between create and stand-down
            self.ensure_superseded(existing)
        return Submitted(rollout_id, False, existing.supersedes)

    def ensure_superseded(self, state: RolloutState) -> None:
        """Make sure the rollout ``state`` replaces knows it (idempotent)."""
        predecessor = state.supersedes
        if predecessor is None:
            return
        try:
            told = self.store.load(predecessor).state.superseded_by == state.id
        except NotFound:
            return
        if not told:
            self._stand_down(predecessor, state.id)

    def _stand_down(self, predecessor: str, successor: str) -> None:
        # A predecessor that is gone has nothing to stand down.
        with contextlib.suppress(RolloutNotFoundError):
            self.tell(predecessor, Superseded(successor))

    # -- commands and observations --------------------------------------------------------------
    def command(
        self,
        rollout_id: str,
        kind: Literal["abort", "promote", "pause", "resume", "retry"],
        actor: str,
        full: bool = False,
        reason: str = "",
    ) -> RolloutState:
        """Apply a person's command; a command that does not apply is recorded as ignored."""
        if kind not in COMMANDS:
            raise InvalidJobError(f"unknown command {kind!r}; known: {', '.join(COMMANDS)}")
        return self.tell(rollout_id, ManualCommand(kind, actor, full, reason))

    def tell(
        self, rollout_id: str, observation: Observation, events: Sequence[RecordEvent] = ()
    ) -> RolloutState:
        """load -> step -> save (compare-and-set, retried on Conflict) -> enqueue advance."""
        for _ in range(CAS_ATTEMPTS):
            try:
                state, revision = self.store.load(rollout_id)
            except NotFound as exc:
                raise RolloutNotFoundError(f"no rollout {rollout_id}") from exc
            new, actions = step(state, self.policy(state.policy), observation, self.clock())
            kept, outbox = split(actions)
            try:
                saved = self.store.save(new, revision, events=[*events, *kept], outbox=outbox)
            except Conflict:
                continue
            if outbox and self._on_outbox is not None:
                self._on_outbox()
            if new.next_due_at is not None:
                self._enqueue(rollout_id, saved)
            return new
        raise TemporaryError(f"rollout {rollout_id} keeps changing under us; try again", 1.0)

    # -- reading --------------------------------------------------------------------------------
    def get(self, rollout_id: str) -> tuple[RolloutState, builtins.list[AuditEvent]]:
        """The rollout and its whole audit trail, oldest first."""
        try:
            state = self.store.load(rollout_id).state
            trail: builtins.list[AuditEvent] = []
            while page := self.store.events(rollout_id, trail[-1].id if trail else None, 500):
                trail.extend(page)
        except NotFound as exc:
            raise RolloutNotFoundError(f"no rollout {rollout_id}") from exc
        return state, trail

    def list(self, namespace: str | None = None) -> builtins.list[RolloutState]:
        """Rollouts, newest first, in ``namespace`` or in all (the newest 100)."""
        return [stored.state for stored in self.store.list_rollouts(namespace)]


def split(actions: Sequence[Action]) -> tuple[list[RecordEvent], list[Action]]:
    """A step's events (for the audit trail) and its outbox items (alerts and hand-overs)."""
    events = [action for action in actions if isinstance(action, RecordEvent)]
    outbox: list[Action] = [action for action in actions if isinstance(action, Notify | Release)]
    return events, outbox
