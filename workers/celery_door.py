"""The Celery door into intake: ``canarist.submit_rollout(payload, actor="celery")``.

Its payload is a ``workers.intake.RolloutJob`` as JSON::

    {"app": "checkout", "namespace": "shop", "version": "v2", "policy": "default-canary",
     "baseline": "app='checkout',version='v1'", "canary": "app='checkout',version='v2'",
     "platform": "observe", "image": null, "args": {}, "idempotency_key": "ci-run-4711"}

    send_task("canarist.submit_rollout", args=[payload], kwargs={"actor": "ci"})

An invalid payload is logged and dropped (no retry can fix it); the result, if a result backend
is configured, is ``{"rollout_id", "created", "superseded"}`` or ``{"error"}``. Give an
idempotency key so that a retried send cannot start two rollouts: it names the rollout of that
job in that namespace for a day.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError

from analyzer.errors import CanaristError
from analyzer.policy.promql import shown
from workers.errors import InvalidJobError, TemporaryError
from workers.intake import Intake, RolloutJob
from workers.metrics import rollout_log, worker_log

ACTOR = re.compile(r"[\x21-\x7e]{1,128}")  # recorded in the audit trail: printable, no spaces
MAX_PROBLEMS = 5  # of a refused payload, named in the answer (the API's 422 does the same)


def submit(intake: Intake, payload: Any, actor: Any) -> dict[str, Any]:
    """The Celery door: validate ``payload`` as a RolloutJob and submit it.

    Every refusal (a bad field, a job its policy cannot run, a key used for another job, even a
    malformed actor) is logged and answered ``{"error": ...}``: no retry can fix it, so it must
    not raise. Only a store that is down raises (TemporaryError), for the task to retry.
    """
    log = worker_log()
    try:
        if not isinstance(actor, str) or not ACTOR.fullmatch(actor):
            raise InvalidJobError("actor: 1 to 128 printable ASCII characters without spaces")
        job = RolloutJob.model_validate(payload)
        submitted = intake.submit(job, actor)
    except TemporaryError:
        raise
    except (ValidationError, CanaristError) as exc:
        error = _refusal(exc)
        log.error("rollout job from %s refused: %s", shown(str(actor)), error)
        return {"error": error}
    rollout_log(submitted.rollout_id).info("submitted by %s via Celery", actor)
    return {
        "rollout_id": submitted.rollout_id,
        "created": submitted.created,
        "superseded": submitted.superseded,
    }


def _refusal(exc: ValidationError | CanaristError) -> str:
    """One short line naming each bad field (never the input itself, which may be huge)."""
    if not isinstance(exc, ValidationError):
        return str(exc)
    problems = [
        f"{'.'.join(map(str, error['loc'])) or 'job'}: "
        + str(error["msg"]).removeprefix("Value error, ")
        for error in exc.errors(include_input=False, include_url=False)
    ]
    more = len(problems) - MAX_PROBLEMS
    return (
        "invalid job: "
        + "; ".join(problems[:MAX_PROBLEMS])
        + (f"; and {more} more" if more > 0 else "")
    )
