"""The local filesystem as a provider (also a FUSE mount of Drive, e.g. /content/drive on Colab).

Entries are addressed by their POSIX path relative to `root`; the id is that path. `stat` and `list`
are cheap (one stat, plus xattrs when supported) and report no hashes (`hash_types` is empty):
computing one means reading the file, so it is an explicit capability (`Features.content_hasher` ->
`hash_file`, any HashType).

A read (`open_range`) is bracketed by two `fstat`s: the file must still be the one the entry describes
when it is opened (size and mtime) and must not change while it is read (size, mtime, ctime, inode,
and the path still naming the same inode at the end). A change raises IntegrityError, which fails that
attempt: the relay's hash of a local source is then the hash of one state the file really had.

Paths never leave the root: `..` and absolute paths are a UserError, symlinks that resolve outside the
root are refused with PermissionDeniedError (and listed as SHORTCUT, never followed).

Uploads (see `local_upload.py`) write sequentially to a hidden temp file next to the target and rename
it into place after the last chunk; partial files are hidden from listings.
"""

from __future__ import annotations

import errno
import logging
import mimetypes
import os
import shutil
import stat as stat_mod
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from driveferry.errors import (
    AlreadyExistsError,
    IntegrityError,
    NotFoundError,
    PermanentError,
    PermissionDeniedError,
    UnsupportedError,
    UserError,
)
from driveferry.fileio import iter_range
from driveferry.integrity.hashes import HashType, hash_path
from driveferry.providers.base import Entry, Features, Kind, UploadMeta, UploadSession

log = logging.getLogger(__name__)

XATTR_PREFIX = "user.driveferry."
PARTIAL_MARK = ".driveferry-partial-"
READ_BLOCK_BYTES = 1 << 20
_NO_PROPERTIES: Mapping[str, str] = MappingProxyType({})


def _utc(ts_ns: int) -> datetime:
    return datetime.fromtimestamp(ts_ns / 1e9, UTC)


def _xattrs_supported(path: Path) -> bool:
    """Probe without writing: reading a missing attribute fails with ENODATA only where xattrs work."""
    if not hasattr(os, "getxattr"):
        return False
    try:
        os.getxattr(path, XATTR_PREFIX + "probe")
    except OSError as exc:
        return exc.errno == errno.ENODATA
    return True


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    # ctime too: a rewrite that puts the old mtime back (os.utime) still moves it
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino


def _describe(st: os.stat_result, path_ino: int | None = None) -> str:
    ino = st.st_ino if path_ino is None else path_ino
    return f"size {st.st_size}, mtime_ns {st.st_mtime_ns}, ctime_ns {st.st_ctime_ns}, inode {ino}"


