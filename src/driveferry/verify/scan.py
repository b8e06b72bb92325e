"""Scan a local tree: content hashes (in parallel, through the hash cache) and zero-content facts per file.

`scan(root, kinds)` walks `root` (regular files only; symlinks are not followed), looks every file up in
the `HashCache`, and hashes the rest on a bounded thread pool: hashlib, xxhash and the quickXor fold release
the GIL on large buffers, so threads scale across cores without processes. Each file is read once, in
blocks, and the same pass measures its all-zero tail (so `integrity.zeros.scan_zeros`, a second read,
is not used); sparse holes come from `integrity.zeros.find_holes` (SEEK_DATA/SEEK_HOLE, no data read).

`choose_hash(remote_hash_types)` picks the one hash a verify run computes: the remote's hash that is
strongest and still fast on this CPU (SHA-256 over SHA-1/MD5 unless it is more than 25 % slower); the
hash cache keeps that choice for later runs (`HashCache.choice`).

Contract: `scan` never raises for one unreadable file; it returns a `LocalFile` with `error` set and no
hashes, so the classifier reports it as unverifiable rather than skipping it (the checker reports every
finding). It raises `UserError` when `root` is not a directory.
"""

from __future__ import annotations

import functools
import os
import stat as stat_mod
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from driveferry.errors import UnsupportedError, UserError
from driveferry.integrity.hashes import HashType, MultiHasher
from driveferry.integrity.zeros import find_holes
from driveferry.verify.cache import FileKey, HashCache, ZeroFacts

__all__ = ["LocalFile", "ScanResult", "Scanner", "ZeroFacts", "choose_hash", "measure_hash_speeds", "scan",
           "iter_tree", "zero_facts_of", "DEFAULT_BLOCK_SIZE", "DEFAULT_SETTLE_S"]

DEFAULT_BLOCK_SIZE = 4 << 20
# Longer than rclone mount's default --attr-timeout (1 s), for which the kernel keeps a FUSE file's
# attributes (rclone cmd/mountlib/mount.md, "--attr-timeout"); see `_hash_stable`.
DEFAULT_SETTLE_S = 1.5
_ATTEMPTS = 2
# SHA-256 is chosen over a faster MD5/SHA-1 while it keeps at least this share of the fastest's speed.
# Far from both kinds of CPU: with SHA extensions SHA-256 runs at ~0.9 of SHA-1 (0.55 against 0.49 s/GiB
# on a Xeon, benchmarks/README.md), without them at ~0.3-0.45. At 0.85 a timing taken under load picked
# either on a SHA-NI machine.
SHA256_TOLERANCE = 0.75
_CRYPTO_ORDER = (HashType.SHA256, HashType.SHA1, HashType.MD5)

Progress = Callable[[int], None]


@dataclass(frozen=True)
class LocalFile:
    """One local regular file as scanned.

    path: POSIX path relative to the scan root. mtime: UTC. hashes: lowercase hex per requested type
    (empty when `error` is set). cached: the hashes came from the cache, no bytes were read.
    changed_during_scan: the file's stat (size, mtime, ctime, inode) before it was opened differed from its
    stat after it was closed, on a second look too (`_hash_stable`): its hashes describe no single state.
    """

    path: str
    size: int
    mtime: datetime
    hashes: Mapping[HashType, str]
    zeros: ZeroFacts
    cached: bool = False
    changed_during_scan: bool = False
    error: str | None = None


@dataclass(frozen=True)
class ScanResult:
    files: tuple[LocalFile, ...]
    hashed_files: int  # files whose bytes were read this run
    cached_files: int  # files answered from the cache
    hashed_bytes: int
    elapsed_s: float
    # Folders that could not be listed: (relative path, message). Their files are unknown, not absent;
    # the caller must report these (a verify with unlisted folders has not checked everything).
    unlisted: tuple[tuple[str, str], ...] = ()


