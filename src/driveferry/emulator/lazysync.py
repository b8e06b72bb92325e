"""A lazy-sync simulator of a FUSE-mounted Google Drive (Colab's /content/drive), over the Drive model.

A local directory stands for the mount; `sync_once(now)` plays one pass of the sync client, writing to
the emulated Drive in-process through `DriveModel` (no HTTP). It reproduces the failure modes that leave
Drive holding files of the right size with the wrong bytes:

* first sight uploads whatever is on disk: a file aria2 preallocated is uploaded as all zeros;
* a later rewrite that keeps the size is ignored (the client compares sizes, not content), so the
  remote keeps the zeros or the older content; a size change is uploaded again (a new revision);
* files modified less than `delay_s` before `now` are not synced yet (they appear later);
* a path that already exists on Drive when first seen (uploaded through the API meanwhile) is adopted,
  not uploaded a second time;
* an upload past the quota (`quota_bytes`) leaves a 0-byte file on Drive, and is never retried.

Local deletions are not propagated (the damage of interest is wrong bytes, not extra files).
`sync_once` is deterministic (it takes `now`, a POSIX timestamp); `start(interval_s)` runs it on a
polling thread with the wall clock, for the demo. The remote file's modifiedTime is the local mtime
seen at upload, as the real client sets it.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from driveferry.emulator.drive.models import DriveModel

__all__ = ["LazySync", "SyncReport"]


@dataclass
class SyncReport:
    """What one pass did, by relative path."""

    uploaded: list[str] = field(default_factory=list)  # first upload (maybe of zeros)
    reuploaded: list[str] = field(default_factory=list)  # size changed: new content uploaded
    ignored: list[str] = field(default_factory=list)  # same size, changed mtime: rewrite missed
    deferred: list[str] = field(default_factory=list)  # newer than delay_s: not yet
    quota_failed: list[str] = field(default_factory=list)  # left as a 0-byte file


@dataclass
class _Known:
    file_id: str
    size: int  # the local size the sync believes it has uploaded
    mtime_ns: int


class LazySync:
    """Mirror `local_dir` into the Drive folder `remote_path` (created under My Drive) on demand.

    Thread-safe: passes are serialised by a lock.
    """

    def __init__(self, local_dir: Path | str, model: DriveModel, remote_path: str = "MyDrive", *,
                 delay_s: float = 0.0, quota_bytes: int | None = None) -> None:
        self.local_dir = Path(local_dir)
        self.model = model
        self.remote_path = remote_path.strip("/")
        self.delay_s = delay_s
        self.quota_bytes = quota_bytes  # bytes the sync may still upload (None: unlimited)
        self._known: dict[str, _Known] = {}
        self._folders: dict[str, str] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- one pass ----------------------------------------------------------------------------------------

    def sync_once(self, now: float | None = None) -> SyncReport:
        """One pass over the local tree at time `now` (default: the wall clock)."""
        at = time.time() if now is None else now
        report = SyncReport()
        with self._lock:
            for rel, path in self._files():
                try:
                    st = path.stat()
                except OSError:
                    continue  # vanished between listing and stat
                self._one(rel, path, st, at, report)
        return report

    def _one(self, rel: str, path: Path, st: os.stat_result, at: float, report: SyncReport) -> None:
        known = self._known.get(rel) or self._adopt(rel, st)
        if known is not None and known.size == st.st_size:
            if known.mtime_ns != st.st_mtime_ns:
                report.ignored.append(rel)  # the bug: same size, so the new bytes are never sent
                known.mtime_ns = st.st_mtime_ns
            return
        if at - st.st_mtime_ns / 1e9 < self.delay_s:
            report.deferred.append(rel)
            return
        data = path.read_bytes()  # whatever is on disk now: zeros, if aria2 has only preallocated
        modified = datetime.fromtimestamp(st.st_mtime_ns / 1e9, tz=UTC)
        over = self.quota_bytes is not None and len(data) > self.quota_bytes
        if over:
            data = b""  # the real client leaves an empty file behind when the quota refuses the bytes
        elif self.quota_bytes is not None:
            self.quota_bytes -= len(data)
        parent, name = self._parent(rel)
        if known is None:
            f = self.model.create_file(name, [data], parent, modified=modified)
            report.uploaded.append(rel)
        else:
            from driveferry.emulator.drive.hashing import write_blob
            content = write_blob(self.model.state.new_blob_path(), [data])
            f = self.model.update(known.file_id, {"modifiedTime": _rfc3339(modified)}, content=content)
            report.reuploaded.append(rel)
        if over:
            report.quota_failed.append(rel)
        # A quota failure is remembered with the local size: the client considers it done.
        self._known[rel] = _Known(f.id, st.st_size, st.st_mtime_ns)

    def _adopt(self, rel: str, st: os.stat_result) -> _Known | None:
        """First sight of a path that already exists on Drive (uploaded meanwhile through the API, e.g.
        by `verify --fix`): the client takes the remote file as its own instead of adding a second
        one, and then applies its usual size rule to it."""
        parent, name = self._parent(rel)
        same = [f for f in self.model.children(parent) if f.name == name and not f.is_folder
                and not self.model.is_trashed(f)]
        if not same:
            return None
        adopted = _Known(same[0].id, int(same[0].size or 0), st.st_mtime_ns)
        self._known[rel] = adopted
        return adopted

    def _files(self) -> list[tuple[str, Path]]:
        out: list[tuple[str, Path]] = []
        for dirpath, dirnames, filenames in os.walk(self.local_dir):
            dirnames.sort()
            base = Path(dirpath)
            for name in sorted(filenames):
                p = base / name
                if p.is_file() and not p.is_symlink():
                    out.append((p.relative_to(self.local_dir).as_posix(), p))
        return out

    def _parent(self, rel: str) -> tuple[str, str]:
        folder, _, name = rel.rpartition("/")
        path = f"{self.remote_path}/{folder}".strip("/") if folder else self.remote_path
        return self._folder(path), name

    def _folder(self, path: str) -> str:
        if not path:
            return "root"
        cached = self._folders.get(path)
        if cached is not None:
            return cached
        head, _, name = path.rpartition("/")
        pid = self._folder(head)
        existing = [c for c in self.model.children(pid) if c.name == name and c.is_folder]
        fid = existing[0].id if existing else self.model.create_folder(name, pid).id
        self._folders[path] = fid
        return fid

    def remote_id(self, rel: str) -> str | None:
        """The Drive file id the sync created for `rel`, if it has uploaded it."""
        known = self._known.get(rel)
        return known.file_id if known else None

    # --- polling thread (demo) ---------------------------------------------------------------------------

    def start(self, interval_s: float = 1.0) -> LazySync:
        """Run `sync_once()` every `interval_s` seconds on a daemon thread until `stop()`."""
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(interval_s):
                self.sync_once()

        self._thread = threading.Thread(target=loop, name="lazysync", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None


def _rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
