"""Drive's per-user daily upload cap and the storage quota, on the emulator clock.

The cap is a rolling 24 h window of bytes received by uploads (and copies) per user, default 750 GB
[DOC Workspace admin help]. Real Drive lets uploads in progress complete past the cap ("Uploads that
are in progress will complete", Google admin help 172541; api-notes Part C §19) and refuses uploads
that start later with 403 userRateLimitExceeded "User rate limit exceeded." for up to a day; the
emulator does the same: a new upload (a session, or a one-request upload) is refused once the window
already holds the cap, while the chunks of a session opened before keep being accepted. The storage quota counts blob
content (native Docs are free) and refuses any write that would go over it.
"""

from __future__ import annotations

import math

from driveferry.emulator.drive import errors
from driveferry.emulator.state import State

DAY_S = 24 * 3600
DEFAULT_DAILY_UPLOAD_BYTES = 750 * 10**9

# Bytes per user per second of the emulator clock (rounded up, so a byte never leaves the window
# early): a check reads one row per busy second of the day, not one per upload ever made.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS drive_upload_seconds (user TEXT NOT NULL, sec INTEGER NOT NULL, nbytes INTEGER NOT NULL,
                                                 PRIMARY KEY (user, sec));
"""
_OLD_LOG = """
INSERT INTO drive_upload_seconds(user, sec, nbytes)
    SELECT user, CAST(ts AS INTEGER) + (ts > CAST(ts AS INTEGER)), SUM(nbytes) FROM drive_upload_log GROUP BY 1, 2
    ON CONFLICT(user, sec) DO UPDATE SET nbytes = nbytes + excluded.nbytes;
DROP TABLE drive_upload_log;
"""
# Storage usage as a running total (issue #16: summing every file per check made seeding quadratic).
# A file counts while it has content and is not a Google-native Doc (those are free, as on Drive:
# support.google.com/drive/answer/9312312); `trash` is the part explicitly trashed. Triggers keep the one
# row right on every insert, update and delete, whichever code path writes drive_files.
_COUNTED = "(CASE WHEN {r}.blob IS NOT NULL AND {r}.mime_type NOT LIKE 'application/vnd.google-apps.%' " \
           "THEN COALESCE({r}.size, 0) ELSE 0 END)"
_NEW, _OLD = _COUNTED.format(r="new"), _COUNTED.format(r="old")
_USAGE = f"""
CREATE TABLE IF NOT EXISTS drive_usage (one INTEGER PRIMARY KEY CHECK (one = 1), bytes INTEGER NOT NULL,
                                        trash_bytes INTEGER NOT NULL);
INSERT INTO drive_usage(one, bytes, trash_bytes)
    SELECT * FROM (SELECT 1, COALESCE(SUM({_COUNTED.format(r="f")}), 0),
                   COALESCE(SUM(CASE WHEN f.trashed THEN {_COUNTED.format(r="f")} END), 0) FROM drive_files f)
    WHERE NOT EXISTS (SELECT 1 FROM drive_usage);
CREATE TRIGGER IF NOT EXISTS drive_usage_insert AFTER INSERT ON drive_files
BEGIN UPDATE drive_usage SET bytes = bytes + {_NEW}, trash_bytes = trash_bytes + new.trashed * {_NEW}; END;
CREATE TRIGGER IF NOT EXISTS drive_usage_update AFTER UPDATE OF size, blob, mime_type, trashed ON drive_files
BEGIN UPDATE drive_usage SET bytes = bytes + {_NEW} - {_OLD},
                             trash_bytes = trash_bytes + new.trashed * {_NEW} - old.trashed * {_OLD}; END;