@functools.cache
def measure_hash_speeds(sample_bytes: int = 8 << 20) -> Mapping[HashType, float]:
    """Bytes per second of MD5, SHA-1 and SHA-256 on this CPU, measured once per process (best of 3)."""
    buf = os.urandom(sample_bytes)
    speeds: dict[HashType, float] = {}
    for kind in _CRYPTO_ORDER:
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            MultiHasher([kind]).update(buf)
            best = min(best, time.perf_counter() - t0)
        speeds[kind] = sample_bytes / max(best, 1e-9)
    return speeds


def choose_hash(remote_hash_types: Iterable[HashType],
                speeds: Mapping[HashType, float] | None = None) -> HashType:
    """The hash to compute locally so it can be compared with what the remote reports.

    Among the remote's cryptographic hashes: SHA-256 when its speed is within SHA256_TOLERANCE of the
    fastest, else the fastest. quickXorHash only when the remote reports nothing stronger (OneDrive).
    Raises UnsupportedError when the remote reports no content hash at all.
    """
    remote = frozenset(remote_hash_types)
    usable = [k for k in _CRYPTO_ORDER if k in remote]
    if not usable:
        if HashType.QUICKXOR in remote:
            return HashType.QUICKXOR
        raise UnsupportedError("the remote reports no content hash; files can only be unverifiable")
    if len(usable) == 1:
        return usable[0]
    rate = speeds if speeds is not None else measure_hash_speeds()
    fastest = max(usable, key=lambda k: rate[k])
    if HashType.SHA256 in usable and rate[HashType.SHA256] >= SHA256_TOLERANCE * rate[fastest]:
        return HashType.SHA256
    return fastest


def iter_tree(root: Path, errors: list[tuple[str, str]] | None = None) -> Iterator[tuple[str, os.DirEntry[str]]]:
    """(relative POSIX path, entry) of every regular file under `root`, sorted per directory.

    Symlinks are neither followed nor reported: a link's target is another file's business. A folder
    that cannot be listed is appended to `errors` as (relative folder path, message) and skipped, so
    one unreadable folder does not end the walk; without `errors` the OSError propagates.
    """
    stack = [(root, "")]
    while stack:
        folder, prefix = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            if errors is None:
                raise
            errors.append((prefix.rstrip("/") or ".", _describe(exc)))
            continue
        for e in reversed(entries):
            if e.is_dir(follow_symlinks=False):
                stack.append((Path(e.path), f"{prefix}{e.name}/"))
        for e in entries:
            if e.is_file(follow_symlinks=False):
                yield f"{prefix}{e.name}", e


def _holes(fd: int, size: int) -> tuple[int, int]:
    """(count, bytes) of sparse holes (integrity.zeros.find_holes; (0, 0) where the filesystem can't say)."""
    holes, _supported = find_holes(fd, size)
    return len(holes), sum(end - start for start, end in holes)


def zero_facts_of(zero_tail_bytes: int, size: int, holes: tuple[int, int]) -> ZeroFacts:
    return ZeroFacts(zero_tail_bytes=zero_tail_bytes, all_zero=size > 0 and zero_tail_bytes == size,
                     hole_count=holes[0], hole_bytes=holes[1])


_local = threading.local()


def _buffer(block_size: int) -> bytearray:
    # One reusable block per worker thread: no allocation per read.
    buf: bytearray | None = getattr(_local, "buf", None)
    if buf is None or len(buf) != block_size:
        buf = bytearray(block_size)
        _local.buf = buf
    return buf


