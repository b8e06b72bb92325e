"""The provider contract: one small interface every remote (and the local filesystem) implements.

Core (required): list, stat, open_range, begin_upload, resume_upload, mkdir, delete.
Optional capabilities are declared in `Features` and asked for before use; nothing above `providers/`
compares a provider's name. Helpers built on the core (walk, ensure_dirs, resolve) live in `ops.py`.

Paths are POSIX-style, relative to the provider's root, without a leading slash ("" is the root).
Times are timezone-aware UTC. Hashes are lowercase hex keyed by HashType.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Protocol, runtime_checkable

from driveferry.integrity.hashes import Buffer, HashType

_EMPTY: Mapping[str, str] = MappingProxyType({})


class Kind(enum.StrEnum):
    FILE = "file"
    FOLDER = "folder"
    NATIVE_DOC = "native_doc"  # Google Docs/Sheets/...: no bytes, no hashes; export only
    PACKAGE = "package"  # OneNote notebooks: neither a file nor a folder, cannot be downloaded
    SHORTCUT = "shortcut"


@dataclass(frozen=True)
class Entry:
    """One item on a remote, as the remote reports it (normalised at the edge)."""

    id: str
    path: str
    name: str
    kind: Kind
    size: int | None = None
    modified: datetime | None = None
    mime_type: str | None = None
    hashes: Mapping[HashType, str] = field(default_factory=lambda: MappingProxyType({}))
    properties: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    parent_id: str | None = None
    created: datetime | None = None  # creation time as the remote reports it, when it keeps one
    # a token that changes whenever the content may have, where the provider has one finer than size
    # and mtime (local: ctime and inode, which a rewrite that restores the mtime still moves, as
    # restic's change detection uses them); None elsewhere
    change_stamp: str | None = None

    @property
    def is_dir(self) -> bool:
        return self.kind is Kind.FOLDER


@dataclass(frozen=True)
class UploadMeta:
    """What an upload carries besides bytes: modified and created time, MIME type and provenance properties."""

    modified: datetime | None = None
    created: datetime | None = None  # set where the destination accepts it (Drive, Graph's fileSystemInfo)
    mime_type: str | None = None
    properties: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    replace: bool = False  # replace a same-named file instead of adding one (conflict behaviour)
    # the caller hands the whole file to one `send(0, data, True)`: an adapter may then make the upload
    # one request (Drive: multipart), whose token resumes only an upload that already finished
    one_send: bool = False
    # with one_send: the token of a session begun earlier for this very file (same parent, name, size)
    # on a destination with `Features.one_request_ids`, whose id the upload then takes (the caller
    # recorded that token before any byte went: see migrate/workers.py `_reserve`)
    upload_token: str | None = None


@runtime_checkable
class UploadSession(Protocol):
    """A resumable upload. `token` is JSON text that `Provider.resume_upload` accepts in another process.

    `send` is idempotent per offset: re-sending bytes the server already holds is harmless. It returns
    the finished Entry after the last chunk, else None. After any doubt (timeout, reset), ask
    `committed()`: never trust a local counter. `chunk` may be any bytes-like buffer (bytes, bytearray,
    memoryview) and is valid only during the call: the caller refills it afterwards, so an adapter must
    not keep a reference to it (or copy it) beyond `send`.
    """

    token: str
    size: int
    chunk_multiple: int

    def committed(self) -> int: ...

    def send(self, offset: int, chunk: Buffer, last: bool) -> Entry | None: ...

    def abort(self) -> None: ...


@runtime_checkable
class PropertySetter(Protocol):
    def set_properties(self, entry: Entry, properties: Mapping[str, str]) -> Entry: ...


@runtime_checkable
class ModTimeSetter(Protocol):
    def set_modified(self, entry: Entry, modified: datetime) -> Entry: ...


@runtime_checkable
class PropertyLookup(Protocol):
    def find_by_property(self, folder: Entry, key: str, value: str) -> list[Entry]:
        """Files in `folder` that carry the shared property `key` = `value`, found by a query rather
        than by reading the whole listing (Drive: `properties has {key=... and value=...}`)."""
        ...


@runtime_checkable
class ItemById(Protocol):
    def live(self, item_id: str) -> bool:
        """Whether the item exists and is not trashed, asked by id: on Drive files.get, which sees an
        item at once, unlike listings (api-notes Part C §20)."""
        ...

    def entry(self, item_id: str, parent_path: str) -> Entry | None:
        """The item by id as a listing of its folder (at `parent_path`) would report it, or None when
        it is gone or trashed (files.get, which sees it at once)."""
        ...


@runtime_checkable
class DeltaLister(Protocol):
    def delta(self, cursor: str | None) -> tuple[list[Entry], str]:
        """Changes since `cursor` (None: everything), and the cursor for next time."""
        ...

    def latest_cursor(self) -> str:
        """A cursor for changes from now on, without listing anything."""
        ...


@runtime_checkable
class ContentHasher(Protocol):
    def hash_file(self, entry: Entry, kinds: Iterable[HashType]) -> dict[HashType, str]:
        """Compute (not look up) the content hashes of a file, lowercase hex. For providers whose
        `stat` reports no hashes because computing them needs a full read (the local filesystem)."""
        ...


@dataclass(frozen=True)
class FileVersion:
    """A previous version of a file on a source, as listed: Graph's driveItemVersion carries no hash."""

    id: str
    size: int
    modified: datetime | None = None