def _same_as_entry(entry: Entry, st: os.stat_result) -> None:
    """Raise IntegrityError when the open file is not the state `entry` describes (size, and mtime to
    the microsecond an Entry keeps)."""
    if entry.size is not None and st.st_size != entry.size:
        raise IntegrityError(f"{entry.path}: the file changed since it was listed", hash_type="size",
                             expected=str(entry.size), actual=str(st.st_size))
    if entry.modified is not None:
        listed_us = round(entry.modified.timestamp() * 1_000_000)
        if abs(listed_us - st.st_mtime_ns // 1000) > 2:
            raise IntegrityError(f"{entry.path}: the file changed since it was listed", hash_type="mtime",
                                 expected=entry.modified.isoformat(), actual=_utc(st.st_mtime_ns).isoformat())


def check_name(name: str) -> None:
    """Raise PermanentError for a name that cannot be one path component."""
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        raise PermanentError(f"invalid file name {name!r}")


class LocalProvider:
    """A folder tree on this machine. Thread-safe: holds no mutable state after construction."""

    hash_types: frozenset[HashType] = frozenset()  # reports none; computes any (content_hasher)

    def __init__(self, root: Path | str, *, name: str = "local") -> None:
        self.root_path = Path(os.path.abspath(os.path.expanduser(root)))
        if not self.root_path.is_dir():
            raise UserError(f"local root {str(self.root_path)!r} is not an existing folder")
        self._real_root = os.path.realpath(self.root_path)
        self.name = name
        self.xattrs = _xattrs_supported(self.root_path)
        self.features = Features(properties=self if self.xattrs else None, mod_time=self, content_hasher=self,
                                 illegal_name_chars="/\0")

    @classmethod
    def from_remote_config(cls, section: Mapping[str, Any], *, name: str, state_dir: Path) -> LocalProvider:
        """Build from a `[remotes.NAME]` section with `type = "local"` and `root = "/some/folder"`."""
        root = section.get("root")
        if not root:
            raise UserError(f"remote {name!r}: missing required key 'root' (the local folder)")
        return cls(Path(str(root)), name=name)

    # --- paths ----------------------------------------------------------------------------------------

    def relpath(self, path: str) -> str:
        """Normalise a path to 'a/b' form (relative to the root). Raises UserError for '..' or NUL."""
        if "\0" in path:
            raise UserError(f"path {path!r} contains a NUL byte")
        # A leading slash means "from the provider root" (specs like `backup:/Documents`), so an
        # absolute path cannot reach outside it; only '..' could.
        parts = [p for p in path.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise UserError(f"path {path!r} escapes the root {str(self.root_path)!r}")
        return "/".join(parts)

    def local_path(self, rel: str) -> Path:
        """The filesystem path for `rel`. Raises PermissionDeniedError if symlinks lead outside the root."""
        full = self.root_path / rel if rel else self.root_path
        if rel:
            real = os.path.realpath(full)
            if real != self._real_root and not real.startswith(self._real_root.rstrip("/") + "/"):
                raise PermissionDeniedError(f"{rel!r} leads outside the root {str(self.root_path)!r}")
        return full

    def _entry(self, rel: str, full: Path, st: os.stat_result | None = None) -> Entry:
        if st is None:
            try:
                st = os.stat(full, follow_symlinks=False)
            except FileNotFoundError:
                raise NotFoundError(f"{rel or '/'} not found in {self.name}") from None
        name = rel.rsplit("/", 1)[-1]
        parent = rel.rsplit("/", 1)[0] if "/" in rel else ("" if rel else None)
        if stat_mod.S_ISLNK(st.st_mode):
            try:
                self.local_path(rel)
                st = os.stat(full)
            except (PermissionDeniedError, OSError):
                return Entry(id=rel, path=rel, name=name, kind=Kind.SHORTCUT, parent_id=parent,
                             modified=_utc(st.st_mtime_ns))
        is_dir = stat_mod.S_ISDIR(st.st_mode)
        if not is_dir and not stat_mod.S_ISREG(st.st_mode):
            # FIFOs, sockets, devices: reading one could block forever or never end
            raise UnsupportedError(f"{rel} is not a regular file or folder")
        return Entry(id=rel, path=rel, name=name, kind=Kind.FOLDER if is_dir else Kind.FILE,
                     size=None if is_dir else st.st_size, modified=_utc(st.st_mtime_ns),
                     mime_type=None if is_dir else mimetypes.guess_type(name)[0],
                     properties=self._properties(full), parent_id=parent,
                     change_stamp=None if is_dir else f"{st.st_ctime_ns}:{st.st_ino}")

    def _properties(self, full: Path) -> Mapping[str, str]:
        if not self.xattrs:
            return _NO_PROPERTIES
        try:
            names = [n for n in os.listxattr(full) if n.startswith(XATTR_PREFIX)]
            if not names:
                return _NO_PROPERTIES
            return MappingProxyType({n[len(XATTR_PREFIX):]: os.getxattr(full, n).decode("utf-8", "replace")
                                     for n in names})
        except OSError:
            return _NO_PROPERTIES

    # --- the core --------------------------------------------------------------------------------------

    def root(self) -> Entry:
        return self._entry("", self.root_path)

    def stat(self, path: str) -> Entry:
        """The entry at `path`. Raises NotFoundError, UserError ('..'), PermissionDeniedError (escape)."""
        rel = self.relpath(path)
        full = self.root_path / rel if rel else self.root_path
        if not os.path.lexists(full):
            raise NotFoundError(f"{rel or '/'} not found in {self.name}")
        # an ancestor may be a symlink out of the root; the item itself may be one (-> SHORTCUT)
        self.local_path(rel.rsplit("/", 1)[0] if "/" in rel else "")
        return self._entry(rel, full)

    def list(self, folder: Entry) -> Iterator[Entry]:
        """Children in directory order, streamed; upload temp files are hidden. Raises NotFoundError."""
        full = self.local_path(folder.path)
        try:
            it = os.scandir(full)
        except FileNotFoundError:
            raise NotFoundError(f"{folder.path or '/'} not found in {self.name}") from None
        except NotADirectoryError:
            raise PermanentError(f"{folder.path} is not a folder") from None
        with it:
            for d in it:
                if d.name.startswith(".") and PARTIAL_MARK in d.name:
                    continue
                rel = f"{folder.path}/{d.name}" if folder.path else d.name
                try:
                    yield self._entry(rel, Path(d.path), d.stat(follow_symlinks=False))
                except (FileNotFoundError, NotFoundError):
                    continue  # removed while we listed
                except UnsupportedError:
                    log.info("skipping %s: not a regular file or folder", rel)

    def open_range(self, entry: Entry, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Bytes [start, end) in blocks of at most 1 MiB. Raises NotFoundError, UnsupportedError."""
        if entry.kind is not Kind.FILE:
            raise UnsupportedError(f"{entry.path} is a {entry.kind}, which has no bytes to read")
        if start < 0 or (end is not None and end < start):
            raise ValueError(f"bad range [{start}, {end})")
        full = self.local_path(entry.path)
        try:
            fh = open(full, "rb", buffering=0)
        except FileNotFoundError:
            raise NotFoundError(f"{entry.path} not found in {self.name}") from None
        with fh:
            before = os.fstat(fh.fileno())
            _same_as_entry(entry, before)
            yield from iter_range(fh, start, end, READ_BLOCK_BYTES)
            after = os.fstat(fh.fileno())
            try:
                now_ino = os.stat(full).st_ino
            except FileNotFoundError:
                now_ino = -1
            if _identity(before) != _identity(after) or now_ino != before.st_ino:
                raise IntegrityError(f"{entry.path}: the file changed while it was read", hash_type="fstat",
                                     expected=_describe(before), actual=_describe(after, now_ino))

    def begin_upload(self, parent: Entry, name: str, size: int, meta: UploadMeta) -> UploadSession:
        from driveferry.providers.local_upload import LocalUpload
        check_name(name)
        return LocalUpload.begin(self, parent, name, size, meta)

    def resume_upload(self, token: str) -> UploadSession:
        from driveferry.providers.local_upload import LocalUpload
        return LocalUpload.resume(self, token)

    def mkdir(self, parent: Entry, name: str) -> Entry:
        """Create folder `name` under `parent`, or return it if it exists. AlreadyExistsError if a file."""
        check_name(name)
        rel = f"{parent.path}/{name}" if parent.path else name
        full = self.local_path(parent.path) / name
        try:
            os.mkdir(full)
        except FileExistsError:
            entry = self.stat(rel)
            if entry.kind is not Kind.FOLDER:
                raise AlreadyExistsError(f"{rel} exists and is not a folder") from None
            return entry
        except FileNotFoundError:
            raise NotFoundError(f"parent folder {parent.path or '/'} not found in {self.name}") from None
        return self._entry(rel, full)

    def delete(self, entry: Entry) -> None:
        """Remove a file, or a folder with everything in it (symlinks inside are removed, not followed)."""
        rel = self.relpath(entry.path)
        if not rel:
            raise PermissionDeniedError("refusing to delete the provider root")
        full = self.root_path / rel
        self.local_path(rel.rsplit("/", 1)[0] if "/" in rel else "")
        try:
            if full.is_dir() and not full.is_symlink():
                shutil.rmtree(full)
            else:
                os.unlink(full)
        except FileNotFoundError:
            raise NotFoundError(f"{rel} not found in {self.name}") from None

    # --- optional capabilities ---------------------------------------------------------------------------

    def hash_file(self, entry: Entry, kinds: Iterable[HashType]) -> dict[HashType, str]:
        """Read the file once and return the requested digests (lowercase hex). Raises NotFoundError."""
        if entry.kind is not Kind.FILE:
            raise UnsupportedError(f"{entry.path} is a {entry.kind}, which has no content hash")
        try:
            return hash_path(self.local_path(entry.path), kinds)
        except FileNotFoundError:
            raise NotFoundError(f"{entry.path} not found in {self.name}") from None

    def set_modified(self, entry: Entry, modified: datetime) -> Entry:
        full = self.local_path(entry.path)
        ns = int(modified.timestamp() * 1_000_000_000)
        os.utime(full, ns=(ns, ns))
        return self._entry(entry.path, full)

    def set_properties(self, entry: Entry, properties: Mapping[str, str]) -> Entry:
        """Store properties as `user.driveferry.<key>` xattrs; an empty value removes the key."""
        full = self.local_path(entry.path)
        write_properties(full, properties)
        return self._entry(entry.path, full)


def write_properties(full: Path, properties: Mapping[str, str]) -> None:
    for key, value in properties.items():
        attr = XATTR_PREFIX + key
        if value:
            os.setxattr(full, attr, value.encode("utf-8"))
        else:
            try:
                os.removexattr(full, attr)
            except OSError as exc:
                if exc.errno != errno.ENODATA:
                    raise
