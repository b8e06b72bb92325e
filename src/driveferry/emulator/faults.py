"""Fault injection: deterministic (seeded) rules matched per route, with accounting.

A plan is a seed, an optional bandwidth cap and a list of rules. Each rule matches route names with
fnmatch patterns (e.g. `graph.download`, `drive.upload.*`, `*`) and fires with probability `rate`,
optionally only after `after` matches and at most `count` times. Kinds:

- `status`: answer `status` with the API's own error body (`code`/`message`), `Retry-After` if set;
- `reset`: drop the connection in the middle of the request body (uploads) or the response body;
- `truncate`: send only part of a download body, then close (Content-Length still says the whole);
- `corrupt`: serve wrong bytes in a download while metadata keeps the right hash (silent corruption);
- `latency`: sleep `latency_ms` before handling;
- `ignore_range`: answer a ranged Graph download with 200 and the whole body, as a server may (RFC 9110
  section 14.2: a server may ignore the Range header), so the client must drop the bytes before its offset.

Plans load from TOML (`--faults FILE`, see configs/emulator/faults.example.toml) or JSON through
`PUT /_emulator/faults`.
"""

from __future__ import annotations

import fnmatch
import random
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from driveferry.typedconfig import Field, check_table, read_toml

KINDS = ("status", "reset", "truncate", "corrupt", "latency", "ignore_range")


@dataclass
class FaultRule:
    kind: str
    route: str = "*"
    method: str = "*"
    rate: float = 1.0
    status: int = 503
    code: str | None = None
    message: str | None = None
    retry_after: str | None = None
    latency_ms: int = 0
    count: int | None = None
    after: int = 0
    seen: int = 0
    fired: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; use one of {', '.join(KINDS)}")
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"fault rate must be between 0 and 1, got {self.rate}")
        if self.retry_after is not None:
            self.retry_after = str(self.retry_after)

    def matches(self, route: str, method: str) -> bool:
        return fnmatch.fnmatchcase(route, self.route) and self.method in ("*", method.upper())


_COUNT = Field("integer", minimum=0)
_TEXT = Field("string")
_RULE = {"kind": Field("string", choices=KINDS), "route": _TEXT, "method": _TEXT, "rate": Field("number", minimum=0, maximum=1),
         "status": Field("integer", minimum=100), "code": _TEXT, "message": _TEXT, "retry_after": Field("scalar"),
         "latency_ms": _COUNT, "count": _COUNT, "after": _COUNT, "seen": _COUNT, "fired": _COUNT}
_PLAN = {"seed": Field("integer"), "bandwidth_bps": _COUNT, "rule": Field("list"), "rules": Field("list")}


@dataclass
class FaultPlan:
    seed: int = 0
    bandwidth_bps: int = 0
    rules: list[FaultRule] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()

    @classmethod
    def from_dict(cls, data: object, file: str = "") -> FaultPlan:
        """A plan from parsed TOML or JSON. FileValueError ("<file>: <key>: expected <type>, got <value>",
        a ValueError) for an unknown key or a value of the wrong type; `file` names the source."""
        plan = check_table(file, "", data, _PLAN)
        rules = []
        for key in ("rule", "rules"):
            for i, raw in enumerate(plan.get(key, [])):
                values = check_table(file, f"{key}[{i}]", raw, _RULE, required=("kind",))
                rules.append(FaultRule(**{k: v for k, v in values.items() if k not in ("seen", "fired")}))
        return cls(seed=plan.get("seed", 0), bandwidth_bps=plan.get("bandwidth_bps", 0), rules=rules)

    @classmethod
    def load(cls, path: Path) -> FaultPlan:
        """The plan in a TOML file; FileNotFoundError, or FileValueError (one line) for a folder,
        non-UTF-8 text, bad TOML or a bad value."""
        return cls.from_dict(read_toml(path), str(path))

    def to_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "bandwidth_bps": self.bandwidth_bps, "rules": [asdict(r) for r in self.rules]}

    def decide(self, route: str, method: str) -> dict[str, FaultRule]:
        """The rules that fire for this request, at most one per kind (first matching rule wins)."""
        fired: dict[str, FaultRule] = {}
        with self._lock:
            for rule in self.rules:
                if rule.kind in fired or not rule.matches(route, method):
                    continue
                rule.seen += 1
                if rule.seen <= rule.after:
                    continue
                if rule.count is not None and rule.fired >= rule.count:
                    continue
                if rule.rate < 1.0 and self._rng.random() >= rule.rate:
                    continue
                rule.fired += 1
                fired[rule.kind] = rule
        return fired

    def cut_point(self, length: int) -> int:
        """Where a reset or truncation cuts a body of `length` bytes (somewhere inside it)."""
        with self._lock:
            return self._rng.randrange(0, max(1, length))

    def corrupt_offset(self, length: int) -> int:
        with self._lock:
            return self._rng.randrange(0, max(1, length))
