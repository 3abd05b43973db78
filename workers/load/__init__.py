"""Synthetic load for a version users do not reach: the policy's ``load:`` on an analysis step.

``order.py`` (pure) says which load a rollout wants now, from its state and pinned policy alone;
``sender.py`` sends one bounded load; ``runner.py`` is the ``canarist load`` process that reads
the store every second, starts and stops senders, and writes what each sent to the audit trail.
Nothing is stored for it: "load wanted" is the rollout's own state, so a crash of any worker
changes nothing and a crash of the load process stops its load with it.
"""
