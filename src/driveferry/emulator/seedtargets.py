"""Seed targets: how a seed spec's items land in the emulator's Drive and Graph models.

Listed items go through the models' ordinary API (names checked, conflicts resolved, one transaction
each). Generated trees (generate.py) go through the models' bulk insert, many rows per transaction. Each
file's bytes are generated and hashed once (quickXorHash for Graph; md5, sha1 and sha256 for Drive) but
not stored: its blob is derived (generate.derived_name), written by State.blob_path on first read, since
creating 10^6 small files was most of the seeding time. Seeding stays linear in the number of items.
A generated tree is made once per data directory: a restart that applies the same seed again finds its
mark in emu_meta and skips it.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any, Protocol

from driveferry.emulator.drive.models import SEED_OWNER
from driveferry.emulator.drive.records import FOLDER_MIME, OCTET_STREAM, DriveFile, new_file_id, rfc3339
from driveferry.emulator.generate import (
    GenFolder,
    TreeSpec,
    content_blocks,
    derived_name,
    record_tree,
    tree_key,
    walk,
)
from driveferry.emulator.graph.items import check_name, iso, new_item_id
from driveferry.integrity.hashes import QuickXor


class SeedTarget(Protocol):
    """What seeding needs from a cloud model (Drive or Graph)."""

    def seed_folder(self, path: str) -> str: ...

    def seed_file(self, path: str, blocks: Iterator[bytes], size: int, modified: datetime) -> str: ...

    def seed_special(self, path: str, kind: str) -> str:
        """Create an item without bytes: kind "notebook" (Graph) or "doc" (Drive)."""
        ...

    def generate(self, tree: TreeSpec, cloud: str, base_time: datetime) -> int:
        """Create a generated tree (once per data directory); the number of items created."""
        ...


_SMALL_BYTES = 1 << 20  # files up to this are hashed in one buffer
_DONE = "seed.generated."  # + tree key: the tree is complete in this data directory
_QX_BITS = 160
# quickXorHash spreads stream byte i over register bits 11*i .. 11*i+7 (mod 160), so bit j of byte i lands
# on bit (11*i + j) mod 160 (learn.microsoft.com/onedrive/developer/code-snippets/quickxorhash).
@functools.cache
def _qx_positions() -> Any:
    import numpy as np  # on first use, as in integrity/hashes.py (~20 MB)
    return np.array([(11 * k + j) % _QX_BITS for k in range(_QX_BITS) for j in range(8)], dtype=np.intp)


def quickxor_b64(data: bytes) -> str | None:
    """The base64 quickXorHash of a whole (small) buffer, None when empty as Graph reports it.

    An independent, vectorised form of the algorithm (integrity/hashes.py has the streaming one, whose
    final spread is a Python loop costing ~0.4 ms a file: minutes over 10^6 seeded files)."""
    if not data:
        return None
    import numpy as np
    pad = -len(data) % _QX_BITS
    block = np.frombuffer(data + bytes(pad), dtype=np.uint8).reshape(-1, _QX_BITS)
    fold = np.bitwise_xor.reduce(block, axis=0)
    bits = np.unpackbits(fold, bitorder="little")
    reg = np.bincount(_qx_positions(), weights=bits, minlength=_QX_BITS).astype(np.int64) % 2
    out = bytearray(np.packbits(reg.astype(np.uint8), bitorder="little").tobytes())
    for i, b in enumerate(len(data).to_bytes(8, "little")):
        out[12 + i] ^= b
    return base64.b64encode(bytes(out)).decode()


def _qx_of(blocks: Iterator[bytes]) -> str | None:
    qx, n = QuickXor(), 0
    for data in blocks:
        qx.update(data)
        n += len(data)
    return base64.b64encode(qx.digest()).decode() if n else None


class GraphTarget:
    """Seeds the OneDrive (Graph) model: folders made as paths need them."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self._folders: dict[str, str] = {"": model.root().id}

    def seed_folder(self, path: str) -> str:
        path = path.strip("/")
        if path in self._folders:
            return self._folders[path]
        parent, _, name = path.rpartition("/")
        folder, _created = self.model.create_folder(self.seed_folder(parent), name, conflict="replace")
        self._folders[path] = folder.id
        return str(folder.id)

    def seed_file(self, path: str, blocks: Iterator[bytes], size: int, modified: datetime) -> str:
        parent, _, name = path.strip("/").rpartition("/")
        item = self.model.create_file(self.seed_folder(parent), name, blocks, modified=modified, conflict="replace")
        return str(item.id)

    def seed_special(self, path: str, kind: str) -> str:
        parent, _, name = path.strip("/").rpartition("/")
        return str(self.model.create_package(self.seed_folder(parent), name).id)

    def seed_library(self, site: str, name: str) -> GraphTarget:
        """A target seeding the document library `name` of `site` ("host:/sites/x"), made if missing."""
        host, _, path = site.partition(":")
        found = self.model.sites.add_site(host, path.strip("/"))
        library = self.model.sites.add_library(found.site_id, name)
        target = GraphTarget(self.model)
        target._folders = {"": library.root_id}
        return target

    def generate(self, tree: TreeSpec, cloud: str, base_time: datetime) -> int:
        state = self.model.state
        key = tree_key(cloud, tree)
        if state.get_meta(_DONE + key, ""):
            return 0
        record_tree(state, cloud, tree)
        root = tree.root.strip("/")
        ids = {"": self.seed_folder(root)}
        stamp = iso(base_time)

        def rows() -> Iterator[tuple[str, str, str, str, int, str | None, str | None, str]]:
            for entry in walk(tree):
                if isinstance(entry, GenFolder):
                    ids[entry.path] = new_item_id()
                    yield ids[entry.path], ids[entry.parent], check_name(entry.name), "folder", 0, None, None, stamp
                    continue
                path = "/".join(p for p in (root, entry.folder, entry.name) if p)
                blocks = content_blocks(tree.seed, cloud, path, entry.size, tree.content)
                qxh = quickxor_b64(b"".join(blocks)) if entry.size <= _SMALL_BYTES else _qx_of(blocks)
                yield (new_item_id(), ids[entry.folder], check_name(entry.name), "file", entry.size,
                       derived_name(key, entry.index), qxh, iso(base_time + timedelta(seconds=entry.index)))

        count = int(self.model.insert_many(rows()))
        state.set_meta(_DONE + key, str(count))
        return count


