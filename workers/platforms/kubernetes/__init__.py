"""The Kubernetes platform: Deployments, Services and a traffic router moved by a rollout's actions.

The job names the stable Deployment (``namespace``/``app``); Canarist runs the new version beside
it as ``<app>-canary`` (workloads.py), gives each version a Service when a request router or
blue-green needs one (services.py), splits requests with the policy's ``traffic.router``
(gateway_api.py, nginx_ingress.py, replicas.py) and, on promotion, gives the stable Deployment
the new template. Every call is declarative:

    apply(rollout, action)      fold the action into the rollout's Desired state, write it on the
                                canary Deployment (desired.py), then walk the ordered steps of
                                convergence.py as far as they safely go
    readiness(rollout, wants)   read Desired back; NotYet while folding ``wants`` into it
                                would change it (the rollout requires what was not applied),
                                else walk the same steps without writing: NotYet (what is
                                awaited), Failed (crash-looping pods, progress deadline, a
                                refusal) or Ready

With ``analysis.baseline: fresh`` the rollout also runs ``<app>-baseline`` beside the canary,
at its size and with its share of requests, and removes it at the end (fresh_baseline.py).

Nothing is kept in memory between calls: a restarted worker (a new instance) adopts the objects
it finds by name and by their ``app.kubernetes.io/managed-by: canarist`` label and carries on.
An Event on the stable Deployment records each transition (events.py); api.py is the only module
that calls the client, and permissions.py lists every call it can make.

``from_env()`` builds the platform from ``CANARIST_KUBECONFIG`` (a kubeconfig path), else the
in-cluster service account, else the default kubeconfig (~/.kube/config).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import replace

from kubernetes import client, config

from workers.actions import Match, PlatformAction, Promote, Rollback, SetTraffic
from workers.platforms.base import Failed, NotYet, PlatformError, Readiness, Ready
from workers.platforms.kubernetes import autoscaling, events, fresh_baseline, workloads
from workers.platforms.kubernetes.api import Kube, Obj
from workers.platforms.kubernetes.convergence import World, converge
from workers.platforms.kubernetes.desired import (
    BASELINE,
    DESIRED,
    Baseline,
    Desired,
    annotation,
    baseline_from_json,
    baseline_json,
)
from workers.platforms.kubernetes.router import TrafficRouter, router_for
from workers.platforms.kubernetes.target import Target
from workers.state import RolloutState

__all__ = ["KubernetesPlatform"]
KUBECONFIG_ENV = "CANARIST_KUBECONFIG"


class KubernetesPlatform:
    """Rollouts on Kubernetes; see the module docstring."""

    name = "kubernetes"

    def __init__(
        self, api_client: client.ApiClient, *, timeout: float = 10.0, budget: float = 1.0
    ) -> None:
        """``timeout``: seconds per request; ``budget``: seconds a call may spend retrying
        inline (api.py): past it the call is a TemporaryError and the task is requeued."""
        self.kube = Kube(api_client, timeout=timeout, budget=budget)

    @classmethod
    def from_env(cls) -> KubernetesPlatform:
        """The platform for this process's cluster credentials (see the module docstring)."""
        return cls(_api_client(os.environ.get(KUBECONFIG_ENV) or None))

    # -- the Platform seam --------------------------------------------------------------------
    def apply(self, rollout: RolloutState, action: PlatformAction) -> None:
        target = Target.of(rollout)
        router = router_for(target.traffic.router, self.kube)
        if isinstance(action, SetTraffic):
            _check(router, target, action.weight, action.match)  # refused before any write
        canary = workloads.read_canary(self.kube, target)
        recorded = Desired.from_json(annotation(canary, DESIRED))
        ours = recorded is not None and recorded.rollout == target.rollout
        if isinstance(action, Rollback | Promote) and (canary is None or not ours):
            if isinstance(action, Rollback):
                return  # nothing of this rollout reached the cluster: nothing to undo
            raise PlatformError(f"no canary of rollout {target.rollout} to promote")
        stable = workloads.read_stable(self.kube, target)
        autoscaler = autoscaling.autoscaler_of(self.kube, target)
        if not isinstance(action, Rollback):  # an abort always completes
            autoscaling.refuse_fighting(autoscaler, target)
        found = self._baseline(canary, ours, stable, target)
        baseline = autoscaling.sizing(found, stable, autoscaler)  # recorded: readiness sizes alike
        current = recorded if ours and recorded and recorded.attempt == target.attempt else None
        start = current or Desired(target.rollout, target.attempt, None, baseline.replicas)
        folded = start.folded(action, baseline, target.strategy, router, target.fresh_baseline)
        wish = replace(folded, token=target.token)
        fresh, progressing = None, wish.mode == "progress"
        if target.fresh_baseline:  # a name taken by someone else is refused before any write
            fresh = fresh_baseline.read(self.kube, target, refuse_foreign=progressing)
        metadata = target.stamp(wish.to_json(), owned=True)
        metadata["annotations"][BASELINE] = baseline_json(baseline)
        if isinstance(action, Rollback):  # undo only: never re-template what is rolled back
            canary = workloads.restamp(self.kube, target, target.canary, metadata)
        else:
            canary = workloads.ensure_canary(self.kube, target, stable, canary, metadata)
        if target.fresh_baseline and progressing:
            fresh = fresh_baseline.ensure(self.kube, target, stable, fresh, baseline)
        if not wish.same_wish(current):
            events.emit(self.kube, target, stable, action, wish)
        world = World(
            self.kube, target, router, stable, canary, wish, baseline, autoscaler, fresh=fresh
        )
        converge(world, write=True)

    def readiness(self, rollout: RolloutState, wants: Sequence[PlatformAction]) -> Readiness:
        target = Target.of(rollout)
        try:
            router = router_for(target.traffic.router, self.kube)
            canary = workloads.read_canary(self.kube, target)
            desired = Desired.from_json(annotation(canary, DESIRED))
            mine = canary is not None and desired is not None and desired.rollout == target.rollout
            rolling_back = any(isinstance(action, Rollback) for action in wants)
            if not mine and rolling_back:
                return Ready()  # nothing of this rollout reached the cluster
            stable = workloads.read_stable(self.kube, target)
            autoscaler = autoscaling.autoscaler_of(self.kube, target)
            if not rolling_back and not (mine and desired and desired.mode == "rollback"):
                autoscaling.refuse_fighting(autoscaler, target)  # an abort always completes
            if canary is None or desired is None or not mine:
                self._baseline(None, False, stable, target)  # a refusal shows as Failed
                workloads.new_images(stable, target)
                _check(router, target, 0, ())
                if target.fresh_baseline:
                    fresh_baseline.read(self.kube, target, refuse_foreign=True)
                return NotYet(f"{target.canary} is not created for {target.rollout} yet")
            baseline = self._baseline(canary, True, stable, target)
            behind = _unapplied(desired, wants, baseline, target, router)
            if behind is not None:
                return NotYet(behind)
            if desired.mode == "progress":  # a refusal fails the rollout, a rollback goes on
                _check(router, target, desired.weight, desired.match)
            fresh = None
            if target.fresh_baseline:
                progressing = desired.mode == "progress"
                fresh = fresh_baseline.read(self.kube, target, refuse_foreign=progressing)
            world = World(
                self.kube, target, router, stable, canary, desired, baseline, autoscaler, fresh
            )
            return converge(world, write=False)
        except PlatformError as exc:
            return Failed(str(exc))

    # -- helpers ------------------------------------------------------------------------------
    def _baseline(self, canary: Obj | None, ours: bool, stable: Obj, target: Target) -> Baseline:
        """The stable as this rollout first found it: recorded on the canary, else read now."""
        recorded = baseline_from_json(annotation(canary, BASELINE)) if ours else None
        return recorded or workloads.baseline_of(stable, target)


