"""The dashboard: pages for people under ``/ui/``, served by the API process (``canarist api``).

Sign in once with an API token (sessions.py), then: the rollouts list and each rollout's page
(the report, canarist/report/, with its actions), kept live by a small same-origin script
(static/dashboard.js) polling ``/ui/live/...``; the actions are CSRF-protected forms that take
the API's own path, ``Intake.command`` (routes.py). ``create_app`` mounts it.

    routes.py    the routes, sign-in, the CSRF and role checks, the actions
    live.py      what a page shows for a signed-in person (list rows, the rollout's parts)
    views.py     the HTML
    actions.py   which commands a person may take in which phase
    sessions.py  sessions in the store (Redis), the cookie
    static.py    the script and stylesheets, served from the package
"""
