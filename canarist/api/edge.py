"""What the API answers before any route runs: oversized bodies, OPTIONS, and wrong methods.

A request body is read here, up to ``api.max_body_bytes``, before routing, authentication or
parsing. A larger one is a 413 at once, whether it announced its length (``Content-Length``) or
streamed it (chunked, with no length): no route ever parses, and no error ever echoes, more than
the limit. The body read is handed on unchanged, so routes read it as usual. Reading before
authenticating is deliberate: an unauthenticated caller can make the API hold at most the limit,
and it learns only the limit.

``OPTIONS`` on a path answers 204 with ``Allow`` naming every method of every route at that path,
and a method none of them takes is a 405 with the same list: Starlette's router names only the
methods of the first route whose path matches.

The matching route is put in the scope, as the router would, so that these answers are counted
under the route's template in the metrics (telemetry.py), never under a raw path.
"""

from __future__ import annotations

from fastapi.routing import iter_route_contexts
from starlette.datastructures import Headers
from starlette.routing import BaseRoute, Match, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from canarist.api.handlers import error_response


class Edge:
    """ASGI middleware: the body limit, ``OPTIONS`` and the ``Allow`` list (module docstring)."""

    def __init__(self, app: ASGIApp, router: Router, max_body_bytes: int) -> None:
        self.app, self.router, self.max_body_bytes = app, router, max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        routes = self._routes_at(scope)
        if routes:
            scope["route"] = routes[0]
            allowed = sorted({m for route in routes for m in getattr(route, "methods", ())})
            allow = ", ".join([*allowed, "OPTIONS"])
            if scope["method"] == "OPTIONS":
                await send({"type": "http.response.start", "status": 204, "headers": _allow(allow)})
                await send({"type": "http.response.body", "body": b""})
                return
            if scope["method"] not in allowed:
                detail = f"{scope['method']} is not allowed here; allowed: {allow}"
                response = error_response(
                    405, "method_not_allowed", detail, headers={"Allow": allow}
                )
                await response(scope, receive, send)
                return
        body = await self._body(scope, receive, send)
        if body is None:
            return
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if delivered:
                return await receive()  # after the body: the disconnect, when it comes
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    def _routes_at(self, scope: Scope) -> list[BaseRoute]:
        """The app's routes whose path matches, whatever their methods (included ones too)."""
        routes = [context.original_route for context in iter_route_contexts(self.router.routes)]
        return [route for route in routes if route.matches(scope)[0] is not Match.NONE]

    async def _body(self, scope: Scope, receive: Receive, send: Send) -> bytes | None:
        """The whole body; None when it was too large (answered here) or the client left."""
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._too_large(scope, receive, send)
            return None
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await self._too_large(scope, receive, send)
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The rest of the body is never read, so the connection cannot carry another request.
        detail = f"the request body is larger than this API's limit of {self.max_body_bytes} bytes"
        response = error_response(413, "payload_too_large", detail, headers={"Connection": "close"})
        await response(scope, receive, send)


def _allow(methods: str) -> list[tuple[bytes, bytes]]:
    return [(b"allow", methods.encode("latin-1"))]
