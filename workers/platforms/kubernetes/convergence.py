"""The ordered steps that bring the cluster to what a rollout wants, shared by apply and readiness.

One list of steps per mode, walked in order; each step looks at the world and, when the call may
write, makes the change, then says whether it is done. The walk stops at the first step that is
not: so ``apply`` (write=True) moves the cluster as far as it safely can, and ``readiness``
(write=False) reports the first thing still awaited, or Ready. Because the engine re-asserts what
it awaits at every wake-up, a step that must wait (pods becoming available) is simply taken
further at the next apply: order is kept without any memory beyond the objects themselves.

    progress   canary Service (and the fresh baseline's); canary at its size (crash-looping
               pods: Failed), the fresh baseline at the same size while it takes the canary's
               share (fresh_baseline.py); blue-green's active Service; the router's split; the
               stable's size (rolling, blue-green)
    promote    canary at full size; all traffic to it (blue-green: the switch); the stable
               Deployment takes the new template at full size and rolls out (past its deadline:
               Failed); the stable Service selects the new version; the router reset; the
               canary at zero. The order is Flagger's: users never hit a version being replaced.
               Once the stable runs the new version the canary's part is over, so a re-assert
               never scales the canary back up or sends traffic back to it.
    rollback   the stable back as the baseline found it (only if the rollout changed it: a
               canary abort never touches it), paused again if it was found paused (an abort
               during a GitOps promotion, held.py); Services back on the stable version; the router
               reset, verified; only then the canary at zero
    both end with the fresh baseline at zero, once the router sends it nothing
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from analyzer.policy.traffic import Router
from workers.platforms.base import Failed, NotYet, Readiness, Ready, baseline_share
from workers.platforms.kubernetes import fresh_baseline, held, services, workloads
from workers.platforms.kubernetes.api import DEPLOYMENTS, Kube, Obj
from workers.platforms.kubernetes.desired import Baseline, Desired
from workers.platforms.kubernetes.router import TrafficRouter
from workers.platforms.kubernetes.target import Target


@dataclass
class World:
    """What one call works with; ``stable`` and ``canary`` are re-read after each write."""

    kube: Kube
    target: Target
    router: TrafficRouter
    stable: Obj
    canary: Obj
    desired: Desired
    baseline: Baseline
    autoscaler: str | None = None  # an HPA scales the stable: its size is never written
    fresh: Obj | None = None  # the fresh baseline's Deployment (fresh_baseline.py), when it runs

    @property
    def routed(self) -> bool:
        """A request router splits traffic (not blue-green's Services, not replica counts)."""
        return not self.target.blue_green and self.router.name != Router.REPLICAS

    def reread(self) -> None:
        target = self.target
        stable = self.kube.get(DEPLOYMENTS, target.namespace, target.app)
        self.stable = held.serving_view(self.kube, stable) if stable else self.stable
        self.canary = self.kube.get(DEPLOYMENTS, target.namespace, target.canary) or self.canary
        if self.fresh is not None:  # only ever ours (fresh_baseline.read)
            self.fresh = self.kube.get(DEPLOYMENTS, target.namespace, target.baseline)


Step = Callable[[World, bool], Readiness | None]


def converge(world: World, write: bool) -> Readiness:
    """Walk the mode's steps; the first one not done answers, else Ready."""
    for step in STEPS[world.desired.mode](world):
        answer = step(world, write)
        if answer is not None:
            return answer
    return Ready()


def _waiting(answer: Readiness) -> Readiness | None:
    return None if isinstance(answer, Ready) else answer


# -- steps -------------------------------------------------------------------------------------
def canary_service(world: World, write: bool) -> Readiness | None:
    target = world.target
    if not target.needs_services:
        return None
    stable_service = services.read_stable_service(world.kube, target)
    if write:
        services.ensure_canary_service(world.kube, target, stable_service)
    return services.selects(world.kube, target, stable_service)


def fresh_service(world: World, write: bool) -> Readiness | None:
    """A request router's Service for the fresh baseline (replica counts need none)."""
    target = world.target
    if not (target.fresh_baseline and target.needs_services):
        return None
    stable_service = services.read_stable_service(world.kube, target)
    if write:
        fresh_baseline.ensure_service(world.kube, target, stable_service)
    return fresh_baseline.service_ready(world.kube, target, stable_service)


def fresh_at(size: Callable[[World], int]) -> Step:
    """The fresh baseline's Deployment at ``size`` (absent is fine at 0: nothing to remove)."""

    def step(world: World, write: bool) -> Readiness | None:
        target = world.target
        if not target.fresh_baseline:
            return None
        replicas, found = size(world), world.fresh
        if write and found is not None and found.get("spec", {}).get("replicas") != replicas:
            workloads.scale(world.kube, target, target.baseline, replicas, owned=True)
            world.reread()
            found = world.fresh
        if found is None:
            why = f"Deployment {target.baseline} (the fresh baseline) is not created yet"
            return None if replicas == 0 else NotYet(why)
        return _waiting(workloads.rolled_out(found, replicas, deadline_fails=replicas > 0))

    return step


def canary_at(size: Callable[[World], int], healthy: bool = True) -> Step:
    """The canary Deployment at ``size``; with ``healthy``, stuck pods and its deadline fail."""

    def step(world: World, write: bool) -> Readiness | None:
        replicas = size(world)
        if write and world.canary.get("spec", {}).get("replicas") != replicas:
            workloads.scale(world.kube, world.target, world.target.canary, replicas, owned=True)
            world.reread()
        if healthy and replicas > 0:
            stuck = workloads.stuck_pods(world.kube, world.target, world.canary)
            if stuck is not None:
                return Failed(f"the canary cannot run: {stuck}")
        return _waiting(workloads.rolled_out(world.canary, replicas, deadline_fails=healthy))

    return step


def pinned_to(
    version: Callable[[World], str], when: Callable[[World], bool], missing_ok: bool = False
) -> Step:
    """The stable (blue-green: active) Service selects ``version`` only."""

    def step(world: World, write: bool) -> Readiness | None:
        if not when(world):
            return None
        target, wanted = world.target, version(world)
        name = target.traffic.stable_service
        absent = services.pinned(world.kube, target, name, wanted, missing_ok)
        if write and absent is not None:
            services.pin(world.kube, target, name, wanted)
        return services.pinned(world.kube, target, name, wanted, missing_ok)

    return step


def routed(weight: Callable[[World], int], with_match: bool = True) -> Step:
    """The router sends ``weight`` percent (and the desired audience) to the canary."""

    def step(world: World, write: bool) -> Readiness | None:
        if not world.routed:
            return None
        share, match = weight(world), world.desired.match if with_match else ()
        if write and (share or match):
            world.router.set_traffic(world.target, share, match)
        elif write:
            world.router.reset(world.target)
        return _waiting(world.router.verify(world.target, share, match))

    return step


def stable_at(size: Callable[[World], int]) -> Step:
    """The stable's size, when the strategy moves it (a canary never touches the stable)."""

    def step(world: World, write: bool) -> Readiness | None:
        if not world.desired.stable_touched or world.autoscaler is not None:
            return None  # with an HPA, retiring the old side leaves its size to the HPA
        replicas = size(world)
        if write and world.stable.get("spec", {}).get("replicas", 1) != replicas:
            workloads.scale(world.kube, world.target, world.target.app, replicas, owned=False)
            world.reread()
        return _waiting(workloads.rolled_out(world.stable, replicas))

    return step


def stable_templated(version: Callable[[World], str], promoting: bool) -> Step:
    """The stable Deployment runs ``version`` (the new one, or the baseline's) at full size."""

    def step(world: World, write: bool) -> Readiness | None:
        target, baseline = world.target, world.baseline
        images = _new_images(world) if promoting else baseline.images
        wanted = version(world)
        if promoting and baseline.paused:
            return _released(world, wanted, images, write)
        done = workloads.templated(world.stable, target, wanted, images)
        replicas = None if world.autoscaler else baseline.replicas  # None: the HPA's to set
        size = replicas is None or world.stable.get("spec", {}).get("replicas", 1) == replicas
        if write and not (done and size):
            # A Deployment holding Git's new template whose pods run the baseline: only its size.
            if done and replicas is not None and held.held_template(world.stable) is not None:
                workloads.scale(world.kube, target, target.app, replicas, owned=False)
            else:
                workloads.retemplate_stable(world.kube, target, wanted, images, replicas)
            world.reread()
            done, size = workloads.templated(world.stable, target, wanted, images), True
        if not done:
            return NotYet(f"the stable Deployment does not run {wanted or 'the baseline'} yet")
        if not promoting and not world.desired.stable_touched:
            return None  # an abort never waits on a stable it did not change
        wanted_size = (
            world.stable.get("spec", {}).get("replicas", 1) if replicas is None else replicas
        )
        return _waiting(workloads.rolled_out(world.stable, wanted_size, promoting))

    return step


def held_again(world: World, write: bool) -> Readiness | None:
    """A Deployment the rollout found paused ends a rollback paused (held.py's ``hold``)."""
    if not world.baseline.paused:
        return None
    spec = world.stable.get("spec", {})
    replicas = spec.get("replicas", 1) if world.autoscaler else world.baseline.replicas
    rolled = workloads.rolled_out(world.stable, replicas)
    answer = held.hold(world.kube, world.stable, rolled, write)
    if write and answer is not None:
        world.reread()
        if held.paused(world.stable):
            return None
    return answer


def _released(world: World, version: str, images: dict[str, str], write: bool) -> Readiness | None:
    """A Deployment found paused is promoted by releasing the template it holds (held.py)."""
    target, replicas = world.target, world.baseline.replicas
    if write and world.stable.get("spec", {}).get("replicas", 1) != replicas:  # rolling's batches
        workloads.scale(world.kube, target, target.app, replicas, owned=False)
        world.reread()
    view = world.stable
    holding = held.held_template(view)
    own = {"spec": {"template": holding}} if holding is not None else view
    answer = held.release(
        world.kube,
        view,
        runs_new=workloads.templated(view, target, version, images),
        holds_new=workloads.templated(own, target, version, images),
        rolled=workloads.rolled_out(view, replicas),
        write=write,
    )
    if write and answer is not None:
        world.reread()
    return answer


def _new(world: World) -> str:
    return world.target.version


def _old(world: World) -> str:
    return world.baseline.version


def _new_images(world: World) -> dict[str, str]:
    return workloads.new_images(world.stable, world.target)


def _full(world: World) -> int:
    return world.baseline.replicas


def _none(world: World) -> int:
    return 0


def _blue_green(world: World) -> bool:
    return world.target.blue_green


def _services(world: World) -> bool:
    return world.target.needs_services


def _active_version(world: World) -> str:
    return _new(world) if world.desired.active == "canary" else _old(world)


def _fresh_size(world: World) -> int:
    """The fresh baseline runs the canary's size while it takes the canary's share."""
    desired = world.desired
    return desired.canary_replicas if baseline_share(desired.weight, True) else 0


def _progress(world: World) -> list[Step]:
    return [
        canary_service,
        fresh_service,
        canary_at(lambda w: w.desired.canary_replicas),
        fresh_at(_fresh_size),
        pinned_to(_active_version, _blue_green),
        pinned_to(_old, lambda w: w.routed),
        routed(lambda w: w.desired.weight),
        stable_at(lambda w: w.desired.stable_replicas),
    ]


def _promote(world: World) -> list[Step]:
    if workloads.templated(world.stable, world.target, _new(world), _new_images(world)):
        before: list[Step] = []  # the stable runs the new version: the canary's part is over
    else:
        before = [
            canary_at(_full),
            pinned_to(_new, _blue_green),
            routed(lambda w: 100, with_match=False),
        ]
    return [
        canary_service,
        *before,
        stable_templated(_new, promoting=True),
        pinned_to(_new, _services),
        routed(_none, with_match=False),
        canary_at(_none, healthy=False),
        fresh_at(_none),
    ]


def _rollback(world: World) -> list[Step]:
    return [
        stable_templated(_old, promoting=False),
        held_again,
        pinned_to(_old, _services, missing_ok=True),
        routed(_none, with_match=False),
        canary_at(_none, healthy=False),
        fresh_at(_none),
    ]


STEPS: dict[str, Callable[[World], list[Step]]] = {
    "progress": _progress,
    "promote": _promote,
    "rollback": _rollback,
}