CREATE TRIGGER IF NOT EXISTS drive_usage_delete AFTER DELETE ON drive_files
BEGIN UPDATE drive_usage SET bytes = bytes - {_OLD}, trash_bytes = trash_bytes - old.trashed * {_OLD}; END;
"""


class Quotas:
    """Limits (persisted in emu_meta) and the upload log (table drive_upload_seconds)."""

    def __init__(self, state: State) -> None:
        """Storage usage is kept once the drive_files table exists (the model creates it first)."""
        self.state = state
        with state.lock:
            state.db.executescript(_SCHEMA)
            old = state.db.execute("SELECT 1 FROM sqlite_master WHERE name='drive_upload_log'").fetchone()
            if old:  # state saved by an older emulator: one row per upload
                state.db.executescript(_OLD_LOG)
            if state.db.execute("SELECT 1 FROM sqlite_master WHERE name='drive_files'").fetchone():
                state.db.executescript(f"BEGIN IMMEDIATE; {_USAGE} COMMIT;")

    def set_limits(self, daily_upload_bytes: int | None = None, storage_limit_bytes: int | None = None,
                   *, clear_storage_limit: bool = False) -> dict[str, int | None]:
        """Set the cap and/or the storage limit (persisted; clear_storage_limit: unlimited); returns both."""
        if daily_upload_bytes is not None:
            self.state.set_meta("drive.daily_upload_bytes", str(int(daily_upload_bytes)))
        if storage_limit_bytes is not None or clear_storage_limit:
            self.state.set_meta("drive.storage_limit_bytes", "" if storage_limit_bytes is None
                                else str(int(storage_limit_bytes)))
        return self.limits()

    def limits(self) -> dict[str, int | None]:
        cap = int(self.state.get_meta("drive.daily_upload_bytes", str(DEFAULT_DAILY_UPLOAD_BYTES)))
        storage = self.state.get_meta("drive.storage_limit_bytes", "")
        return {"daily_upload_bytes": cap, "storage_limit_bytes": int(storage) if storage else None}

    def uploaded_in_window(self, user: str) -> int:
        """Bytes `user` uploaded in the last 24 h of the emulator clock."""
        since = self.state.clock.timestamp() - DAY_S
        rows = self.state.query("SELECT COALESCE(SUM(nbytes), 0) AS n FROM drive_upload_seconds "
                                "WHERE user=? AND sec>?", (user, since))
        return int(rows[0]["n"])

    def check_upload_allowed(self, user: str) -> None:
        """403 userRateLimitExceeded for a new upload once the window holds the cap (the upload that
        crosses it completes)."""
        if self.uploaded_in_window(user) >= int(self.limits()["daily_upload_bytes"] or 0):
            raise errors.daily_cap_exceeded()

    def usage_by_user(self) -> dict[str, int]:
        """Bytes uploaded per user in the current 24 h window."""
        since = self.state.clock.timestamp() - DAY_S
        rows = self.state.query("SELECT user, SUM(nbytes) AS n FROM drive_upload_seconds WHERE sec>? GROUP BY user",
                                (since,))
        return {str(r["user"]): int(r["n"]) for r in rows}

    def record_upload(self, user: str, nbytes: int) -> None:
        if nbytes > 0:
            with self.state.tx() as db:
                db.execute("INSERT INTO drive_upload_seconds(user, sec, nbytes) VALUES(?,?,?) ON CONFLICT(user, sec) "
                           "DO UPDATE SET nbytes = nbytes + excluded.nbytes",
                           (user, math.ceil(self.state.clock.timestamp()), nbytes))

    def storage_used(self) -> tuple[int, int]:
        """(bytes in Drive, of which in trash) counting blob content only (native docs are free): the
        running totals the triggers keep, not a sum over the files."""
        rows = self.state.query("SELECT bytes, trash_bytes FROM drive_usage")
        return (int(rows[0]["bytes"]), int(rows[0]["trash_bytes"])) if rows else (0, 0)

    def check_storage(self, incoming: int) -> None:
        limit = self.limits()["storage_limit_bytes"]
        if limit is not None and self.storage_used()[0] + incoming > limit:
            raise errors.storage_quota_exceeded()