def _hash_file(abs_path: str, kinds: Collection[HashType], block_size: int, size_hint: int,
               progress: Progress | None) -> tuple[dict[HashType, str], ZeroFacts]:
    """Hash one file in one pass and measure its zero tail (holes probed up to `size_hint`).

    No fstat of the open descriptor: its answer is no judge of stability (see `_hash_stable`), and on
    FUSE it would refresh the kernel's attribute cache with the open handle's view.
    """
    hasher = MultiHasher(kinds)
    buf = _buffer(block_size)
    view = memoryview(buf)
    tail = size = 0
    with open(abs_path, "rb", buffering=0) as f:
        holes = _holes(f.fileno(), size_hint)
        f.seek(0)
        while n := f.readinto(buf):
            chunk = view[:n]  # every hasher takes a buffer: no copy
            hasher.update(chunk)
            size += n
            if buf[n - 1]:
                tail = 0  # common case for real data: O(1), no scan of the block
            else:
                stripped = len(bytes(chunk).rstrip(b"\0"))
                tail = tail + n if stripped == 0 else n - stripped
            if progress is not None:
                progress(n)
    return hasher.hexdigests(), zero_facts_of(tail, size, holes)


@dataclass(frozen=True)
class _Hashed:
    hashes: dict[HashType, str]
    zeros: ZeroFacts
    before: os.stat_result  # stat before the open of the attempt whose result this is
    after: os.stat_result  # stat after its close
    began_ns: int  # time.time_ns() at that open (for the cache's racy check)
    changed: bool


def _hash_stable(abs_path: str, first: os.stat_result, kinds: Collection[HashType], block_size: int,
                 progress: Progress | None, settle_s: float) -> _Hashed:
    """Hash a file and judge whether one state of it was read: `os.stat` before the open and after the
    close must agree (size, mtime, ctime, device, inode).

    Neither fstat while open nor one stat right after close is a judge on FUSE: rclone's VFS cache reports
    a file queued for upload with a moving mtime while any handle is open, and the kernel keeps such
    attributes for the mount's attribute timeout (rclone's --attr-timeout, 1 s by default), so a stat just
    after a close (ours, or the downloader's) can still show them. So a disagreement is looked at again
    after `settle_s`: first the stat after close, then, if that still differs, one whole new attempt
    (stat, read, stat). A file a writer keeps changing still differs and is reported as changed.
    """
    before = first
    attempt = 0
    while True:
        began_ns = time.time_ns()
        hashes, zeros = _hash_file(abs_path, kinds, block_size, before.st_size, progress)
        after = os.stat(abs_path, follow_symlinks=False)
        if _key(after) != _key(before) and settle_s > 0:
            time.sleep(settle_s)
            after = os.stat(abs_path, follow_symlinks=False)
        changed = _key(after) != _key(before)
        attempt += 1
        if not changed or attempt >= _ATTEMPTS:
            return _Hashed(hashes, zeros, before, after, began_ns, changed)
        time.sleep(settle_s)
        before = os.stat(abs_path, follow_symlinks=False)


def _utc(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC)


