"""Control routes of the realism profile (no authentication, like all of `/_emulator`).

    GET  /_emulator/realism         -> {"settings": {...}, "counters": {"drive.rate_limited": 12, ...},
                                        "storms": {"graph": 12.5}, "episodes": {...}, "clock": {...}}
    PUT  /_emulator/realism         <- settings, the same shape as the TOML profile (missing keys: off)
    POST /_emulator/realism/storm   <- {"api": "drive"|"graph"|"*", "duration_s": N}: every call of the API
                                       is throttled for N emulated seconds from now (0 ends the storm)

Bad JSON or values answer 400 {"error": {"code": "badRequest", "message": ...}}, never 500.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from driveferry.emulator.http import Request, Response, Router, WireError
from driveferry.emulator.realism.settings import Settings

if TYPE_CHECKING:
    from driveferry.emulator.server import Emulator


def _errors(status: int, code: str, message: str) -> Response:
    return Response.json({"error": {"code": code, "message": message}}, status)


def _bad(message: str) -> WireError:
    return WireError(_errors(400, "badRequest", message))


def _body(req: Request) -> Any:
    try:
        return json.loads(req.body() or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise _bad(f"malformed JSON: {exc}") from exc


def register_realism_control(router: Router, emu: Emulator) -> None:
    """Bind the emulator's Realism to it and add the /_emulator/realism routes."""
    emu.realism.bind(emu)

    def get(req: Request) -> Response:
        return Response.json(emu.realism.describe())

    def put(req: Request) -> Response:
        try:
            settings = Settings.from_dict(_body(req))
        except ValueError as exc:
            raise _bad(f"bad realism settings: {exc}") from exc
        emu.realism.replace(settings)
        return Response.json(emu.realism.describe())

    def storm(req: Request) -> Response:
        body = _body(req)
        if not isinstance(body, dict):
            raise _bad("expected {\"api\": \"drive\"|\"graph\"|\"*\", \"duration_s\": N}")
        api, duration = body.get("api"), body.get("duration_s")
        if isinstance(duration, bool) or not isinstance(duration, int | float) or duration < 0:
            raise _bad("duration_s must be a non-negative number of seconds")
        if not isinstance(api, str):
            raise _bad("api must be \"drive\", \"graph\" or \"*\"")
        try:
            storms = emu.realism.storm(api, float(duration))
        except ValueError as exc:
            raise _bad(str(exc)) from exc
        return Response.json({"storms": storms})

    p = "/_emulator/realism"
    router.add("control.realism.get", "GET", p, get, _errors, auth=False)
    router.add("control.realism.put", "PUT", p, put, _errors, auth=False)
    router.add("control.realism.storm", "POST", p + "/storm", storm, _errors, auth=False)
