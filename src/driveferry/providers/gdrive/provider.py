"""Google Drive as a driveferry Provider: paths over ids, normalised entries, resumable uploads.

Drive addresses items by id and lets one folder hold several items of the same name. Paths are
resolved one segment at a time (folder ids cached per path); among same-named items the oldest
(createdTime, then id) wins, deterministically, and `duplicates()` shows the rest. Trashed items are
invisible. The root is My Drive, a shared drive (`drive_id`), or a folder below either. Drive allows
'/' inside a name; such an item is listed but cannot be reached by `stat` (paths split on '/').
"""

from __future__ import annotations

import logging
import posixpath
import threading
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from driveferry.errors import (
    AlreadyExistsError,
    NotFoundError,
    PermanentError,
    UnsupportedError,
    UploadSessionLostError,
    UserError,
)
from driveferry.integrity.hashes import HashType
from driveferry.providers.base import Entry, Features, Kind, UploadMeta
from driveferry.providers.gdrive.api import FOLDER_MIME, NATIVE_PREFIX, SHORTCUT_MIME, DriveApi, Raw
from driveferry.providers.gdrive.auth import load_credentials
from driveferry.providers.gdrive.delta import GDriveDelta
from driveferry.providers.gdrive.export import DriveExporter
from driveferry.providers.gdrive.multipart import (
    MULTIPART_MAX_BYTES,
    MultipartSession,
    MultipartToken,
    is_multipart_token,
)
from driveferry.providers.gdrive.permissions import DriveSharing
from driveferry.providers.gdrive.revisions import DriveRevisions
from driveferry.providers.gdrive.shareddrive import resolve_shared_drive
from driveferry.providers.gdrive.upload import CHUNK_MULTIPLE, GDriveUploadSession, SessionToken, initiate
from driveferry.providers.retrying import plain_call

log = logging.getLogger(__name__)

_HASH_FIELDS = {"md5Checksum": HashType.MD5, "sha1Checksum": HashType.SHA1, "sha256Checksum": HashType.SHA256}
DAILY_UPLOAD_CAP_BYTES = 750 * 10**9  # per user per rolling 24 h (Workspace admin help; api-notes 5.2)
MAX_CHUNK = 1 << 30  # no documented per-request limit; bounds relay memory per transfer
PROPERTY_BYTES = 124  # properties and appProperties: key + value, UTF-8 (api-notes 2.1)


_Groups = dict[str, list[Entry]]  # outside the class, where `list` is still the builtin
_Entries = list[Entry]


def _age(raw: Raw) -> tuple[datetime, str]:
    """Sort key among same-named items: oldest createdTime first, then id (both always present on Drive)."""
    created = raw.get("createdTime")
    when = datetime.fromisoformat(created) if created else datetime.min.replace(tzinfo=UTC)
    return when, str(raw["id"])