def _key(st: os.stat_result) -> FileKey:
    return FileKey(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class Scanner:
    """Hash files as they are offered, on a bounded thread pool, answered in the order offered.

    `start(rel, abs_path)` stats the file, answers it from the cache when unchanged (same device,
    inode, size, mtime_ns, ctime_ns) and otherwise hands it to the pool; it returns a resolver that
    gives the `LocalFile` (waiting for its hash), or None for something that is not a regular file.
    A caller keeps at most `window` resolvers unresolved: memory stays O(workers), not O(files).
    `progress(n)` is called with each block's byte count as it is read (serialised under a lock, so a
    tqdm bar can be updated directly; a file read a second time, see `_hash_stable`, counts twice).
    Use as a context manager; leaving it commits the cache.
    """

    def __init__(self, kinds: Collection[HashType], *, cache: HashCache | None = None,
                 workers: int | None = None, block_size: int = DEFAULT_BLOCK_SIZE,
                 progress: Progress | None = None, settle_s: float = DEFAULT_SETTLE_S) -> None:
        self.kinds = frozenset(kinds)
        self.cache = cache
        self.workers = workers or min(32, os.cpu_count() or 1)
        self.window = self.workers * 4
        self.hashed_files = self.cached_files = self.hashed_bytes = 0
        self._block_size = block_size
        self._settle_s = settle_s
        self._progress = progress
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="df-scan")

    def _report(self, n: int) -> None:
        if self._progress is not None:
            with self._lock:
                self._progress(n)

    def start(self, rel: str, abs_path: str) -> Callable[[], LocalFile | None]:
        try:
            st = os.stat(abs_path, follow_symlinks=False)
        except OSError as exc:
            failed = LocalFile(rel, 0, _utc(0), {}, ZeroFacts(), error=_describe(exc))
            return lambda: failed
        if not stat_mod.S_ISREG(st.st_mode):
            return lambda: None
        hit = self.cache.get(_key(st), self.kinds) if self.cache is not None else None
        if hit is not None:
            self.cached_files += 1
            self._report(st.st_size)
            found = LocalFile(rel, st.st_size, _utc(st.st_mtime_ns), hit[0], hit[1], cached=True)
            return lambda: found
        fut = self._pool.submit(_hash_stable, abs_path, st, self.kinds, self._block_size, self._report,
                                self._settle_s)
        return functools.partial(self._finish, rel, st, fut)

    def _finish(self, rel: str, first: os.stat_result, fut: Future[_Hashed]) -> LocalFile:
        try:
            h = fut.result()
        except OSError as exc:
            return _unreadable(rel, first, exc)
        self.hashed_files += 1
        self.hashed_bytes += h.after.st_size
        if self.cache is not None and not h.changed:
            self.cache.put(_key(h.before), h.hashes, h.zeros, recorded_ns=h.began_ns)
        return LocalFile(rel, h.after.st_size, _utc(h.after.st_mtime_ns), h.hashes, h.zeros,
                         changed_during_scan=h.changed)

    def __enter__(self) -> Scanner:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        if self.cache is not None:
            self.cache.commit()


def scan(root: Path | str, kinds: Collection[HashType], *, cache: HashCache | None = None,
         workers: int | None = None, block_size: int = DEFAULT_BLOCK_SIZE,
         progress: Progress | None = None, files: Iterable[str] | None = None,
         settle_s: float = DEFAULT_SETTLE_S) -> ScanResult:
    """Hash every regular file under `root` (or only `files`, relative paths) with `kinds` (`Scanner`).

    `settle_s`: how long a file whose stat moved while it was read is left before it is looked at
    again. Results are sorted by path; they are all held, so a caller verifying a tree of any size
    streams through `Scanner` instead (verify.compare does).
    """
    top = Path(root)
    if not top.is_dir():
        raise UserError(f"not a directory: {top}")
    started = time.perf_counter()
    out: list[LocalFile] = []
    unlisted: list[tuple[str, str]] = []
    todo = ((p, str(top / p)) for p in files) if files is not None else (
        (p, e.path) for p, e in iter_tree(top, unlisted))
    window: deque[Callable[[], LocalFile | None]] = deque()
    with Scanner(kinds, cache=cache, workers=workers, block_size=block_size, progress=progress,
                 settle_s=settle_s) as scanner:
        for rel, abs_path in todo:
            window.append(scanner.start(rel, abs_path))
            while len(window) >= scanner.window:
                if (found := window.popleft()()) is not None:
                    out.append(found)
        while window:
            if (found := window.popleft()()) is not None:
                out.append(found)
    out.sort(key=lambda f: f.path)
    return ScanResult(tuple(out), scanner.hashed_files, scanner.cached_files, scanner.hashed_bytes,
                      time.perf_counter() - started, tuple(unlisted))


def _describe(exc: OSError) -> str:
    # The class and the OS message, without the absolute path (reports show the relative one).
    return f"{type(exc).__name__}: {exc.strerror or exc}"


def _unreadable(rel: str, st: os.stat_result, exc: OSError) -> LocalFile:
    return LocalFile(rel, st.st_size, _utc(st.st_mtime_ns), {}, ZeroFacts(), error=_describe(exc))
