"""`migrate --journal-backup REMOTE:PATH`: keep an SQLite journal safe from losing the relay VM.

While a migration runs, what changed in the journal is uploaded to a folder on a remote every few
minutes and once more at exit (also after a quota stop or Ctrl-C), through the provider's resumable
upload. The first upload of a run is a full base (the snapshot, gzip-compressed); the next ones are
deltas holding only the database pages written since the previous upload (journal/backup.py), until
the deltas add up to the base's size or MAX_CHAIN of them, when a new base starts a new chain. The
newest `KEEP` bases are kept with their deltas. Each upload is proven like any copy: the remote's
hashes of the new file must agree with ours. A run that finds no local journal file first rebuilds it
from the newest intact base and its deltas, so a fresh VM carries on where the lost one stopped: at
worst it repeats what happened since the last upload, and the destination's provenance (duplicate
guard) and the upload sessions recorded in the journal keep that from copying anything twice.

File names carry their time and SHA-256 (`journal-<stamp>-<sha256>.sqlite3.gz` for a base,
`journal-<base stamp>-d<stamp>-<sha256>.delta.gz` for a delta), so a download is checked against the
hash chosen at upload time whatever the remote reports. Each upload's size is logged beside the
journal (journal/backup.py `record_upload`) for `status` to report the daily cost.
"""

from __future__ import annotations

import contextlib
import logging
import re
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from driveferry.errors import DriveferryError, JournalError, NotFoundError, TransientError, UserError
from driveferry.integrity.hashes import HashType, MultiHasher
from driveferry.integrity.proof import Outcome, compare
from driveferry.journal import backup as files
from driveferry.migrate.destination import settled_mkdir
from driveferry.providers.base import Entry, Kind, Provider, UploadMeta
from driveferry.providers.streaming import chunk_bytes_for

log = logging.getLogger(__name__)

KEEP = 2  # full bases kept on the remote, each with its deltas: the newest may be the one a crash cut
DEFAULT_EVERY_S = 300.0
MAX_CHAIN = 288  # deltas on one base (a day at the default interval) before a new base
# Old uncompressed snapshots (.sqlite3) are still restorable bases.
_BASE = re.compile(r"^journal-(\d{8}T\d{6}\d{3}Z)-([0-9a-f]{64})\.sqlite3(\.gz)?$")
_DELTA = re.compile(r"^journal-(\d{8}T\d{6}\d{3}Z)-d(\d{8}T\d{6}\d{3}Z)-([0-9a-f]{64})\.delta\.gz$")
_CHUNK_TARGET = 8 * 1024 * 1024
_SEND_ATTEMPTS = 5
_PROOF_KINDS = (HashType.SHA256, HashType.SHA1, HashType.MD5, HashType.QUICKXOR)


