"""The GitOps watch's door into intake: ``Intake`` seen as the ``Door`` gitops.py asks through.

The watch lives with the Kubernetes platform (workers/platforms/kubernetes/gitops.py, the only
place the cluster client may be used), and the platforms do not import intake or the store
(pyproject's import contracts): so the watch asks a ``Door`` and this module, which sees both
sides, is that door. A job is validated by ``RolloutJob`` and submitted by ``Intake.submit`` as
any door's would be, with the same supersede and idempotency rules.
"""

from __future__ import annotations

from pydantic import ValidationError

from workers.errors import IntakeError, NotFound
from workers.intake import Intake, RolloutJob
from workers.platforms.kubernetes.gitops import Latest, Started
from workers.platforms.kubernetes.opt_in import CanaryRequest, Refusal
from workers.state import Phase


class IntakeDoor:
    """gitops.Door over one Intake."""

    def __init__(self, intake: Intake) -> None:
        self.intake = intake

    def latest(self, app: str, namespace: str) -> Latest | None:
        rollout_id = self.intake.store.latest_for(app, namespace)
        if rollout_id is None:
            return None
        try:
            state = self.intake.store.load(rollout_id).state
        except NotFound:
            return None
        return Latest(
            id=state.id,
            version=state.spec.version,
            images=dict(state.spec.images),
            phase=str(state.phase),
            ended_badly=state.phase in (Phase.ABORTED, Phase.FAILED),
        )

    def version_label(self, policy: str) -> str | Refusal:
        try:
            return self.intake.policy(policy).traffic.version_label
        except IntakeError as exc:  # no such policy, or an invalid file (named, with its line)
            return Refusal("CanaryPolicyInvalid", str(exc))

    def submit(self, request: CanaryRequest, actor: str) -> Started | Refusal:
        try:
            job = RolloutJob.model_validate(vars(request))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, error['loc'])) or 'job'}: {error['msg']}"
                for error in exc.errors(include_input=False, include_url=False)
            )
            return Refusal("CanaryRefused", f"the job this Deployment asks for: {problems}")
        try:
            submitted = self.intake.submit(job, actor)
        except IntakeError as exc:
            return Refusal("CanaryRefused", str(exc))
        return Started(submitted.rollout_id, submitted.created, submitted.superseded)
