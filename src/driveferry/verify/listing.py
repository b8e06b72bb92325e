"""Folder listers for `verify.merge`: a local folder (os.scandir) and a remote one (the provider's API).

`RemoteLister` lists the next folders ahead, on `checkers` threads (rclone's `--checkers`), so a
verify at real-service latency (100-300 ms a listing) does not wait one round trip per folder.
The merge visits a folder's subfolders first to last, depth first, so after listing a folder the
lister starts its first subfolders' listings. At most `checkers` listings are ever started and not
yet consumed (`peak_ahead` records it): memory stays bounded by that many folders' listings.
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType

from driveferry.providers.base import Entry, Kind, Provider
from driveferry.verify.merge import Listing

__all__ = ["LocalLister", "RemoteLister"]


class LocalLister:
    """Lists a local folder: regular files and folders, symlinks neither followed nor reported (as
    scan.iter_tree). A folder that cannot be listed is recorded in `unlisted` as (rel, message) and
    treated as empty: its files are unknown, not absent, and the caller reports that."""

    def __init__(self) -> None:
        self.unlisted: list[tuple[str, str]] = []

    def __call__(self, path: str, rel: str) -> Listing[str, str]:
        out: Listing[str, str] = Listing()
        try:
            with os.scandir(path) as it:
                for e in it:
                    if e.is_dir(follow_symlinks=False):
                        out.folders.append((e.name, e.path))
                    elif e.is_file(follow_symlinks=False):
                        out.files.append((e.name, e.path))
        except OSError as exc:
            self.unlisted.append((rel or ".", f"{type(exc).__name__}: {exc.strerror or exc}"))
        return out


def _listed(provider: Provider, folder: Entry) -> Listing[Entry, Entry]:
    out: Listing[Entry, Entry] = Listing()
    for e in provider.list(folder):
        (out.folders if e.kind is Kind.FOLDER else out.files).append((e.name, e))
    return out


class RemoteLister:
    """Lists a remote folder: folders to descend, every other kind as an item (module doc).

    Use as a context manager (the threads are stopped on exit). A listing's error is raised to the
    caller of the folder it belongs to.
    """

    def __init__(self, provider: Provider, checkers: int = 8) -> None:
        self.provider = provider
        self.checkers = max(1, checkers)
        self.peak_ahead = 0
        self._ahead: dict[str, Future[Listing[Entry, Entry]]] = {}
        self._pool = ThreadPoolExecutor(max_workers=self.checkers, thread_name_prefix="df-verify-list") \
            if self.checkers > 1 else None

    def __call__(self, folder: Entry, _rel: str) -> Listing[Entry, Entry]:
        fut = self._ahead.pop(folder.id, None)
        listing = fut.result() if fut is not None else _listed(self.provider, folder)
        if self._pool is not None:
            for _name, sub in sorted(listing.folders, key=lambda x: x[0]):
                if len(self._ahead) >= self.checkers:
                    break
                if sub.id not in self._ahead:
                    self._ahead[sub.id] = self._pool.submit(_listed, self.provider, sub)
            self.peak_ahead = max(self.peak_ahead, len(self._ahead))
        return listing

    def __enter__(self) -> RemoteLister:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self._ahead.clear()