def _unapplied(
    desired: Desired,
    wants: Sequence[PlatformAction],
    baseline: Baseline,
    target: Target,
    router: TrafficRouter,
) -> str | None:
    """What ``wants`` would still change in the recorded wish (None: it is all recorded)."""
    if desired.attempt != target.attempt:
        return f"attempt {target.attempt} of {target.rollout} is not applied yet"
    expected = desired
    for action in wants:
        expected = expected.folded(action, baseline, target.strategy, router, target.fresh_baseline)
    if expected.same_wish(desired):
        return None
    have, want = desired.describe(), expected.describe()
    return f"{target.canary} records {have}; the rollout requires {want}"


def _check(router: TrafficRouter, target: Target, weight: int, match: tuple[Match, ...]) -> None:
    """The router can split as asked (blue-green switches Services and uses no router)."""
    if not target.blue_green:
        router.check(target, weight, match)


def api_client_from_env() -> client.ApiClient:
    """The client ``from_env`` uses (the GitOps watch shares its credentials' lookup)."""
    return _api_client(os.environ.get(KUBECONFIG_ENV) or None)


@functools.lru_cache(maxsize=4)
def _api_client(kubeconfig: str | None) -> client.ApiClient:
    """One client per process and kubeconfig: the registry builds a platform per call."""
    configuration = client.Configuration()
    try:
        if kubeconfig is not None:
            config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig, client_configuration=configuration
            )
        else:
            try:
                config.load_incluster_config(  # type: ignore[no-untyped-call]
                    client_configuration=configuration
                )
            except config.ConfigException:
                config.load_kube_config(  # type: ignore[no-untyped-call]
                    client_configuration=configuration
                )
    except (config.ConfigException, OSError) as exc:
        where = kubeconfig or "in-cluster service account or ~/.kube/config"
        raise PlatformError(
            f"no Kubernetes credentials ({where}): {exc}; set {KUBECONFIG_ENV}"
        ) from exc
    configuration.retries = False  # api.py retries, with a bounded budget
    return client.ApiClient(configuration)