@runtime_checkable
class VersionReader(Protocol):
    def previous_versions(self, entry: Entry) -> list[FileVersion]:
        """The file's previous versions, oldest first; its current content is not among them."""
        ...

    def open_version(self, entry: Entry, version: FileVersion) -> Iterator[bytes]:
        """A previous version's bytes, whole, as successive chunks."""
        ...


@dataclass(frozen=True)
class FileRevision:
    """One revision of a destination file: its id, size, MD5 where reported, and whether it is kept
    from the destination's own pruning."""

    id: str
    size: int
    md5: str | None = None
    keep_forever: bool = False


@runtime_checkable
class RevisionWriter(Protocol):
    def begin_revision(self, entry: Entry, size: int, meta: UploadMeta) -> UploadSession:
        """An upload of new content for the existing file `entry`: its new head revision, same id."""
        ...

    def revisions(self, entry: Entry) -> list[FileRevision]:
        """The file's revisions, oldest first, the head (its current content) last."""
        ...

    def keep_revision(self, entry: Entry, revision_id: str) -> None:
        """Protect a revision from the destination's pruning of old revisions."""
        ...

    def delete_revision(self, entry: Entry, revision_id: str) -> None: ...

    def open_revision(self, entry: Entry, revision_id: str) -> Iterator[bytes]: ...


@dataclass(frozen=True)
class ExportFormat:
    """One conversion of a native document (no bytes of its own): the MIME type asked for and the
    extension the copy's name gets (with its dot, ".docx")."""

    mime_type: str
    extension: str


@runtime_checkable
class Exporter(Protocol):
    def export_format(self, entry: Entry, choice: str) -> ExportFormat | None:
        """The format `choice` ("office" or "pdf") means for this native document; None when the remote
        offers no such conversion for its type."""
        ...

    def format_named(self, name: str) -> ExportFormat | None:
        """The format whose extension ends `name` (a planned destination name), or None."""
        ...

    def export(self, entry: Entry, fmt: ExportFormat) -> bytes:
        """The converted content, whole. Raises UnsupportedError when the remote refuses the conversion
        (Drive: over its export size cap)."""
        ...


@dataclass(frozen=True)
class Permission:
    """One sharing permission on an item, as its remote reports it (normalised at the edge).

    kind: "user" | "group" | "domain" | "anyone", or "link" (a OneDrive sharing link, see link_scope).
    role: the remote's own role name (OneDrive: the widest of read | write | owner; Drive: reader |
    commenter | writer | fileOrganizer | organizer | owner).
    address: the e-mail address (user, group) or domain name (domain); "" for anyone and links.
    link_scope / link_type: a link's audience (anonymous | organization | users) and kind (view | edit |
    embed | ...); recipients: the addresses a users-scope link was made for.
    inherited_from: the id of the ancestor the item has it from; None for the item's own.
    """

    kind: str
    role: str
    address: str = ""
    id: str = ""
    link_scope: str = ""
    link_type: str = ""
    recipients: tuple[str, ...] = ()
    inherited_from: str | None = None
    has_password: bool = False
    expires: str | None = None  # RFC 3339, when the grant ends


@runtime_checkable
class SharingReader(Protocol):
    def list_permissions(self, entry: Entry) -> list[Permission]:
        """Every permission the item has: its own and those inherited from its ancestors."""
        ...


PermissionsRead = list[Permission] | Exception  # an item's permissions, or why they could not be read


@runtime_checkable
class BatchSharingReader(SharingReader, Protocol):
    """A SharingReader that reads many items per request (optional: `read_permissions` falls back)."""

    def read_many(self, entries: Sequence[Entry],
                  into: dict[str, PermissionsRead] | None = None) -> dict[str, PermissionsRead]:
        """Each entry's permissions by entry id, into `into` (a new dict when None), which is returned. An
        item the remote refused for good (gone, forbidden) maps to that error. A transient failure of any
        item raises after the others were stored, so a retry of the same call with the same `into` asks
        only for the items still missing."""
        ...


