"""Helpers derived from the provider core: walk, resolve, ensure_dirs, whole-file reads and uploads.

Everything here uses only the seven core methods, so it works for every provider, and no provider
needs its own copy. Nothing here holds a whole tree: `walk` streams.
"""

from __future__ import annotations

import posixpath
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from driveferry.errors import AlreadyExistsError, NotFoundError, PermanentError, UserError
from driveferry.providers.base import Entry, Kind, Provider, UploadMeta
from driveferry.providers.streaming import chunk_bytes_for


def normalise_path(path: str) -> str:
    """'/a//b/./c/' -> 'a/b/c'. Raises UserError for '..' (paths never climb above the remote root)."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UserError(f"path {path!r}: '..' is not allowed in remote paths")
    return "/".join(parts)


def resolve(provider: Provider, path: str) -> Entry:
    """The entry at `path` ('' or '/' is the root). Raises NotFoundError, UserError."""
    rel = normalise_path(path)
    return provider.root() if not rel else provider.stat(rel)


def resolve_or_none(provider: Provider, path: str) -> Entry | None:
    try:
        return resolve(provider, path)
    except NotFoundError:
        return None


@dataclass(frozen=True)
class Walked:
    """One item found by `walk`: the entry, its path relative to the walk's start, and its depth (1 = child)."""

    entry: Entry
    rel_path: str
    depth: int


def walk(provider: Provider, folder: Entry, *, include_folders: bool = True,
         max_depth: int | None = None, checkers: int = 1) -> Iterator[Walked]:
    """Everything under `folder`, a folder before its contents, streamed. Only FOLDER entries are
    descended into (shortcuts and packages are yielded, never followed).

    `checkers` 1: depth-first pre-order, iterative, one open listing per level on an explicit stack, so
    neither deep trees nor wide folders (pages are consumed as they come) cost memory beyond that.
    `checkers` N > 1: up to N folders are listed at once (rclone's `--checkers`), which hides the round
    trip of one listing request per folder. Each folder's items are still yielded together, in the
    provider's order (plan.py's duplicate-name check and the namer rely on that); folders come in an
    order close to depth-first but not fixed. Memory: at most N whole folder listings, plus the folders
    found and not yet listed (kept on a stack, so about depth x fan-out of folders).
    """
    if checkers > 1:
        yield from _walk_parallel(provider, folder, include_folders, max_depth, checkers)
        return
    stack: list[tuple[Iterator[Entry], str, int]] = [(iter(provider.list(folder)), "", 1)]
    while stack:
        listing, prefix, depth = stack[-1]
        entry = next(listing, None)
        if entry is None:
            stack.pop()
            continue
        rel = f"{prefix}/{entry.name}" if prefix else entry.name
        if entry.kind is Kind.FOLDER:
            if include_folders:
                yield Walked(entry, rel, depth)
            if max_depth is None or depth < max_depth:
                stack.append((iter(provider.list(entry)), rel, depth + 1))
        else:
            yield Walked(entry, rel, depth)


def _walk_parallel(provider: Provider, folder: Entry, include_folders: bool, max_depth: int | None,
                   checkers: int) -> Iterator[Walked]:
    pending: list[tuple[Entry, str, int]] = [(folder, "", 1)]  # LIFO: close to depth-first, few waiting
    running: deque[tuple[Future[list[Entry]], str, int]] = deque()
    pool = ThreadPoolExecutor(max_workers=checkers, thread_name_prefix="checker")
    try:
        while pending or running:
            while pending and len(running) < checkers:
                entry, prefix, depth = pending.pop()
                running.append((pool.submit(_listed, provider, entry), prefix, depth))
            listing, prefix, depth = running.popleft()
            subfolders: list[tuple[Entry, str, int]] = []
            for entry in listing.result():  # a listing's error is raised here, to the consumer
                rel = f"{prefix}/{entry.name}" if prefix else entry.name
                if entry.kind is Kind.FOLDER:
                    if include_folders:
                        yield Walked(entry, rel, depth)
                    if max_depth is None or depth < max_depth:
                        subfolders.append((entry, rel, depth + 1))
                else:
                    yield Walked(entry, rel, depth)
            pending.extend(reversed(subfolders))  # the first subfolder is listed first
    finally:  # also when the consumer stops early: listings not started are dropped
        pool.shutdown(wait=True, cancel_futures=True)


