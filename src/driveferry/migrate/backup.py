"""`migrate --journal-backup REMOTE:PATH`: keep an SQLite journal safe from losing the relay VM.

While a migration runs, a snapshot of the journal is uploaded to a folder on a remote every few
minutes and once more at exit (also after a quota stop or Ctrl-C), through the provider's resumable
upload; the newest `KEEP` snapshots are kept. A run that finds no local journal file first restores
the newest intact snapshot, so a fresh VM carries on where the lost one stopped: at worst it repeats
what happened since the last snapshot, and the destination's provenance (duplicate guard) and the
upload sessions recorded in the snapshot keep that from copying anything twice.

Snapshot names carry their time and SHA-256 (`journal-20261123T101500Z-<sha256>.sqlite3`), so a
download is checked against the hash chosen at upload time whatever the remote reports.
"""

from __future__ import annotations

import logging
import re
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from driveferry.errors import DriveferryError, NotFoundError, TransientError, UserError
from driveferry.journal import backup as files
from driveferry.migrate.destination import settled_mkdir
from driveferry.providers.base import Entry, Kind, Provider, UploadMeta
from driveferry.providers.streaming import chunk_bytes_for

log = logging.getLogger(__name__)

KEEP = 2  # the newest snapshots kept on the remote: the last one may be the one a crash interrupted
DEFAULT_EVERY_S = 300.0
_NAME = re.compile(r"^journal-(\d{8}T\d{6}\d{3}Z)-([0-9a-f]{64})\.sqlite3$")
_CHUNK_TARGET = 8 * 1024 * 1024
_SEND_ATTEMPTS = 5


def snapshot_name(at: datetime, sha256: str) -> str:
    """The remote file name of a snapshot taken at `at` (names sort by time)."""
    stamp = at.astimezone(UTC).strftime("%Y%m%dT%H%M%S") + f"{at.microsecond // 1000:03d}Z"
    return f"journal-{stamp}-{sha256}.sqlite3"


def _chunk_size(provider: Provider) -> int:
    return chunk_bytes_for(provider.features, _CHUNK_TARGET)


