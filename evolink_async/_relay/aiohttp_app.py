"""The relay as an aiohttp application (``app.add_subapp("/progress/", relay.aiohttp_app())``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from .channels import SSE_HEADERS, parse_last_event_id

if TYPE_CHECKING:
    from .relay import ProgressRelay

__all__ = ["build_app"]


def build_app(relay: ProgressRelay) -> web.Application:
    async def serve(request: web.Request) -> web.StreamResponse:
        task_id = request.match_info["task_id"]
        if not relay.authorized(task_id, request.query.get("token")):
            return web.json_response({"error": "bad or expired token"}, status=403)
        if not relay.running:
            return web.json_response({"error": "the relay is not running (enter it with 'async with')"}, status=503)
        if relay.full:
            return web.json_response({"error": "too many viewers"}, status=503)
        last_id = parse_last_event_id(request.headers.get("Last-Event-ID") or request.query.get("lastEventId"))
        response = web.StreamResponse(status=200, headers=dict(SSE_HEADERS))
        await response.prepare(request)
        # A page that went away makes the next write (a frame or a heartbeat) fail, which ends this.
        # That is how every viewer but the patient ones leaves: not an error, so no traceback in the
        # app's log for each closed tab (aiohttp logs an exception a handler lets out).
        try:
            async with relay.viewer(task_id, last_event_id=last_id) as frames:
                async for frame in frames:
                    await response.write(frame)
            await response.write_eof()
        except ConnectionResetError:  # aiohttp's ClientConnectionResetError is one
            pass
        return response

    app = web.Application()
    app.router.add_get("/{task_id}", serve)
    return app
