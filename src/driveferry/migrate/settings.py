"""Migration settings: flags over a job file (TOML `[migrate]` table) over defaults, validated once.

Every problem is a UserError naming the setting and the fix, raised before anything is touched.
"""

from __future__ import annotations

import os
import socket
import tomllib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from driveferry.errors import UserError
from driveferry.units import parse_duration, parse_size

DEFAULT_CHUNK = 10 * 1024 * 1024  # a multiple of both Drive's 256 KiB and Graph's 320 KiB
DEFAULT_JOURNAL = "driveferry-journal.sqlite3"


@dataclass(frozen=True)
class MigrateSettings:
    source: str
    destination: str
    journal: str = DEFAULT_JOURNAL
    config: str | None = None
    transfers: int = 4
    checkers: int = 8  # folders listed at once by the first walk (rclone's --checkers)
    chunk_size: int = DEFAULT_CHUNK
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    min_size: int | None = None
    max_size: int | None = None
    dry_run: bool = False
    max_transfer: int | None = None
    wait_for_quota: bool = False
    daily_cap: int | None = None  # None: the destination's own (Drive: 750 GB)
    lease_s: float = 60.0
    worker_id: str = ""
    export: str = "office"  # native documents (Google Docs...): "office" formats, "pdf", or "skip" (reported)

    def __post_init__(self) -> None:
        if not 1 <= self.transfers <= 64:
            raise UserError(f"--transfers must be between 1 and 64, got {self.transfers}")
        if not 1 <= self.checkers <= 64:
            raise UserError(f"--checkers must be between 1 and 64, got {self.checkers}")
        if self.chunk_size < 256 * 1024 or self.chunk_size > 60 * 1024 * 1024:
            raise UserError(f"--chunk-size must be between 256KiB and 60MiB, got {self.chunk_size} bytes")
        if self.export not in ("office", "pdf", "skip"):
            raise UserError(f"--export must be office, pdf or skip, got {self.export!r}")
        if self.lease_s < 5:
            raise UserError(f"lease must be at least 5 seconds, got {self.lease_s}")
        if not self.worker_id:
            object.__setattr__(self, "worker_id", f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}")

    def redacted(self) -> dict[str, Any]:
        """For the run report: the journal URL without its password."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["journal"] = redact_url(self.journal)
        out["include"], out["exclude"] = list(self.include), list(self.exclude)
        return out


def redact_url(url: str) -> str:
    """`postgresql://user:secret@host/db` -> `postgresql://user:***@host/db`."""
    if "://" in url and "@" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        if ":" in creds:
            creds = creds.split(":", 1)[0] + ":***"
        return f"{scheme}://{creds}@{host}"
    return url


_SIZES = {"chunk_size", "min_size", "max_size", "max_transfer", "daily_cap"}
_KNOWN = {f.name for f in fields(MigrateSettings)} | {"max-transfer"}


def load_job_file(path: str) -> dict[str, Any]:
    """The `[migrate]` table of a job file, keys normalised (dashes to underscores)."""
    p = Path(path)
    try:
        with open(p, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise UserError(f"job file {path} not found; copy configs/migrate.example.toml and edit it") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"job file {path} is not valid TOML: {exc}") from None
    table = data.get("migrate", data)
    if not isinstance(table, dict):
        raise UserError(f"job file {path}: [migrate] must be a table")
    out = {k.replace("-", "_"): v for k, v in table.items()}
    unknown = sorted(set(out) - _KNOWN)
    if unknown:
        raise UserError(f"job file {path}: unknown key {unknown[0]!r}; see configs/migrate.example.toml")
    return out


def build_settings(values: Mapping[str, Any]) -> MigrateSettings:
    """Settings from merged values (job file, then flags); sizes and durations parsed here."""
    kw: dict[str, Any] = {}
    for key, value in values.items():
        if value is None:
            continue
        try:
            if key in _SIZES:
                value = parse_size(value)
            elif key == "lease_s":
                value = parse_duration(value)
            elif key in ("include", "exclude"):
                value = tuple([value] if isinstance(value, str) else value)
            elif key in ("transfers", "checkers"):
                value = int(value)
        except (TypeError, ValueError) as exc:
            raise UserError(f"bad value for {key.replace('_', '-')}: {exc}") from None
        kw[key] = value
    for required in ("source", "destination"):
        if not kw.get(required):
            raise UserError(f"missing {required}: give SRC and DST on the command line or in the job file")
    return MigrateSettings(**kw)