def _listed(provider: Provider, folder: Entry) -> list[Entry]:
    return list(provider.list(folder))


def walk_files(provider: Provider, folder: Entry, checkers: int = 1) -> Iterator[Walked]:
    """Every non-folder item under `folder` (files, native docs, shortcuts, packages)."""
    return walk(provider, folder, include_folders=False, checkers=checkers)


class DirCache:
    """mkdir -p with memory: each folder is looked up or created once per cache (thread-safe).

    Keys are paths relative to `base`. Concurrent callers creating the same folder are serialised so
    providers that allow duplicate names (Drive) never get two same-named folders from us.
    """

    def __init__(self, provider: Provider, base: Entry | None = None) -> None:
        self.provider = provider
        self._folders: dict[str, Entry] = {"": base or provider.root()}
        self._lock = threading.Lock()

    def ensure(self, path: str) -> Entry:
        """The folder at `path` under the base, created with its parents if missing.

        Raises AlreadyExistsError when a component exists and is not a folder.
        """
        rel = normalise_path(path)
        with self._lock:
            if rel in self._folders:
                return self._folders[rel]
            parent = self._folders[""]
            done = ""
            for part in rel.split("/"):
                done = posixpath.join(done, part) if done else part
                cached = self._folders.get(done)
                if cached is None:
                    cached = self.provider.mkdir(parent, part)
                    if cached.kind is not Kind.FOLDER:
                        raise AlreadyExistsError(f"{done} exists and is not a folder")
                    self._folders[done] = cached
                parent = cached
            return parent

    def known(self, path: str) -> Entry | None:
        """The folder at `path` if this cache looked it up or made it, else None (no request)."""
        with self._lock:
            return self._folders.get(normalise_path(path))


def ensure_dirs(provider: Provider, path: str, cache: DirCache | None = None) -> Entry:
    """mkdir -p `path` from the provider root (or from `cache`'s base). Returns the deepest folder."""
    return (cache or DirCache(provider)).ensure(path)


def read_bytes(provider: Provider, entry: Entry, start: int = 0, end: int | None = None) -> bytes:
    """A whole range in memory: for small files and tests only."""
    return b"".join(provider.open_range(entry, start, end))


def upload_chunks(provider: Provider, parent: Entry, name: str, size: int, chunks: Iterable[bytes],
                  meta: UploadMeta | None = None) -> Entry:
    """Upload `size` bytes given as chunks (each non-final chunk a multiple of the chunk multiple).

    Plain streaming, no integrity gate: the migration relay is the careful path. Raises provider errors.
    """
    session = provider.begin_upload(parent, name, size, meta or UploadMeta())
    offset = 0
    pending: bytes | None = None
    for chunk in chunks:  # one chunk of look-ahead so the last one is sent with last=True
        if pending is not None:
            session.send(offset, pending, False)
            offset += len(pending)
        pending = chunk
    result = session.send(offset, pending or b"", True)
    if result is None:
        result = session.send(size, b"", True)
    if result is None:
        raise PermanentError(f"upload of {name} did not finish after its last chunk")
    return result


def upload_bytes(provider: Provider, parent: Entry, name: str, data: bytes, chunk_size: int | None = None,
                 meta: UploadMeta | None = None) -> Entry:
    """Upload `data` in chunks of `chunk_size` (default: the provider's chunk multiple, at least 8 MiB)."""
    multiple = provider.features.chunk_multiple
    step = chunk_size or chunk_bytes_for(provider.features)
    if step % multiple:
        raise ValueError(f"chunk size {step} is not a multiple of {multiple}")
    chunks = (data[i:i + step] for i in range(0, len(data), step)) if data else iter([b""])
    return upload_chunks(provider, parent, name, len(data), chunks, meta)
