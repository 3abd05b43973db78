"""Notifiers: tell people that a rollout aborted, failed, paused or was promoted.

The seam is ``base.Notifier`` (one method, ``post(notice)``); ``base.notifier_for(route)`` picks
the implementation for a configured route: ``alertmanager``, ``webhook`` or ``slack``, each a
sibling module; ``memory`` is the in-memory one for tests. Only the HTTP notifiers import httpx.
"""
