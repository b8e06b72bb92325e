"""Realism settings: frozen dataclasses, read from a TOML profile or the JSON of `PUT /_emulator/realism`.

Every behaviour is off by default (the emulator stays kind) and each can be set alone. The shape, with
the defaults (configs/emulator/real.toml has realistic values and their sources):

    clock_scale = 1.0                 # emulated time runs k times wall time
    latency_ms = 0.0                  # wall-clock delay added to every API request (a WAN round trip)

    [drive]
    private_app_properties = false    # appProperties visible only to the OAuth client that wrote them
    search_lag_new_s = 0.0            # files.list q misses a new item for this long (files.get sees it)
    search_lag_renamed_s = 0.0        # ... and a renamed one
    omit_sha256 = false               # files carry md5Checksum but no sha1/sha256Checksum (api-notes 2.1)
    status = 403                      # rate-limit answer: 403 (usual) or 429
    reasons = ["userRateLimitExceeded", "rateLimitExceeded"]   # cycled, one per answer

    [drive.rate_limit]                # token buckets per user: rate 0 = unlimited
    reads_per_s = 0.0
    read_burst = 0                    # bucket size; 0 = one second's worth (at least 1)
    writes_per_s = 0.0
    write_burst = 0

    [graph]
    sharepoint_rewrite_bytes = 0      # bytes a SharePoint library merges into uploaded Office files
    fragment_404_count = 0            # transient 404s for the first fragment PUTs of a session...
    fragment_404_window_s = 0.0       # ...sent within this long of its creation
    ignore_file_size = false          # createUploadSession's fileSize ignored (Business)

    [graph.rate_limit]                # as for Drive; tripping it starts a throttling episode
    [graph.throttle]
    status = 429                      # or 503 (serviceNotAvailable)
    retry_after_s = [41]              # one per episode, cycled (emulated seconds)
    retry_after_form = "seconds"      # "seconds" | "http-date" | "alternate" (per episode)
    every_requests = 0                # also start an episode after every N-th request of a user

Times are emulated seconds (see state.Clock). Bad values raise `ValueError` naming the setting.
"""

from __future__ import annotations

import typing
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, TypeVar

from driveferry.emulator.drive.records import DriveRules
from driveferry.emulator.graph.rules import OFFICE_EXTENSIONS, GraphRules
from driveferry.typedconfig import read_toml, shown

DRIVE_REASONS = ("userRateLimitExceeded", "rateLimitExceeded")
RETRY_AFTER_FORMS = ("seconds", "http-date", "alternate")


@dataclass(frozen=True)
class RateLimit:
    """Per-user token buckets, one for reads (GET, HEAD) and one for writes; rate 0 = unlimited."""

    reads_per_s: float = 0.0
    read_burst: int = 0
    writes_per_s: float = 0.0
    write_burst: int = 0

    def validate(self, where: str) -> None:
        for f in fields(self):
            if getattr(self, f.name) < 0:
                raise ValueError(f"{where}.{f.name} must not be negative")


@dataclass(frozen=True)
class DriveSettings:
    private_app_properties: bool = False
    search_lag_new_s: float = 0.0
    search_lag_renamed_s: float = 0.0
    omit_sha256: bool = False
    status: int = 403
    reasons: tuple[str, ...] = DRIVE_REASONS
    rate_limit: RateLimit = field(default_factory=RateLimit)

    def validate(self) -> None:
        self.rate_limit.validate("drive.rate_limit")
        if self.search_lag_new_s < 0 or self.search_lag_renamed_s < 0:
            raise ValueError("drive.search_lag_*_s must not be negative")
        if self.status not in (403, 429):
            raise ValueError("drive.status must be 403 or 429")
        if not self.reasons or any(r not in DRIVE_REASONS for r in self.reasons):
            raise ValueError(f"drive.reasons must be a non-empty list of {', '.join(DRIVE_REASONS)}")

    def rules(self) -> DriveRules:
        return DriveRules(self.search_lag_new_s, self.search_lag_renamed_s, self.private_app_properties,
                          self.omit_sha256)


