"""Realism: behaviours of the real services that break migrations, applied when a profile enables them.

Stub (interface only): the server calls `Realism.before(req)` once per API request, after the bearer
token was checked (so `req.user` and `req.client_id` are set) and before injected faults. A returned
Response is sent instead of calling the handler (a rate-limit or throttling answer in the API's shape).
"""

from __future__ import annotations

from driveferry.emulator.http import Request, Response


class Realism:
    """Off unless a profile turns behaviours on (`driveferry emulator serve --profile FILE`)."""

    def before(self, req: Request) -> Response | None:
        """An answer that replaces the handler's (rate limit, throttle), or None to go on."""
        return None
