"""The realism hook: what the server asks before each API handler, and the wiring into the models.

`Realism.before(req)` runs once per API request, after the bearer token was checked (`req.user`,
`req.client_id` set on authenticated routes) and before injected faults. It records the caller for the
models (state.CALLER), waits `latency_ms` of wall time if set (holding no lock), then answers for the
handler when a limit says so:

- Drive: per-user token buckets (reads, writes); a refusal is 403 (or 429) with reason
  `userRateLimitExceeded` / `rateLimitExceeded`, domain usageLimits, and no Retry-After: Google sends
  none and clients use truncated exponential backoff (api-notes §18, 5.2;
  developers.google.com/drive/api/guides/limits);
- Graph: per-user buckets and periodic episodes; a refusal starts an episode of the next configured
  length, and every call of that user in it is 429 activityLimitReached/throttledRequest (or 503
  serviceNotAvailable) with `Retry-After` = the seconds left, as a number or an HTTP-date (RFC 9110
  §10.2.3) in emulated time (api-notes §18, 12.2; Microsoft Q&A 648796: 41, 120, 315 s);
- storms (`storm(api, duration_s)`): every call of the API gets its throttle answer, pre-authenticated
  upload and download URLs included.

Rate limits count only calls made by a user (a bearer token): upload and download URLs belong to a
session already admitted. A Graph `$batch` is charged per sub-request (graph/batch.py asks `before` for
each), not for its envelope. Model rules (search lag, private appProperties, SharePoint rewrites, fragment
404s, fileSize) are pushed into the Drive and Graph models when the emulator is bound and whenever the
settings change. Every behaviour that fires is counted under counters["realism"].
"""

from __future__ import annotations

import json
import math
import threading
import time
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from driveferry.emulator.drive.errors import DriveError
from driveferry.emulator.drive.models import DriveModel
from driveferry.emulator.graph.errors import graph_response
from driveferry.emulator.graph.models import GraphModel
from driveferry.emulator.http import Request, Response
from driveferry.emulator.identity_google import CLIENT_ID as EMULATOR_GOOGLE_CLIENT
from driveferry.emulator.realism.limits import Buckets, Windows
from driveferry.emulator.realism.settings import Settings
from driveferry.emulator.state import CALLER, Caller, Clock

if TYPE_CHECKING:
    from driveferry.emulator.server import Emulator

APIS = ("drive", "graph")
# Google's documented texts (developers.google.com/drive/api/guides/limits; api-notes 5.2). The lower-case
# "User rate limit exceeded." is the daily upload cap's text (drive/errors.py), which clients stop on.
DRIVE_MESSAGES = {"userRateLimitExceeded": "User Rate Limit Exceeded", "rateLimitExceeded": "Rate Limit Exceeded"}