def _stamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y%m%dT%H%M%S") + f"{at.microsecond // 1000:03d}Z"


def snapshot_name(at: datetime, sha256: str) -> str:
    """The remote file name of a full base taken at `at`, gzip of the snapshot (names sort by time)."""
    return f"journal-{_stamp(at)}-{sha256}.sqlite3.gz"


def delta_name(base_stamp: str, at: datetime, sha256: str) -> str:
    """The remote file name of a delta on the base stamped `base_stamp`."""
    return f"journal-{base_stamp}-d{_stamp(at)}-{sha256}.delta.gz"


@dataclass(frozen=True)
class Remote:
    """One backup file on the remote: the entry, its base's stamp, its own stamp and its SHA-256."""

    entry: Entry
    base_stamp: str
    stamp: str
    sha256: str

    @property
    def is_base(self) -> bool:
        return self.base_stamp == self.stamp


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
        self._last_sha256: str | None = None  # of the journal state last uploaded
        self._pages: files.Pages | None = None  # its page digests, which the next delta is taken against
        self._base_stamp = ""
        self._base_bytes = self._chain_bytes = self._chain_len = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.uploaded = 0  # bases and deltas uploaded by this object (for the run report and tests)
        self.uploaded_bytes = 0

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
        """(entry, sha256) of every full base in the folder, newest first; empty when there is no folder."""
        return [(r.entry, r.sha256) for r in self.remote_files() if r.is_base]

    def remote_files(self) -> list[Remote]:
        """Every base and delta in the folder, newest first (a base before the deltas taken on it)."""
        folder = self._find_folder()
        if folder is None:
            return []
        found: list[Remote] = []
        for e in self.provider.list(folder):
            if e.kind is not Kind.FILE:
                continue
            if m := _BASE.match(e.name):
                found.append(Remote(e, m.group(1), m.group(1), m.group(2)))
            elif m := _DELTA.match(e.name):
                found.append(Remote(e, m.group(1), m.group(2), m.group(3)))
        found.sort(key=lambda r: (r.base_stamp, r.stamp), reverse=True)
        return found

    # --- restore -------------------------------------------------------------------------------------

    def restore_if_missing(self) -> str | None:
        """With no journal file, rebuild it from the newest intact base and the deltas taken on it.
        Returns the name of the last file applied, or None when there was a journal already or nothing
        on the remote (a first run). A damaged base is skipped for the next older one, and a damaged
        delta ends its chain there (the state before it is restored), with a warning. Raises UserError
        when every base is damaged (starting empty would forget what the lost VM did), provider errors
        when the remote cannot be read."""
        if self.journal.exists():
            return None
        remote = self.remote_files()
        bases = [r for r in remote if r.is_base]
        if not bases:
            log.info("no journal snapshot in %s:%s; starting a new journal", self.provider.name, self.folder_path)
            return None
        self.journal.parent.mkdir(parents=True, exist_ok=True)
        problems = []
        for base in bases:
            chain = sorted((r for r in remote if r.base_stamp == base.stamp and not r.is_base), key=lambda r: r.stamp)
            try:
                last = self._rebuild(base, chain)
            except (DriveferryError, OSError) as e:
                if isinstance(e, FileExistsError):
                    raise
                log.warning("journal snapshot %s is unusable (%s); trying an older one", base.entry.name, e)
                problems.append(f"{base.entry.name}: {e}")
                continue
            log.info("restored the journal from %s:%s/%s", self.provider.name, self.folder_path, last)
            return last
        raise UserError("no usable journal snapshot in --journal-backup: " + "; ".join(problems)
                        + "; remove --journal-backup to start a new journal (the destination's provenance "
                        "still prevents copying files twice)")

    def _download(self, remote: Remote, into: Path) -> None:
        with open(into, "wb") as fh:
            for block in self.provider.open_range(remote.entry, 0, remote.entry.size):
                fh.write(block)
        if files.file_sha256(into) != remote.sha256:
            raise JournalError(f"{remote.entry.name}: its SHA-256 is not the one in its name (damaged)")

    def _rebuild(self, base: Remote, chain: list[Remote]) -> str:
        with tempfile.TemporaryDirectory(prefix=".journal-restore-", dir=self.journal.parent) as tmp_dir:
            tmp = Path(tmp_dir)
            db, packed = tmp / "journal.sqlite3", tmp / "download"
            self._download(base, packed)
            if base.entry.name.endswith(".gz"):
                files.decompress(packed, db)
            else:
                packed.replace(db)
            files.check(db)
            expected, last = files.file_sha256(db), base.entry.name
            for delta in chain:
                try:
                    self._download(delta, packed)
                    expected = files.apply_delta(db, packed, expected)
                except (DriveferryError, OSError) as e:  # the pages before it are a consistent state
                    log.warning("journal delta %s is unusable (%s); restoring the state before it",
                                delta.entry.name, e)
                    break
                last = delta.entry.name
            # a delta cut off mid-way leaves a mix of pages: the result's own hash decides
            files.restore(db, self.journal, expected)
            return last

    # --- backup --------------------------------------------------------------------------------------

    def backup_now(self) -> str | None:
        """Upload what changed in the journal since the last upload: a delta of the changed pages, or a
        full compressed base (the first backup of this object, every MAX_CHAIN deltas, or once the deltas
        add up to the base's size), then prune older bases. Returns the uploaded file's name, or None
        when the journal has not changed. Raises JournalError, provider errors."""
        with self._lock:
            snap = files.snapshot(self.journal, self.journal.parent)
            packed: files.Packed | None = None
            try:
                if snap.sha256 == self._last_sha256:
                    return None
                at = self._now()
                out = snap.path.with_suffix(".upload")
                if self._pages is None or self._last_sha256 is None or self._chain_len >= MAX_CHAIN \
                        or self._chain_bytes >= self._base_bytes:
                    packed = files.compress(snap.path, out)
                    name = snapshot_name(at, packed.sha256)
                    self._upload(packed, name)
                    pages = files.page_digests(snap.path)
                    self._base_stamp, self._base_bytes, self._chain_bytes, self._chain_len = \
                        _stamp(at), packed.size_bytes, 0, 0
                else:
                    packed, pages, _ = files.write_delta(snap, self._pages, self._last_sha256, out)
                    name = delta_name(self._base_stamp, at, packed.sha256)
                    self._upload(packed, name)
                    self._chain_bytes += packed.size_bytes
                    self._chain_len += 1
            finally:
                snap.path.unlink(missing_ok=True)
                if packed is not None:
                    packed.path.unlink(missing_ok=True)
            self._pages, self._last_sha256 = pages, snap.sha256
            self.uploaded += 1
            self.uploaded_bytes += packed.size_bytes
            files.record_upload(self.journal, at, packed.size_bytes)
            self._prune()
            return name

    def _upload(self, packed: files.Packed, name: str) -> None:
        """A resumable upload from the file, one chunk in memory; a failed chunk is retried from the
        offset the server reports (never a local counter). Proven like any copy: the hashes the remote
        reports for the new file must agree with ours (integrity/proof.py)."""
        folder = self._ensure_folder()
        chunk = _chunk_size(self.provider)
        session = self.provider.begin_upload(folder, name, packed.size_bytes, UploadMeta(modified=self._now()))
        hasher = MultiHasher(_PROOF_KINDS)
        offset, attempts = 0, 0
        with open(packed.path, "rb") as fh:
            while True:
                fh.seek(offset)
                data = fh.read(chunk)
                last = offset + len(data) >= packed.size_bytes
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
                        raise TransientError(f"journal backup {name}: the upload did not finish")
                    break
        with open(packed.path, "rb") as fh:  # hashed from the file: a retried chunk is sent twice
            while block := fh.read(1024 * 1024):
                hasher.update(block)
        self._prove(done, name, hasher.hexdigests(), packed.size_bytes)

    def _prove(self, done: Entry, name: str, ours: dict[HashType, str], size_bytes: int) -> None:
        verdict = compare(ours, done.hashes, expected_size=size_bytes, actual_size=done.size)
        if verdict.outcome is Outcome.UNVERIFIABLE:  # the upload's answer may omit hashes a stat reports
            fresh = self.provider.stat(f"{self.folder_path}/{name}")
            verdict = compare(ours, fresh.hashes)
        if verdict.outcome is Outcome.DIFFERS:
            with contextlib.suppress(DriveferryError):
                self.provider.delete(done)
            raise TransientError(f"journal backup {name}: the remote's copy differs ({verdict.reason})")
        if verdict.outcome is Outcome.UNVERIFIABLE:
            log.warning("journal backup %s: %s; kept unproven", name, verdict.reason)

    def _prune(self) -> None:
        remote = self.remote_files()
        kept = {r.stamp for r in remote if r.is_base}
        kept = set(sorted(kept, reverse=True)[:KEEP])
        for r in remote:
            if r.base_stamp in kept:
                continue
            try:
                self.provider.delete(r.entry)
            except DriveferryError as e:  # an extra old snapshot costs little; the next prune retries
                log.warning("could not delete the old journal snapshot %s: %s", r.entry.name, e)

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