@dataclass(frozen=True)
class GraphThrottle:
    status: int = 429
    retry_after_s: tuple[float, ...] = (41.0,)
    retry_after_form: str = "seconds"
    every_requests: int = 0

    def validate(self) -> None:
        if self.status not in (429, 503):
            raise ValueError("graph.throttle.status must be 429 or 503")
        if not self.retry_after_s or any(not v > 0 for v in self.retry_after_s):
            raise ValueError("graph.throttle.retry_after_s must be a non-empty list of positive seconds")
        if self.retry_after_form not in RETRY_AFTER_FORMS:
            raise ValueError(f"graph.throttle.retry_after_form must be one of {', '.join(RETRY_AFTER_FORMS)}")
        if self.every_requests < 0:
            raise ValueError("graph.throttle.every_requests must not be negative")


@dataclass(frozen=True)
class GraphSettings:
    sharepoint_rewrite_bytes: int = 0
    office_extensions: tuple[str, ...] = OFFICE_EXTENSIONS
    fragment_404_count: int = 0
    fragment_404_window_s: float = 0.0
    ignore_file_size: bool = False
    rate_limit: RateLimit = field(default_factory=RateLimit)
    throttle: GraphThrottle = field(default_factory=GraphThrottle)

    def validate(self) -> None:
        self.rate_limit.validate("graph.rate_limit")
        self.throttle.validate()
        if self.sharepoint_rewrite_bytes < 0 or self.fragment_404_count < 0 or self.fragment_404_window_s < 0:
            raise ValueError("graph.sharepoint_rewrite_bytes and graph.fragment_404_* must not be negative")
        if any(not e.startswith(".") for e in self.office_extensions):
            raise ValueError("graph.office_extensions must be suffixes like \".docx\"")

    def rules(self) -> GraphRules:
        return GraphRules(self.sharepoint_rewrite_bytes, tuple(e.lower() for e in self.office_extensions),
                          self.fragment_404_count, self.fragment_404_window_s, self.ignore_file_size)


@dataclass(frozen=True)
class Settings:
    """A whole realism profile (all off: `Settings()`)."""

    clock_scale: float = 1.0
    latency_ms: float = 0.0
    drive: DriveSettings = field(default_factory=DriveSettings)
    graph: GraphSettings = field(default_factory=GraphSettings)

    def validate(self) -> Settings:
        if not 0 < self.clock_scale <= 1_000_000:
            raise ValueError("clock_scale must be a positive number (at most 1e6)")
        if not 0 <= self.latency_ms <= 60_000:
            raise ValueError("latency_ms must be a number of milliseconds in 0..60000")
        self.drive.validate()
        self.graph.validate()
        return self

    @classmethod
    def from_dict(cls, data: object) -> Settings:
        """Settings from parsed TOML/JSON; ValueError naming the first bad or unknown setting."""
        return _build(cls, data, "").validate()

    @classmethod
    def load(cls, path: Path) -> Settings:
        """Settings from a TOML profile; FileNotFoundError, or ValueError for bad TOML or values."""
        return cls.from_dict(read_toml(path))  # FileValueError (a ValueError) for a folder, bad bytes or TOML

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = _plain(asdict(self))
        return out


T = TypeVar("T")


def _build(cls: type[T], data: object, where: str) -> T:
    if not isinstance(data, dict):
        raise ValueError(f"{where.rstrip('.') or 'the profile'}: expected a table, got {shown(data)}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    for key in data:
        if key not in known:
            raise ValueError(f"{where}{key}: expected a known setting, got an unknown key")
    kwargs: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        if f.name in data:
            kwargs[f.name] = _value(hints[f.name], data[f.name], where + f.name)
        elif f.default is MISSING and f.default_factory is MISSING:
            raise ValueError(f"missing setting {where}{f.name}")
    return cls(**kwargs)


def _value(tp: Any, value: object, where: str) -> Any:
    if is_dataclass(tp) and isinstance(tp, type):
        return _build(tp, value, where + ".")
    if tp is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{where}: expected true or false, got {shown(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where}: expected an integer, got {shown(value)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{where}: expected a number, got {shown(value)}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ValueError(f"{where}: expected a string, got {shown(value)}")
        return value
    if typing.get_origin(tp) is tuple:
        item = typing.get_args(tp)[0]
        if not isinstance(value, list):
            raise ValueError(f"{where}: expected a list, got {shown(value)}")
        return tuple(_value(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    raise TypeError(f"unsupported setting type {tp!r} for {where}")  # a bug in this module, not user input


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


__all__ = ["DriveSettings", "GraphSettings", "GraphThrottle", "RateLimit", "Settings"]
