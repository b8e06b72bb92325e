"""The control endpoint (`/_emulator/...`): counters, faults and the clock, for tests and the demo.

No authentication: the emulator binds to loopback. API modules add their own control routes under
`/_emulator/drive/...` and `/_emulator/graph/...` (corrupt a stored file, set a quota, ...).

    GET  /_emulator/counters           -> {"requests": {...}, "bytes_in": {...}, ...}
    POST /_emulator/counters/reset
    GET  /_emulator/faults             -> the active plan with per-rule seen/fired counts
    PUT  /_emulator/faults             <- {"seed": 1, "bandwidth_bps": 0, "rules": [{...}]}
    GET  /_emulator/clock              -> {"now": "...", "offset_s": 0}
    POST /_emulator/clock              <- {"advance_s": 86400}
    GET|PUT /_emulator/realism, POST /_emulator/realism/storm   the realism profile (realism/control.py)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from driveferry.emulator.faults import FaultPlan
from driveferry.emulator.http import Request, Response, Router, WireError
from driveferry.typedconfig import shown

if TYPE_CHECKING:
    from driveferry.emulator.server import Emulator


_MAX_ADVANCE_S = 100 * 365 * 86400.0


def control_errors(status: int, code: str, message: str) -> Response:
    return Response.json({"error": {"code": code, "message": message}}, status)


def register_control(router: Router, emu: Emulator) -> None:
    def counters(req: Request) -> Response:
        return Response.json(emu.state.counters.snapshot())

    def reset_counters(req: Request) -> Response:
        emu.state.counters.reset()
        return Response.json(emu.state.counters.snapshot())

    def get_faults(req: Request) -> Response:
        return Response.json(emu.faults.to_dict())

    def put_faults(req: Request) -> Response:
        try:
            plan = FaultPlan.from_dict(_json(req))
        except (TypeError, ValueError) as exc:
            raise WireError(control_errors(400, "badRequest", f"bad fault plan: {exc}")) from exc
        emu.faults = plan
        return Response.json(plan.to_dict())

    def get_clock(req: Request) -> Response:
        return Response.json({"now": emu.state.clock.now().isoformat(), "offset_s": emu.state.clock.offset_s})

    def post_clock(req: Request) -> Response:
        advance = _json(req).get("advance_s", 0)
        # bounded: an emulated clock past datetime's range would break every later request
        if isinstance(advance, bool) or not isinstance(advance, int | float) or not abs(advance) <= _MAX_ADVANCE_S:
            raise WireError(control_errors(400, "badRequest", f"advance_s: expected a number of seconds within "
                                                              f"±{_MAX_ADVANCE_S:.0f}, got {shown(advance)}"))
        now = emu.state.advance_clock(float(advance))
        return Response.json({"now": now.isoformat(), "offset_s": emu.state.clock.offset_s})

    from driveferry.emulator.realism.control import register_realism_control
    register_realism_control(router, emu)  # /_emulator/realism...

    p = "/_emulator"
    router.add("control.counters", "GET", p + "/counters", counters, control_errors, auth=False)
    router.add("control.counters.reset", "POST", p + "/counters/reset", reset_counters, control_errors, auth=False)
    router.add("control.faults.get", "GET", p + "/faults", get_faults, control_errors, auth=False)
    router.add("control.faults.put", "PUT", p + "/faults", put_faults, control_errors, auth=False)
    router.add("control.clock.get", "GET", p + "/clock", get_clock, control_errors, auth=False)
    router.add("control.clock.post", "POST", p + "/clock", post_clock, control_errors, auth=False)


def _json(req: Request) -> dict[str, Any]:
    try:
        data = req.json()
    except ValueError as exc:  # UnicodeDecodeError is a ValueError
        raise WireError(control_errors(400, "badRequest", f"malformed JSON: {exc}")) from exc
    if not isinstance(data, dict):
        raise WireError(control_errors(400, "badRequest", "expected a JSON object"))
    return data