def _rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class GDriveProvider:
    """Provider for one Drive account (see module doc). Thread-safe; one DriveApi per provider."""

    hash_types = frozenset({HashType.MD5, HashType.SHA1, HashType.SHA256})

    def __init__(self, api: DriveApi, *, name: str = "gdrive", root_folder_id: str | None = None,
                 root_path: str = "", create_root: bool = False, use_trash: bool = True,
                 download_chunk: int = 16 << 20,
                 daily_upload_cap_bytes: int | None = DAILY_UPLOAD_CAP_BYTES) -> None:
        self.name = name
        self.api = api
        self.page_call = plain_call  # the retry layer installs its own, so each listing page is retried
        self.request_tally = api.tally  # every HTTP request this account made (migrate's calls per file)
        self.use_trash = use_trash
        self.download_chunk = download_chunk
        self._root_id = root_folder_id or api.drive_id or "root"  # a shared drive's id is its root folder's
        self._root_path = root_path.strip("/")
        self._create_root = create_root
        self._root: Entry | None = None
        self._folders: dict[str, Entry] = {}  # path -> folder, filled by stat/list/mkdir
        self._lock = threading.Lock()
        self._mk_lock = threading.Lock()  # one creator at a time, so this process makes no twin folders
        self._made: set[str] = set()  # ids of folders this process created (see mkdir)
        self._placed: set[tuple[str, str]] = set()  # (parent id, name) this process began an upload to
        self.features = Features(chunk_multiple=CHUNK_MULTIPLE, max_chunk=MAX_CHUNK, duplicate_names=True,
                                 properties=self, mod_time=self, daily_upload_cap_bytes=daily_upload_cap_bytes,
                                 property_lookup=self, by_id=self, delta=GDriveDelta(self),
                                 exporter=DriveExporter(api), sharing=DriveSharing(api),
                                 revisions=DriveRevisions(api, self.to_entry), one_request_ids=MULTIPART_MAX_BYTES)

    # --- normalisation at the edge -----------------------------------------------------------------------

    def to_entry(self, raw: Raw, parent_path: str) -> Entry:
        """An Entry from a Drive file resource: int sizes (None without bytes), UTC times, hex hashes."""
        mime = str(raw.get("mimeType") or "")
        if mime == FOLDER_MIME:
            kind = Kind.FOLDER
        elif mime == SHORTCUT_MIME:
            kind = Kind.SHORTCUT
        elif mime.startswith(NATIVE_PREFIX):
            kind = Kind.NATIVE_DOC  # Drive's size here is storage, not a download length (api-notes 2.1)
        else:
            kind = Kind.FILE
        name = str(raw.get("name") or "")
        modified = datetime.fromisoformat(raw["modifiedTime"]).astimezone(UTC) if raw.get("modifiedTime") else None
        created = datetime.fromisoformat(raw["createdTime"]).astimezone(UTC) if raw.get("createdTime") else None
        # provenance is written to `properties` (every app sees them) and was written to appProperties
        # (private to one OAuth client) before; both are read, the shared ones winning (api-notes C §20)
        props = {**(raw.get("appProperties") or {}), **(raw.get("properties") or {})}
        hashes = {t: str(raw[f]).lower() for f, t in _HASH_FIELDS.items() if raw.get(f)}
        parents = raw.get("parents") or []
        return Entry(id=str(raw["id"]), path=posixpath.join(parent_path, name) if parent_path else name,
                     name=name, kind=kind, size=int(raw["size"]) if kind is Kind.FILE and "size" in raw else None,
                     modified=modified, mime_type=mime or None, hashes=MappingProxyType(hashes),
                     properties=MappingProxyType(props), parent_id=str(parents[0]) if parents else None,
                     created=created)

    # --- paths -------------------------------------------------------------------------------------------

    def root(self) -> Entry:
        """The root folder, resolved (and, with create_root, created) on first use."""
        if self._root is None:
            raw = self.api.get(self._root_id)
            if self.to_entry(raw, "").kind is not Kind.FOLDER:
                raise PermanentError(f"{self.name}: root {self._root_id} is not a folder")
            top = Entry(id=str(raw["id"]), path="", name="", kind=Kind.FOLDER)
            for seg in filter(None, self._root_path.split("/")):
                found = self._find(top, seg, folders_only=True)
                if found is None and not self._create_root:
                    raise NotFoundError(f"{self.name}: root folder {self._root_path!r} does not exist")
                top = found or self.mkdir(top, seg)
            self._root = Entry(id=top.id, path="", name="", kind=Kind.FOLDER)
            with self._lock:  # mkdir above cached paths relative to the drive, not to this root
                self._folders = {"": self._root}
        return self._root

    def _find(self, parent: Entry, name: str, folders_only: bool = False) -> Entry | None:
        """The winning item called `name` in `parent` (oldest createdTime, then id), or None."""
        raws = self._all(parent.id, name=name, folders_only=folders_only)
        raws = [r for r in raws if r.get("name") == name]  # q's name match is exact; be sure anyway
        if not raws:
            return None
        raws.sort(key=_age)
        if len(raws) > 1:
            log.warning("%s: %d items named %r in %s; using the oldest (%s)", self.name, len(raws), name,
                        parent.path or "/", raws[0]["id"])
        return self.to_entry(raws[0], parent.path)

    def _all(self, folder_id: str, **filters: Any) -> list[Raw]:
        """Every page of a listing, each fetched through `page_call` (retried on its own)."""
        items: list[Raw] = []
        token: str | None = None
        while True:
            page, token = self.page_call(lambda t=token: self.api.list_page(folder_id, t, **filters),  # type: ignore[misc]
                                         f"list {folder_id}")
            items.extend(page)
            if token is None:
                return items

    def stat(self, path: str) -> Entry:
        """The entry at `path`; intermediate folders come from the cache, the leaf is always fresh."""
        path = path.strip("/")
        try:
            return self._resolve(path, use_cache=True)
        except NotFoundError:
            parent = posixpath.dirname(path)
            with self._lock:
                if not parent or parent not in self._folders:
                    raise
                # a cached folder may have been moved or deleted elsewhere: forget them all, look again
                self._folders = {k: v for k, v in self._folders.items() if k == ""}
            return self._resolve(path, use_cache=False)

    def _resolve(self, path: str, use_cache: bool) -> Entry:
        root = self.root()
        if not path:
            return root
        parent_path, name = posixpath.split(path)
        parent = self._folder(parent_path, use_cache) if parent_path else root
        found = self._find(parent, name)
        if found is None:
            raise NotFoundError(f"{self.name}: no such file or folder: {path}")
        if found.kind is Kind.FOLDER:
            self._remember(found)
        return found

    def _folder(self, path: str, use_cache: bool) -> Entry:
        with self._lock:
            cached = self._folders.get(path) if use_cache else None
        if cached is not None:
            return cached
        entry = self._resolve(path, use_cache)
        if entry.kind is not Kind.FOLDER:
            raise NotFoundError(f"{self.name}: {path} is not a folder")
        return entry

    def _remember(self, folder: Entry) -> None:
        with self._lock:
            self._folders[folder.path] = folder

    # --- listing -----------------------------------------------------------------------------------------

    def list(self, folder: Entry) -> Iterator[Entry]:
        """Every child of `folder`; items sharing a name come together, the winner (oldest) first.

        Nothing is hidden: a checker must see a zero-filled twin beside a good copy. Paths resolve to
        the winner (`stat`), and callers that copy by path treat the rest as duplicates (see
        `duplicates`). The whole listing is read before the first entry is yielded: the winner of a
        name may come on any page. Drive caps a folder at 500,000 items, which bounds the memory.
        """
        groups = self._groups(folder)
        for entries in groups.values():
            if len(entries) > 1:
                log.warning("%s: %d items named %r in %s; the oldest (%s) is the one paths resolve to",
                            self.name, len(entries), entries[0].name, folder.path or "/", entries[0].id)
            if entries[0].kind is Kind.FOLDER:
                self._remember(entries[0])
            yield from entries

    def duplicates(self, folder: Entry) -> _Groups:
        """Names held by more than one item in `folder`, each list ordered winner first."""
        return {name: entries for name, entries in self._groups(folder).items() if len(entries) > 1}

    def _groups(self, folder: Entry) -> _Groups:
        raws = self._all(folder.id)
        raws.sort(key=_age)
        groups: _Groups = {}
        for raw in raws:
            groups.setdefault(str(raw.get("name") or ""), []).append(self.to_entry(raw, folder.path))
        return groups

    # --- content -----------------------------------------------------------------------------------------

    def open_range(self, entry: Entry, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Bytes [start, end) as successive Range requests of `download_chunk` bytes.

        Raises UnsupportedError for folders, shortcuts and native docs (Drive: 403 fileNotDownloadable).
        """
        if entry.kind is not Kind.FILE:
            raise UnsupportedError(f"{self.name}: {entry.path} is a {entry.kind.value}; it has no bytes to read")
        stop = end if end is not None else entry.size
        pos = start
        while stop is None or pos < stop:
            want = pos + self.download_chunk if stop is None else min(stop, pos + self.download_chunk)
            data, total = self.api.get_range(entry.id, pos, want)
            if total is not None:
                stop = total if stop is None else min(stop, total)
            if not data:
                return
            yield data
            pos += len(data)

    def begin_upload(self, parent: Entry, name: str, size: int,
                     meta: UploadMeta) -> GDriveUploadSession | MultipartSession:
        """Start an upload of `size` bytes as `name` in `parent`.

        A new file of at most MULTIPART_MAX_BYTES that the caller hands over in one send
        (`meta.one_send`) is one multipart request under a pre-generated id (multipart.py); anything
        else is a resumable session (upload.py). No lookup precedes a new file. With meta.replace, an
        existing file of that name gets a new revision instead of a twin (found by one listing call, then a resumable PATCH).
        """
        with self._lock:  # mkdir of this name in a folder this process made must look, not assume
            self._placed.add((parent.id, name))
        file_id = None
        if meta.replace:
            existing = self._find(parent, name)
            if existing is not None and existing.kind is Kind.FILE:
                file_id = existing.id
        body: Raw = {"name": name}
        if file_id is None:
            body["parents"] = [parent.id]
        if meta.modified is not None:
            body["modifiedTime"] = _rfc3339(meta.modified)
        if meta.created is not None and file_id is None:  # createdTime is writable on create only
            body["createdTime"] = _rfc3339(meta.created)
        if meta.mime_type:
            body["mimeType"] = meta.mime_type
        if meta.properties:
            body["properties"] = _checked_properties(meta.properties)
        if file_id is None and meta.one_send and size <= MULTIPART_MAX_BYTES:
            one = MultipartToken(id=_reserved_id(meta.upload_token, size, parent, name) or self.api.generate_id(),
                                 size=size, parent=parent.id, name=name, parent_path=parent.path)
            return MultipartSession(self.api, one, body, meta.mime_type, self.to_entry)
        fields = {"size": size, "parent": parent.id, "name": name, "parent_path": parent.path, "file_id": file_id}
        uri = initiate(self.api, fields, body, meta.mime_type)
        token = SessionToken(uri=uri, size=size, parent=parent.id, name=name, parent_path=parent.path,
                             file_id=file_id)
        return GDriveUploadSession(self.api, token, self.to_entry)

    def resume_upload(self, token: str) -> GDriveUploadSession | MultipartSession:
        """Re-attach to a session; asks the server once. Raises UploadSessionLostError if it is gone (a
        one-request upload whose file does not exist is gone: its metadata died with its process)."""
        session: GDriveUploadSession | MultipartSession
        if is_multipart_token(token):
            session = MultipartSession(self.api, MultipartToken.loads(token), None, None, self.to_entry)
            if not session.committed():
                raise UploadSessionLostError(f"{self.name}: the one-request upload never reached Drive")
            return session
        session = GDriveUploadSession(self.api, SessionToken.loads(token), self.to_entry)
        session.committed()
        return session

    # --- changes -----------------------------------------------------------------------------------------

    def mkdir(self, parent: Entry, name: str) -> Entry:
        """The folder `name` in `parent`, created unless one exists (`a/b` makes both, like mkdir -p).

        Raises AlreadyExistsError if a non-folder holds the name. A call looks before it creates, except
        the first for a name in a folder this process made (only this process has put anything there;
        a second call looks, so callers that agree by looking again still can). Creates name a
        pre-generated id, so a retried create whose reply was lost makes no twin.
        """
        head, _, rest = name.strip("/").partition("/")
        if not head:
            return parent
        if rest:
            return self.mkdir(self.mkdir(parent, head), rest)
        name = head

        def attempt() -> Entry:
            with self._lock:
                first = (parent.id in self._made and posixpath.join(parent.path, name) not in self._folders
                         and (parent.id, name) not in self._placed)
            if first:  # a folder this process made and has not made `name` in: nothing to find there
                return self._create_folder(parent, name)
            found = self._find(parent, name)
            if found is not None:
                if found.kind is not Kind.FOLDER:
                    raise AlreadyExistsError(f"{self.name}: {found.path} exists and is not a folder")
                return found
            return self._create_folder(parent, name)

        with self._mk_lock:
            folder = attempt()
        self._remember(folder)
        return folder

    def _create_folder(self, parent: Entry, name: str) -> Entry:
        """Create under a pre-generated id: a retry whose first try went through gets 409, and the folder
        is then fetched by id, so no lookup by name is needed to avoid a twin (api-notes 4.3)."""
        folder_id = self.api.generate_id()
        try:
            raw = self.api.create_folder(parent.id, name, folder_id=folder_id)
        except AlreadyExistsError:
            raw = self.api.get(folder_id)
            if parent.id not in (raw.get("parents") or []) or raw.get("name") != name:
                raise
        folder = self.to_entry(raw, parent.path)
        with self._lock:
            self._made.add(folder.id)
        return folder

    def delete(self, entry: Entry) -> None:
        """Trash (default, `use_trash`) or permanently delete `entry`; a folder takes its contents."""
        self.api.delete(entry.id, trash=self.use_trash)
        with self._lock:
            self._folders = {k: v for k, v in self._folders.items()
                             if not (k == entry.path or k.startswith(entry.path + "/")) or k == ""}

    def set_properties(self, entry: Entry, properties: Mapping[str, str]) -> Entry:
        """Merge `properties` into the file's shared `properties` (visible to every app and credential,
        unlike appProperties: api-notes Part C §20). The file's modified time goes in the same update:
        Drive stamps an update that does not carry it with the time of the update (ibid.)."""
        body: Raw = {"properties": _checked_properties(properties)}
        if entry.modified is not None:
            body["modifiedTime"] = _rfc3339(entry.modified)
        raw = self.api.update(entry.id, body)
        return self.to_entry(raw, posixpath.dirname(entry.path))

    def find_by_property(self, folder: Entry, key: str, value: str) -> _Entries:
        """PropertyLookup: files in `folder` whose shared properties hold `key` = `value` (a
        `properties has {key=... and value=...}` query; appProperties of other clients stay unseen)."""
        found = (self.to_entry(raw, folder.path) for raw in self._all(folder.id, prop=(key, value)))
        return [entry for entry in found if entry.kind is Kind.FILE]

    def live(self, item_id: str) -> bool:
        """ItemById: the item exists and is not in the trash (files.get: no listing lag)."""
        try:
            return not self.api.get(item_id).get("trashed")
        except NotFoundError:
            return False

    def entry(self, item_id: str, parent_path: str) -> Entry | None:
        """ItemById: the item by id (files.get: no listing lag), None when gone or in the trash."""
        try:
            raw = self.api.get(item_id)
        except NotFoundError:
            return None
        return None if raw.get("trashed") else self.to_entry(raw, parent_path)

    def set_modified(self, entry: Entry, modified: datetime) -> Entry:
        body = {"modifiedTime": _rfc3339(modified)}
        raw = self.api.update(entry.id, body)
        return self.to_entry(raw, posixpath.dirname(entry.path))


def _checked_properties(properties: Mapping[str, str]) -> dict[str, str]:
    """properties as Drive takes them; PermanentError for a key + value over 124 UTF-8 bytes."""
    for key, value in properties.items():
        if len(key.encode()) + len(str(value).encode()) > PROPERTY_BYTES:
            raise PermanentError(f"property {key!r}: key and value exceed Drive's {PROPERTY_BYTES} bytes")
    return {k: str(v) for k, v in properties.items()}


def _flag(value: object) -> bool:
    """A boolean key; environment overrides arrive as text ("false" must not read as true)."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def from_remote_config(section: Mapping[str, Any], *, name: str, state_dir: Path) -> GDriveProvider:
    """A provider from a `[remotes.NAME]` section (keys in the package docstring; auth keys in auth.py)."""
    creds = load_credentials(section, name=name, state_dir=state_dir)
    api = DriveApi(creds, endpoint=section.get("endpoint"), ca_file=section.get("ca_file"),
                   timeout_s=float(section.get("timeout_s", 60.0)), drive_id=section.get("drive_id"))
    shared = section.get("shared_drive")
    if shared:  # a shared drive by name or id: its id is also its root folder's (gdrive/shareddrive.py)
        if section.get("drive_id"):
            raise UserError(f"remote {name!r}: set shared_drive or drive_id, not both (they name the same thing)")
        api.drive_id = resolve_shared_drive(api, str(shared), name)
    cap = section.get("daily_upload_cap_bytes", DAILY_UPLOAD_CAP_BYTES)
    return GDriveProvider(api, name=name, root_folder_id=section.get("root_folder_id"),
                          root_path=str(section.get("root") or section.get("root_path") or ""),
                          create_root=_flag(section.get("create_root", False)),
                          use_trash=_flag(section.get("use_trash", True)),
                          download_chunk=int(section.get("download_chunk_bytes", 16 << 20)),
                          daily_upload_cap_bytes=int(cap) if cap else None)


def _reserved_id(token: str | None, size: int, parent: Entry, name: str) -> str | None:
    """The id a one-request upload begun earlier for this same file named (UploadMeta.upload_token)."""
    if not token or not is_multipart_token(token):
        return None
    earlier = MultipartToken.loads(token)
    same = (earlier.size, earlier.parent, earlier.name) == (size, parent.id, name)
    return earlier.id if same else None