class Realism:
    """Realism settings plus their runtime state (buckets, episodes, storms); off unless a profile says."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self._emu: Emulator | None = None
        self._clock = Clock()
        self._lock = threading.Lock()
        self._buckets = Buckets(self._now)
        self._episodes = Windows(self._now)  # key "graph:<user>"
        self._storms = Windows(self._now)  # key: api
        self._cycle: dict[str, int] = {}  # next reason / Retry-After / form index, per kind
        self._calls: dict[str, int] = {}  # Graph requests per user (every_requests episodes)
        self._local_counts: dict[str, int] = {}  # before binding (no emulator counters yet)
        self._wired = False  # model rules pushed (the models register after the control routes bind us)

    @classmethod
    def load(cls, path: Path | str) -> Realism:
        """A Realism from a TOML profile (FileNotFoundError; ValueError for bad TOML or values)."""
        return cls(Settings.load(Path(path)))

    # --- wiring ------------------------------------------------------------------------------------------

    def bind(self, emu: Emulator) -> None:
        """Attach to an emulator (its clock, counters, models); the control routes call this."""
        self._emu = emu
        self._clock = emu.state.clock
        emu.state.set_clock_scale(self.settings.clock_scale)
        self._wire()

    def _wire(self) -> None:
        """Push the model rules into the Drive and Graph models (they may register after binding)."""
        if self._emu is None:
            return
        for module in self._emu.modules:
            model = getattr(module, "model", None)
            if isinstance(model, DriveModel):
                model.rules, model.on_event = self.settings.drive.rules(), self.count
                self._wired = True
            elif isinstance(model, GraphModel):
                model.rules, model.on_event = self.settings.graph.rules(), self.count
                self._wired = True

    def replace(self, settings: Settings) -> None:
        """Use new settings from now on (buckets start full again; episodes and storms go on)."""
        with self._lock:
            self.settings = settings
            self._buckets.clear()
        if self._emu is not None:
            self._emu.state.set_clock_scale(settings.clock_scale)
        self._wire()

    def _now(self) -> float:
        return self._clock.timestamp()

    # --- counters and control ------------------------------------------------------------------------

    def count(self, name: str) -> None:
        if self._emu is not None:
            self._emu.state.counters.add("realism", name)
        else:
            with self._lock:
                self._local_counts[name] = self._local_counts.get(name, 0) + 1

    def counters(self) -> dict[str, int]:
        if self._emu is not None:
            return dict(self._emu.state.counters.snapshot()["realism"])
        with self._lock:
            return dict(self._local_counts)

    def storm(self, api: str, duration_s: float) -> dict[str, float]:
        """Refuse every call of `api` ("drive", "graph" or "*") for `duration_s` emulated seconds (0 ends it)."""
        for name in APIS if api == "*" else (api,):
            if name not in APIS:
                raise ValueError(f"api must be one of {', '.join(APIS)} or *")
            self._storms.start(name, duration_s)
            if duration_s > 0:
                self.count(f"{name}.storms")
        return self._storms.open_windows()

    def describe(self) -> dict[str, Any]:
        """What `GET /_emulator/realism` answers: settings, counters, open storms and episodes."""
        if not self._wired:
            self._wire()
        return {"settings": self.settings.to_dict(), "counters": self.counters(),
                "storms": self._storms.open_windows(), "episodes": self._episodes.open_windows(),
                "clock": {"now": self._clock.now().isoformat(), "scale": self._clock.scale}}

    def time_scale(self) -> dict[str, float]:
        """{"time_scale": k} for every credentials section when time is scaled (k != 1), else {}."""
        k = self.settings.clock_scale
        return {"time_scale": k} if k != 1 else {}

    # --- the hook ------------------------------------------------------------------------------------

    def before(self, req: Request) -> Response | None:
        """An answer that replaces the handler's (rate limit, throttle, storm), or None to go on."""
        if not self._wired:
            self._wire()
        client = req.client_id if req.client_id != EMULATOR_GOOGLE_CLIENT else None
        if req.route == "drive.upload.chunk":  # the session URI carries no token: act for the app that opened it
            client = self._session_client(req.arg("upload_id") or "")
        CALLER.set(Caller(req.route, req.user, client))
        # in this request's thread, holding no lock: others go on meanwhile. A `$batch` sub-request has
        # no round trip of its own: the batch paid it ("combining multiple requests into one HTTP call
        # ... can significantly reduce network latency", learn.microsoft.com/en-us/graph/json-batching)
        if self.settings.latency_ms > 0 and not req.in_batch:
            self.count("latency.round_trips")
            time.sleep(self.settings.latency_ms / 1000)
        api = req.route.split(".", 1)[0]
        if api not in APIS or req.route == "graph.batch":  # a batch's sub-requests are charged one by one
            return None
        write = req.method not in ("GET", "HEAD")
        if api == "drive":
            return self._drive(req.user, write)
        return self._graph(req.user, write)

    def _session_client(self, upload_id: str) -> str | None:
        """The OAuth client that opened a Drive resumable session (drive/media.py records it in params)."""
        if self._emu is None or not self.settings.drive.private_app_properties:
            return None
        rows = self._emu.state.query("SELECT params FROM drive_sessions WHERE upload_id=?", (upload_id,))
        client = json.loads(rows[0]["params"]).get("client") if rows else None
        return client if isinstance(client, str) else None

    def _drive(self, user: str | None, write: bool) -> Response | None:
        s = self.settings.drive
        if self._storms.remaining("drive") > 0:
            self.count("drive.storm_rejected")
            return DriveError(s.status, "rateLimitExceeded", DRIVE_MESSAGES["rateLimitExceeded"]).response()
        if user is None or self._buckets.take("drive", user, write, s.rate_limit):
            return None
        self.count("drive.rate_limited")
        reason = s.reasons[self._next("drive.reason", len(s.reasons))]
        return DriveError(s.status, reason, DRIVE_MESSAGES[reason]).response()

    def _graph(self, user: str | None, write: bool) -> Response | None:
        s = self.settings.graph
        storm = self._storms.remaining("graph")
        if storm > 0:
            self.count("graph.storm_rejected")
            return self._throttled(storm, "seconds")
        if user is None:
            return None
        key = f"graph:{user}"
        left = self._episodes.remaining(key)
        if left > 0:
            return self._throttled(left, self._form(False))
        with self._lock:
            self._calls[user] = n = self._calls.get(user, 0) + 1
        every = s.throttle.every_requests
        tripped = not self._buckets.take("graph", user, write, s.rate_limit)
        if not tripped and not (every and n % every == 0):
            return None
        self.count("graph.rate_limited" if tripped else "graph.episodes_scheduled")
        seconds = s.throttle.retry_after_s[self._next("graph.retry_after", len(s.throttle.retry_after_s))]
        self._episodes.start(key, seconds)
        return self._throttled(seconds, self._form(True))

    def _form(self, new_episode: bool) -> str:
        form = self.settings.graph.throttle.retry_after_form
        if form != "alternate":
            return form
        n = self._next("graph.form", 2) if new_episode else (self._cycle.get("graph.form", 1) - 1) % 2
        return ("seconds", "http-date")[n]

    def _throttled(self, seconds: float, form: str) -> Response:
        """Graph's throttle answer with a Retry-After of `seconds` (emulated), in `form`."""
        self.count("graph.throttled")
        t = self.settings.graph.throttle
        whole = max(1, math.ceil(seconds - 1e-6))
        if t.status == 503:
            resp = graph_response(503, "serviceNotAvailable", "The service is temporarily unavailable.",
                                  "throttledRequest")
        else:
            resp = graph_response(429, "activityLimitReached", "The request has been throttled", "throttledRequest")
        if form == "http-date":
            at = datetime.fromtimestamp(self._now() + whole, UTC)
            resp.headers.append(("Retry-After", format_datetime(at, usegmt=True)))
            self.count("graph.retry_after_http_date")
        else:
            resp.headers.append(("Retry-After", str(whole)))
        return resp

    def _next(self, kind: str, n: int) -> int:
        with self._lock:
            i = self._cycle.get(kind, 0)
            self._cycle[kind] = i + 1
        return i % n
