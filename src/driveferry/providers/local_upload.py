"""Resumable uploads into the local filesystem: a hidden temp file, sequential writes, rename at the end.

The temp file `.<name>.driveferry-partial-<id>` sits in the target folder (same filesystem, so the
final rename is atomic). Writes are strictly sequential with no preallocation (no fallocate, no
truncate-to-size, no sparse seeks): the temp file's size *is* the committed offset, and a crash can
never leave a file that looks complete but holds zeros. Every non-final chunk is fsync'd, so the
committed offset a checkpoint records survives a power cut.

The token is JSON holding the root and the temp and final paths relative to it, so another process
(with a provider on the same root) resumes by `LocalProvider.resume_upload(token)`. MD5 and SHA-256
are computed while writing; a resumed session rebuilds them by re-reading the temp file once.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from driveferry.errors import (
    AlreadyExistsError,
    IntegrityError,
    NotFoundError,
    PermanentError,
    QuotaExceededError,
    TransientError,
    UploadSessionLostError,
)
from driveferry.integrity import provenance
from driveferry.integrity.hashes import Buffer, HashType, MultiHasher
from driveferry.providers.base import Entry, Kind, UploadMeta
from driveferry.providers.local import PARTIAL_MARK, write_properties

if TYPE_CHECKING:
    from driveferry.providers.local import LocalProvider

STREAMED = frozenset({HashType.MD5, HashType.SHA256})
_NAME_MAX_BYTES = 255
_REBUILD_BLOCK = 4 << 20


def partial_name(name: str, upload_id: str) -> str:
    """The temp file name, with `name` shortened (on a UTF-8 boundary) to fit NAME_MAX."""
    budget = _NAME_MAX_BYTES - 1 - len(PARTIAL_MARK) - len(upload_id)
    short = name.encode("utf-8")[:budget].decode("utf-8", "ignore")
    return f".{short}{PARTIAL_MARK}{upload_id}"


def _fsync_dir(path: Path) -> None:
    # makes a create or rename durable; some filesystems (FUSE) refuse directory fsync: not fatal
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class LocalUpload:
    """One upload session. `send` is idempotent per offset and safe across processes (flock)."""

    chunk_multiple = 1

    def __init__(self, provider: LocalProvider, state: dict[str, Any]) -> None:
        self._p = provider
        self._state = state
        self.token = json.dumps(state, sort_keys=True)
        self.size = int(state["size"])
        self._tmp = provider.root_path / state["tmp"]
        self._final = provider.root_path / state["final"]
        self._hasher: MultiHasher | None = None
        self._hashed = 0

    @classmethod
    def begin(cls, provider: LocalProvider, parent: Entry, name: str, size: int, meta: UploadMeta) -> LocalUpload:
        if parent.kind is not Kind.FOLDER:
            raise PermanentError(f"{parent.path} is not a folder")
        if size < 0:
            raise ValueError("size must be >= 0")
        folder = provider.local_path(parent.path)
        if not folder.is_dir():
            raise NotFoundError(f"folder {parent.path or '/'} not found in {provider.name}")
        final_rel = f"{parent.path}/{name}" if parent.path else name
        if os.path.lexists(folder / name) and (not meta.replace or (folder / name).is_dir()):
            raise AlreadyExistsError(f"{final_rel} already exists in {provider.name}")
        upload_id = uuid.uuid4().hex[:16]
        tmp_name = partial_name(name, upload_id)
        fd = os.open(folder / tmp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        os.close(fd)
        _fsync_dir(folder)
        state = {"v": 1, "kind": "local", "root": str(provider.root_path), "id": upload_id, "size": size,
                 "tmp": f"{parent.path}/{tmp_name}" if parent.path else tmp_name, "final": final_rel,
                 "modified": meta.modified.isoformat() if meta.modified else None,
                 "properties": dict(meta.properties), "replace": meta.replace}
        return cls(provider, state)

    @classmethod
    def resume(cls, provider: LocalProvider, token: str) -> LocalUpload:
        """Re-attach. PermanentError for a token of another kind or root; UploadSessionLostError if gone."""
        try:
            state = json.loads(token)
            ok = state.get("kind") == "local" and {"tmp", "final", "size"} <= state.keys()
        except (ValueError, AttributeError):
            ok = False
        if not ok:
            raise PermanentError("not a local upload token")
        if state["root"] != str(provider.root_path):
            raise PermanentError(f"upload token belongs to root {state['root']!r}, not {str(provider.root_path)!r}")
        for key in ("tmp", "final"):  # the token is data from the journal: keep it inside the root
            if provider.relpath(state[key]) != state[key]:
                raise PermanentError(f"upload token has a bad {key} path")
            provider.local_path(state[key].rsplit("/", 1)[0] if "/" in state[key] else "")
        session = cls(provider, state)
        session.committed()  # raises UploadSessionLostError when nothing is left
        return session

    def _finished_entry(self) -> Entry | None:
        """The final file when a previous `send` already renamed it into place."""
        try:
            if os.stat(self._final).st_size == self.size and not self._tmp.exists():
                return self._p.stat(self._state["final"])
        except FileNotFoundError:
            pass
        return None

    def committed(self) -> int:
        """Bytes durably written: the temp file's size (or `size` once finished)."""
        try:
            return os.stat(self._tmp).st_size
        except FileNotFoundError:
            if self._finished_entry() is not None:
                return self.size
            raise UploadSessionLostError(f"upload of {self._state['final']} is gone (temp file missing)") from None

    def send(self, offset: int, chunk: Buffer, last: bool) -> Entry | None:
        """Write `chunk` at `offset` (bytes already held are skipped). Returns the Entry after the last.

        Raises PermanentError for a gap or overrun, TransientError if another process holds the
        session, IntegrityError (and aborts) when the streamed hashes contradict the promised ones.
        """
        try:
            fd = os.open(self._tmp, os.O_RDWR)
        except FileNotFoundError:
            done = self._finished_entry()
            if done is not None and last:
                return done
            raise UploadSessionLostError(f"upload of {self._state['final']} is gone") from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise TransientError(f"upload of {self._state['final']} is busy in another process") from None
            except OSError as exc:
                # some FUSE mounts (Drive on Colab) have no flock: carry on unlocked, as rsync would
                if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                    raise
            return self._send_locked(fd, offset, chunk, last)
        finally:
            os.close(fd)

    def _send_locked(self, fd: int, offset: int, chunk: Buffer, last: bool) -> Entry | None:
        committed = os.fstat(fd).st_size
        end = offset + len(chunk)
        if offset > committed:
            raise PermanentError(f"offset {offset} is beyond the {committed} bytes committed; ask committed()")
        if end > self.size or committed > self.size:
            raise PermanentError(f"chunk ends at {max(end, committed)}, past the declared size {self.size}")
        if last and end != self.size:
            raise PermanentError(f"last chunk ends at {end} but the declared size is {self.size}")
        data = memoryview(chunk)[committed - offset:] if end > committed else memoryview(b"")
        hasher = self._hasher_at(fd, committed)
        pos = committed
        try:
            while data:
                written = os.pwrite(fd, data, pos)
                hasher.update(data[:written])
                pos += written
                data = data[written:]
            os.fsync(fd)  # the committed offset must survive a crash before anyone records it
        except OSError as exc:
            self._hasher = None  # the hasher may be ahead of the bytes on disk: rebuild it next time
            raise self._write_error(exc) from None
        self._hashed = pos
        return self._finish(hasher) if last else None

    def _write_error(self, exc: OSError) -> Exception:
        """A failed write as the caller's next action: a full disk or quota stops the run (the temp file
        is kept, so the next run resumes after space is freed); a file too large for this filesystem
        (or RLIMIT_FSIZE) fails that file and removes its temp file; anything else passes through."""
        final = self._state["final"]
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return QuotaExceededError(f"local disk full writing {final} ({exc.strerror}); free space, then run "
                                      "again to resume", kind="storage")
        if exc.errno == errno.EFBIG:
            self.abort()
            return PermanentError(f"{final}: file too large for the destination filesystem ({exc.strerror})")
        return exc

    def _hasher_at(self, fd: int, committed: int) -> MultiHasher:
        """The streaming hasher positioned at `committed`, rebuilt from the temp file when needed."""
        if self._hasher is not None and self._hashed == committed:
            return self._hasher
        hasher = MultiHasher(STREAMED)
        for block in _read_prefix(fd, committed):
            hasher.update(block)
        self._hasher, self._hashed = hasher, committed
        return hasher

    def _finish(self, hasher: MultiHasher) -> Entry:
        digests = hasher.hexdigests()
        props: dict[str, str] = dict(self._state.get("properties") or {})
        for kind, key in ((HashType.MD5, provenance.MD5), (HashType.SHA256, provenance.SHA256)):
            promised = props.get(key)
            if promised and promised != digests[kind]:
                self.abort()
                raise IntegrityError(f"{self._state['final']}: written bytes differ from the promised content",
                                     hash_type=kind.value, expected=promised, actual=digests[kind])
        if props and self._p.xattrs:
            write_properties(self._tmp, props)
        if self._state.get("modified"):
            from datetime import datetime
            ns = int(datetime.fromisoformat(self._state["modified"]).timestamp() * 1_000_000_000)
            os.utime(self._tmp, ns=(ns, ns))
        self._place()
        entry = self._p.stat(self._state["final"])
        return replace(entry, hashes=digests)

    def _place(self) -> None:
        """Rename the temp file to its final name: atomically replacing, or refusing to clobber."""
        if self._state.get("replace"):
            os.replace(self._tmp, self._final)
        else:
            try:
                os.link(self._tmp, self._final)  # link fails if the name was taken meanwhile
                os.unlink(self._tmp)
            except FileExistsError:
                raise AlreadyExistsError(f"{self._state['final']} appeared during the upload") from None
            except OSError:
                # no hard links (FUSE, some network filesystems): check, then rename
                if os.path.lexists(self._final):
                    raise AlreadyExistsError(f"{self._state['final']} appeared during the upload") from None
                os.rename(self._tmp, self._final)
        _fsync_dir(self._final.parent)

    def abort(self) -> None:
        """Remove the temp file; the final name is never touched. Harmless when already gone."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._tmp)


def _read_prefix(fd: int, length: int) -> Iterator[bytes]:
    pos = 0
    while pos < length:
        block = os.pread(fd, min(_REBUILD_BLOCK, length - pos), pos)
        if not block:
            return
        pos += len(block)
        yield block