class DriveTarget:
    """Seeds the Google Drive model (duplicate names are allowed there, so files are always added)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self._folders: dict[str, str] = {"": "root"}

    def seed_folder(self, path: str) -> str:
        path = path.strip("/")
        if path in self._folders:
            return self._folders[path]
        parent, _, name = path.rpartition("/")
        pid = self.seed_folder(parent)
        existing = [f for f in self.model.children(pid) if f.name == name and f.is_folder]
        fid = existing[0].id if existing else self.model.create_folder(name, pid).id
        self._folders[path] = fid
        return str(fid)

    def seed_file(self, path: str, blocks: Iterator[bytes], size: int, modified: datetime) -> str:
        parent, _, name = path.strip("/").rpartition("/")
        return str(self.model.create_file(name, blocks, self.seed_folder(parent), modified=modified).id)

    def seed_next(self, file_id: str, blocks: Iterator[bytes], modified: datetime) -> str:
        """New content for a seeded file: its next head revision (emulator/drive/revisions.py)."""
        from driveferry.emulator.drive.hashing import write_blob
        content = write_blob(self.model.state.new_blob_path(), blocks)
        return str(self.model.update(file_id, {"modifiedTime": rfc3339(modified)}, content=content).id)

    def seed_special(self, path: str, kind: str) -> str:
        parent, _, name = path.strip("/").rpartition("/")
        return str(self.model.create_native(name, self.seed_folder(parent), text=f"{name}\n").id)

    def generate(self, tree: TreeSpec, cloud: str, base_time: datetime) -> int:
        state = self.model.state
        key = tree_key(cloud, tree)
        if state.get_meta(_DONE + key, ""):
            return 0
        record_tree(state, cloud, tree)
        root = tree.root.strip("/")
        ids = {"": self.model.resolve(self.seed_folder(root))}
        stamp = rfc3339(base_time)

        def rows() -> Iterator[DriveFile]:
            for entry in walk(tree):
                if isinstance(entry, GenFolder):
                    ids[entry.path] = new_file_id()
                    yield DriveFile(id=ids[entry.path], name=entry.name, mime_type=FOLDER_MIME,
                                    parent=ids[entry.parent], owner=SEED_OWNER, created=stamp, modified=stamp)
                    continue
                path = "/".join(p for p in (root, entry.folder, entry.name) if p)
                md5, sha1, sha256 = hashlib.md5(), hashlib.sha1(), hashlib.sha256()
                for data in content_blocks(tree.seed, cloud, path, entry.size, tree.content):
                    md5.update(data)
                    sha1.update(data)
                    sha256.update(data)
                when = rfc3339(base_time + timedelta(seconds=entry.index))
                yield DriveFile(id=new_file_id(), name=entry.name, mime_type=OCTET_STREAM, parent=ids[entry.folder],
                                owner=SEED_OWNER, created=when, modified=when, size=entry.size, md5=md5.hexdigest(),
                                sha1=sha1.hexdigest(), sha256=sha256.hexdigest(), blob=derived_name(key, entry.index))

        count = int(self.model.insert_many(rows()))
        state.set_meta(_DONE + key, str(count))
        return count


def seed_targets(emu: Any) -> dict[str, SeedTarget]:
    """The seed targets of a running emulator: "onedrive" (Graph model) and "gdrive" (Drive model)."""
    targets: dict[str, SeedTarget] = {}
    for module in emu.modules:
        prefix = getattr(module, "route_prefix", "")
        if prefix == "graph.":
            targets["onedrive"] = GraphTarget(module.model)
        elif prefix == "drive.":
            targets["gdrive"] = DriveTarget(module.model)
    return targets
