"""Migration settings: flags over a job file (TOML `[migrate]` table) over defaults, validated once.

Every problem is a UserError naming the setting and the fix, raised before anything is touched.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from driveferry.errors import UserError
from driveferry.globs import check_patterns
from driveferry.migrate.overlap import check_no_overlap
from driveferry.typedconfig import Field, FileValueError, check_table, read_toml, shown
from driveferry.units import parse_duration, parse_size

DEFAULT_CHUNK = 10 * 1024 * 1024  # a multiple of both Drive's 256 KiB and Graph's 320 KiB
DEFAULT_JOURNAL = "driveferry-journal.sqlite3"
MAX_VERSIONS = 199  # Drive: "Up to 200 revisions can be set to Keep Forever" (manage-revisions guide)


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
    versions: int = 0  # previous versions of each file copied as revisions of its copy (migrate/versions.py)

    def __post_init__(self) -> None:
        if not 1 <= self.transfers <= 64:
            raise UserError(f"--transfers must be between 1 and 64, got {self.transfers}")
        if not 1 <= self.checkers <= 64:
            raise UserError(f"--checkers must be between 1 and 64, got {self.checkers}")
        if self.chunk_size < 256 * 1024 or self.chunk_size > 60 * 1024 * 1024:
            raise UserError(f"--chunk-size must be between 256KiB and 60MiB, got {self.chunk_size} bytes")
        if self.export not in ("office", "pdf", "skip"):
            raise UserError(f"--export must be office, pdf or skip, got {self.export!r}")
        if not 0 <= self.versions <= MAX_VERSIONS:  # each copied revision is kept forever, 200 at most a file
            raise UserError(f"--versions must be between 0 and {MAX_VERSIONS} (Drive keeps at most 200 revisions "
                            f"of a file forever, the current one included), got {self.versions}")
        check_patterns(self.include, "--include")  # before the journal is opened, not when planning
        check_patterns(self.exclude, "--exclude")
        if self.min_size is not None and self.max_size is not None and self.min_size > self.max_size:
            raise UserError(f"--min-size ({self.min_size} bytes) is above --max-size ({self.max_size} bytes): "
                            "nothing could be copied; swap them or drop one")
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


_FLAGS = {"lease_s": "lease"}  # settings whose flag is named otherwise
_SIZES = {"chunk_size", "min_size", "max_size", "max_transfer", "daily_cap"}
_TEXT, _SIZE, _FLAG = Field("string", empty=False), Field("size"), Field("boolean")
# the [migrate] table of a job file: each key's type (values are converted by build_settings)
JOB_KEYS: dict[str, Field] = {
    "source": _TEXT, "destination": _TEXT, "journal": _TEXT, "config": _TEXT,
    "transfers": Field("integer", minimum=1), "checkers": Field("integer", minimum=1),
    "chunk_size": _SIZE, "min_size": _SIZE, "max_size": _SIZE, "max_transfer": _SIZE, "daily_cap": _SIZE,
    "include": Field("strings"), "exclude": Field("strings"), "dry_run": _FLAG, "wait_for_quota": _FLAG,
    "lease_s": Field("duration"), "worker_id": _TEXT, "export": Field("string", choices=("office", "pdf", "skip")),
    "versions": Field("integer", minimum=0),
    # the sharing pass's options (migrate/sharing), read by the command beside these settings
    "permissions": Field("string", choices=("map", "report", "skip")), "sharing_map": _TEXT,
    "allow_anyone_links": _FLAG,
    "hashes": Field("strings"),  # more digests to stream (migrate/hash_set.py), read by the command
}


def load_job_file(path: str) -> dict[str, Any]:
    """The `[migrate]` table of a job file, keys normalised (dashes to underscores), each value checked
    for its type. Raises UserError: a missing file, a folder, non-UTF-8 text, bad TOML, an unknown key
    or a wrongly typed value (`job file <file>: <key>: expected <type>, got <value>`)."""
    try:
        data = read_toml(path)
    except FileNotFoundError:
        raise UserError(f"job file {path} not found; copy configs/migrate.example.toml and edit it") from None
    except FileValueError as exc:
        raise UserError(f"job file {exc}") from None
    table = data.get("migrate", data)
    where = "migrate" if "migrate" in data else ""
    if not isinstance(table, dict):
        raise UserError(f"job file {path}: migrate: expected a table, got {shown(table)}")
    out = {k.replace("-", "_"): v for k, v in table.items()}
    try:
        check_table(path, where, out, JOB_KEYS)
    except FileValueError as exc:
        raise UserError(f"job file {exc}; see configs/migrate.example.toml") from None
    return out


def build_settings(values: Mapping[str, Any], *, restoring: bool = False) -> MigrateSettings:
    """Settings from merged values (job file, then flags); sizes and durations parsed here. Also refused
    here, before anything is opened: a journal folder that does not exist and a destination that
    overlaps the source (migrate/overlap.py). With `restoring` (--journal-backup: a new relay VM restores
    its journal from the backup) the journal's folder may be missing; it is created."""
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
            elif key in ("transfers", "checkers", "versions"):
                value = int(value)
        except (TypeError, ValueError) as exc:
            flag = _FLAGS.get(key, key.replace("_", "-"))
            raise UserError(f"bad value for --{flag}: {exc}") from None
        kw[key] = value
    for required in ("source", "destination"):
        if not kw.get(required):
            raise UserError(f"missing {required}: give SRC and DST on the command line or in the job file")
    settings = MigrateSettings(**kw)
    if not restoring:
        check_journal_folder(settings.journal)
    check_no_overlap(settings.source, settings.destination, settings.config)
    return settings


def check_journal_folder(journal: str) -> None:
    """UserError for an SQLite journal whose folder does not exist (a mistyped --journal would otherwise
    start a new, empty journal there) or that is a folder itself. URLs are checked when opened."""
    if "://" in journal:
        return
    path = Path(os.path.expanduser(journal))
    if path.is_dir():
        raise UserError(f"--journal {journal} is a folder; give a file name, e.g. {path / DEFAULT_JOURNAL}")
    folder = path.parent
    if not folder.exists():
        raise UserError(f"--journal {journal}: folder {folder} does not exist; create it first "
                        f"(mkdir -p {folder}) or fix the path (with --journal-backup it is created)")
    if not folder.is_dir():
        raise UserError(f"--journal {journal}: {folder} is not a folder")
