"""The local platform: versions of a service as local processes behind a real NGINX.

For ``canarist demo`` and for teams that deploy onto VMs behind NGINX. A version's "image" is a
command line with a ``{port}`` placeholder (``python -m canarist.demo.service --port {port}
--version v2``); each instance gets a free loopback port, runs in a session of its own (so it
outlives the worker that started it) with its output in a log file, and is healthy once
``GET /healthz`` answers 200. One NGINX master routes every app of the state directory. With
``analysis.baseline: fresh`` instances of the stable version start with the canary's (a side
``baseline``, scraped as ``track="baseline"``) and take the canary's share of requests.

All state lives in the directory (``CANARIST_LOCAL_DIR``, default
``~/.local/state/canarist/local``), never in memory, so any worker process, or one restarted
after a crash, adopts what another started and can answer ``readiness`` before its first
``apply``::

    apps/<namespace>.<app>.json   desired state, instances (PIDs, ports) and owning rollout
    locks/                        flock files: one per app, one for the router
    logs/<namespace>.<app>/       one log per instance (+ its exit code, + its PID)
    nginx/                        nginx.conf, pid, error log, temp files, router.json
    targets.json                  Prometheus file_sd: every serving instance with its labels

``apply`` records the desired state and converges as far as it can at once (it waits up to
``settle_seconds`` for instances it started to answer /healthz); ``readiness`` first compares
the record with everything the rollout requires (an abort saved by the API but not applied yet
reads NotYet, never "rolled back"), then converges further and compares the record with what
runs. ``heal`` restarts a router whose master died, whatever any rollout is doing; a rollout
whose analysis window began before such a restart is told so (NotYet), so it re-applies its
stage and judges only data from after the outage. The package's modules: platform.py holds
``LocalPlatform``, record.py the record, model.py the decisions, nginx.py the router and
process.py the processes.
Errors: an unregistered app or an NGINX refusal is a ``PlatformError``; a lock held too long
by another worker a ``TemporaryError``; an action of an older rollout than the app's owner is
refused (``StaleRolloutError``) and changes nothing.
"""

from workers.platforms.local.platform import DEFAULT_DIR, LocalApp, LocalInstance, LocalPlatform

__all__ = ["DEFAULT_DIR", "LocalApp", "LocalInstance", "LocalPlatform"]