def read_permissions(reader: SharingReader, entries: Sequence[Entry],
                     into: dict[str, PermissionsRead] | None = None) -> dict[str, PermissionsRead]:
    """`reader.read_many` where the reader has it, else `list_permissions` one item at a time (every
    error then propagates, as from the single read)."""
    if isinstance(reader, BatchSharingReader):
        return reader.read_many(entries, into)
    out = {} if into is None else into
    for entry in entries:
        if entry.id not in out:
            out[entry.id] = reader.list_permissions(entry)
    return out


@runtime_checkable
class SharingWriter(Protocol):
    def list_permissions(self, entry: Entry) -> list[Permission]: ...

    def add_permission(self, entry: Entry, permission: Permission) -> Permission:
        """Grant `permission` (kind user | group | domain | anyone, the remote's role name) without
        notifying anyone; the permission as created. Raises ProviderError when the remote refuses."""
        ...


@dataclass(frozen=True)
class Features:
    """Declared capabilities and facts of one provider.

    chunk_multiple: non-final upload chunks must be a multiple of this many bytes.
    max_chunk: largest chunk one request may carry.
    duplicate_names: whether one folder may hold two items of the same name (Drive: yes).
    daily_upload_cap_bytes: the remote's upload cap per user per rolling 24 h, if it has one.
    properties/mod_time/delta/content_hasher/property_lookup/by_id/exporter: the optional capability
    objects, or None.
    case_insensitive: names in one folder are unique ignoring case (two names differing only in case collide).
    illegal_name_chars: characters a name can never hold there, even after the adapter's own mapping.
    max_path_chars: longest path (folders and name, from this provider's root) the remote accepts, if limited.
    rewrites_office_files: the remote may change Office files as it stores them (SharePoint libraries), so
    their stored size and hash can differ from the bytes sent.
    sharing: the item permissions capability (SharingReader; SharingWriter where grants can be made).
    one_request_ids: the largest new file whose one-request upload takes an id chosen before it (0: none).
    prefetch: readies a batch of downloads at once (DownloadPrefetcher), or None.
    """

    chunk_multiple: int = 1
    max_chunk: int = 1 << 62
    duplicate_names: bool = False
    properties: PropertySetter | None = None
    mod_time: ModTimeSetter | None = None
    delta: DeltaLister | None = None
    content_hasher: ContentHasher | None = None
    case_insensitive: bool = False
    illegal_name_chars: str = ""
    daily_upload_cap_bytes: int | None = None  # Drive: 750 GB per user per rolling 24 h
    property_lookup: PropertyLookup | None = None
    by_id: ItemById | None = None
    exporter: Exporter | None = None
    versions: VersionReader | None = None  # a source's previous versions of a file (Graph /versions)
    revisions: RevisionWriter | None = None  # a destination's revision history of a file (Drive revisions)
    max_path_chars: int | None = None
    rewrites_office_files: bool = False
    sharing: SharingReader | SharingWriter | None = None  # permissions: read (source) or read and grant
    # a new file of at most this many bytes sent in one send (UploadMeta.one_send) is one request under
    # an id chosen before it: begin_upload makes no request, its token names that id, and a later
    # begin_upload with UploadMeta.upload_token takes the same id (Drive: generateIds + multipart)
    one_request_ids: int = 0
    prefetch: DownloadPrefetcher | None = None  # a source that readies a batch's downloads in few requests


@runtime_checkable
class DownloadPrefetcher(Protocol):
    """Readies the downloads of several files at once (Graph: their download URLs, 20 per `$batch`), so
    each file's download needs no request of its own first. A file it leaves out asks for its own; it
    raises TransientError (to be waited out) when the service throttled it."""

    def prefetch(self, entries: Sequence[Entry]) -> int:
        """Ready what `entries` lack; returns how many were readied."""
        ...


class Provider(Protocol):
    name: str
    hash_types: frozenset[HashType]
    features: Features

    def root(self) -> Entry: ...

    def list(self, folder: Entry) -> Iterator[Entry]:
        """Children of `folder`, streamed page by page. Raises NotFoundError."""
        ...

    def stat(self, path: str) -> Entry:
        """The entry at `path` (relative to the provider root). Raises NotFoundError."""
        ...

    def open_range(self, entry: Entry, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Bytes [start, end) of a file as an iterator of chunks; end None means to the end.

        Raises UnsupportedError for items without bytes (native docs, packages).
        """
        ...

    def begin_upload(self, parent: Entry, name: str, size: int, meta: UploadMeta) -> UploadSession: ...

    def resume_upload(self, token: str) -> UploadSession:
        """Re-attach to a session from its token. Raises UploadSessionLostError when it is gone."""
        ...

    def mkdir(self, parent: Entry, name: str) -> Entry:
        """Create (or return the existing) folder `name` under `parent`."""
        ...

    def delete(self, entry: Entry) -> None: ...