class JournalBackup:
    """Snapshots of one SQLite journal file, uploaded to `folder_path` on `provider`.

    Use: `restore_if_missing()` before opening the journal, `start()` after, `close()` at exit (it
    uploads the final snapshot). Thread-safe: the periodic thread and `close()` never upload at once.
    """

    def __init__(self, provider: Provider, folder_path: str, journal: Path, every_s: float = DEFAULT_EVERY_S,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        if every_s < 1:
            raise UserError(f"--journal-backup-every must be at least 1s, got {every_s}")
        self.provider = provider
        self.folder_path = folder_path.strip("/")
        self.journal = journal
        self.every_s = every_s
        self._now = now
        self._folder: Entry | None = None
        self._last_sha256: str | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.uploaded = 0  # snapshots uploaded by this object (for the run report and tests)

    # --- the remote folder ---------------------------------------------------------------------------

    def _find_folder(self) -> Entry | None:
        try:
            entry = self.provider.stat(self.folder_path)
        except NotFoundError:
            return None
        if entry.kind is not Kind.FOLDER:
            raise UserError(f"--journal-backup {self.folder_path!r} on {self.provider.name} is a file; "
                            "give a folder")
        return entry

    def _ensure_folder(self) -> Entry:
        if self._folder is None:
            folder = self._find_folder()
            if folder is None:
                folder = self.provider.root()
                for part in [p for p in self.folder_path.split("/") if p]:
                    folder = settled_mkdir(self.provider, folder, part)
            self._folder = folder
        return self._folder

    def snapshots(self) -> list[tuple[Entry, str]]:
        """(entry, sha256) of every snapshot in the folder, newest first; empty when there is no folder."""
        folder = self._find_folder()
        if folder is None:
            return []
        found = [(e, m) for e in self.provider.list(folder) if e.kind is Kind.FILE and (m := _NAME.match(e.name))]
        found.sort(key=lambda pair: pair[1].group(1), reverse=True)
        return [(e, m.group(2)) for e, m in found]

    # --- restore -------------------------------------------------------------------------------------

    def restore_if_missing(self) -> str | None:
        """With no journal file, put the newest intact snapshot in its place. Returns its name, or None
        when there was a journal already or no snapshot (a first run). A damaged snapshot is skipped for
        the next older one, with a warning. Raises UserError when every snapshot is damaged (starting
        empty would forget what the lost VM did), provider errors when the remote cannot be read."""
        if self.journal.exists():
            return None
        candidates = self.snapshots()
        if not candidates:
            log.info("no journal snapshot in %s:%s; starting a new journal", self.provider.name, self.folder_path)
            return None
        self.journal.parent.mkdir(parents=True, exist_ok=True)
        problems = []
        for entry, sha256 in candidates:
            try:
                self._download_and_restore(entry, sha256)
            except (DriveferryError, OSError) as e:
                if isinstance(e, FileExistsError):
                    raise
                log.warning("journal snapshot %s is unusable (%s); trying an older one", entry.name, e)
                problems.append(f"{entry.name}: {e}")
                continue
            log.info("restored the journal from %s:%s/%s", self.provider.name, self.folder_path, entry.name)
            return entry.name
        raise UserError("no usable journal snapshot in --journal-backup: " + "; ".join(problems)
                        + "; remove --journal-backup to start a new journal (the destination's provenance "
                        "still prevents copying files twice)")

    def _download_and_restore(self, entry: Entry, sha256: str) -> None:
        fd, name = tempfile.mkstemp(prefix=".journal-restore-", dir=self.journal.parent)
        tmp = Path(name)
        try:
            with open(fd, "wb") as fh:
                for block in self.provider.open_range(entry, 0, entry.size):
                    fh.write(block)
            files.restore(tmp, self.journal, sha256)
        finally:
            tmp.unlink(missing_ok=True)

    # --- backup --------------------------------------------------------------------------------------

    def backup_now(self) -> str | None:
        """Upload a snapshot of the journal and prune older ones. Returns the new snapshot's name, or
        None when the journal has not changed since the last upload. Raises JournalError, provider errors."""
        with self._lock:
            snap = files.snapshot(self.journal, self.journal.parent)
            try:
                if snap.sha256 == self._last_sha256:
                    return None
                name = snapshot_name(self._now(), snap.sha256)
                self._upload(snap, name)
            finally:
                snap.path.unlink(missing_ok=True)
            self._last_sha256 = snap.sha256
            self.uploaded += 1
            self._prune()
            return name

    def _upload(self, snap: files.Snapshot, name: str) -> None:
        """A resumable upload from the snapshot file, one chunk in memory; a failed chunk is retried
        from the offset the server reports (never a local counter)."""
        folder = self._ensure_folder()
        chunk = _chunk_size(self.provider)
        session = self.provider.begin_upload(folder, name, snap.size_bytes, UploadMeta(modified=self._now()))
        offset, attempts = 0, 0
        with open(snap.path, "rb") as fh:
            while True:
                fh.seek(offset)
                data = fh.read(chunk)
                last = offset + len(data) >= snap.size_bytes
                try:
                    done = session.send(offset, data, last)
                except TransientError:
                    attempts += 1
                    if attempts >= _SEND_ATTEMPTS:
                        session.abort()
                        raise
                    time.sleep(min(8.0, 0.5 * 2**attempts))
                    offset = session.committed()
                    continue
                offset += len(data)
                if last:
                    if done is None:
                        raise TransientError(f"journal snapshot {name}: the upload did not finish")
                    return

    def _prune(self) -> None:
        for entry, _ in self.snapshots()[KEEP:]:
            try:
                self.provider.delete(entry)
            except DriveferryError as e:  # an extra old snapshot costs little; the next prune retries
                log.warning("could not delete the old journal snapshot %s: %s", entry.name, e)

    # --- periodic ------------------------------------------------------------------------------------

    def start(self) -> None:
        """Upload a snapshot every `every_s` seconds in a background thread until `close()`."""
        self._thread = threading.Thread(target=self._loop, name="journal-backup", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.backup_now()
            except (DriveferryError, OSError) as e:  # the migration goes on; the next round tries again
                log.warning("journal backup failed: %s; retrying in %.0f s", e, self.every_s)

    def close(self) -> str | None:
        """Stop the periodic thread and upload the final snapshot. Returns its name (None: unchanged).
        Raises JournalError, provider errors (the caller reports them: the journal itself is fine)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.every_s + 60)
        return self.backup_now()
