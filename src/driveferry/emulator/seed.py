"""Seeding: a TOML tree spec creates folders and files with deterministic pseudo-random content.

    seed = 7                              # content of each file depends only on (seed, cloud, path)
    [onedrive]
    files = [ { path = "Projects/a.bin", size = "3M" },
              { path = "Projects/zeros.img", size = "1M", content = "zeros" },
              { path = "Projects/empty.txt", size = 0 } ]
    notebooks = ["Notebooks/Team notes"]  # OneNote packages (no bytes)
    [[onedrive.bulk]]                     # many files at once: name-0000.bin ...
    dir = "Projects/many"; count = 300; size = "64K"; max_size = "256K"   # sizes vary up to max_size
    [gdrive]
    files = [ ... ];  docs = ["Docs/Plan"]             # Google Docs (no bytes)
    duplicates = [ { path = "Dup/report.pdf", count = 2, size = "10K" } ]

`content` is "random" (default), "zeros", or "text". Paths may hold any Unicode (NFC and NFD are kept
as written), very long names and deep folders. See configs/emulator/*.toml.
"""

from __future__ import annotations

import random
import tomllib
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from driveferry.units import parse_size

_BLOCK = 1 << 20


class SeedTarget(Protocol):
    """What seeding needs from a cloud model (Drive or Graph)."""

    def seed_folder(self, path: str) -> str: ...

    def seed_file(self, path: str, blocks: Iterator[bytes], size: int, modified: datetime) -> str: ...

    def seed_special(self, path: str, kind: str) -> str:
        """Create an item without bytes: kind "notebook" (Graph) or "doc" (Drive)."""
        ...


@dataclass(frozen=True)
class SeedFile:
    path: str
    size: int
    content: str = "random"


def content_blocks(seed: int, cloud: str, path: str, size: int, content: str = "random") -> Iterator[bytes]:
    """The deterministic bytes of a seeded file, in blocks of at most 1 MiB."""
    if content == "zeros":
        zero = bytes(_BLOCK)
        left = size
        while left > 0:
            n = min(left, _BLOCK)
            yield zero[:n]
            left -= n
        return
    if content == "text":
        line = f"{path} line\n".encode()
        data = (line * (size // len(line) + 1))[:size]
        for i in range(0, size, _BLOCK):
            yield data[i:i + _BLOCK]
        return
    rng = random.Random(zlib.crc32(f"{seed}:{cloud}:{path}".encode()))
    left = size
    while left > 0:
        n = min(left, _BLOCK)
        yield rng.randbytes(n)
        left -= n


def content_bytes(seed: int, cloud: str, path: str, size: int, content: str = "random") -> bytes:
    return b"".join(content_blocks(seed, cloud, path, size, content))


def _files(section: dict[str, Any]) -> Iterator[SeedFile]:
    for spec in section.get("files", []):
        yield SeedFile(spec["path"], parse_size(spec.get("size", 0)), spec.get("content", "random"))
    for bulk in section.get("bulk", []):
        count, size = int(bulk["count"]), parse_size(bulk.get("size", "64K"))
        top = parse_size(bulk.get("max_size", size))
        rng = random.Random(zlib.crc32(bulk["dir"].encode()))
        ext = bulk.get("ext", "bin")
        for i in range(count):
            n = size if top <= size else rng.randint(size, top)
            yield SeedFile(f"{bulk['dir'].rstrip('/')}/{bulk.get('prefix', 'file')}-{i:04d}.{ext}", n,
                           bulk.get("content", "random"))


def load_spec(path: Path) -> dict[str, Any]:
    with open(path, "rb") as fh:
        return tomllib.load(fh)


def apply_spec(spec: dict[str, Any], targets: dict[str, SeedTarget]) -> dict[str, int]:
    """Create the spec's trees on the targets ("onedrive", "gdrive"). Returns items created per cloud."""
    seed = int(spec.get("seed", 0))
    base_time = datetime(2024, 1, 1, tzinfo=UTC)
    created: dict[str, int] = {}
    for cloud, target in targets.items():
        section = spec.get(cloud)
        if not section:
            continue
        count = 0
        for i, f in enumerate(_files(section)):
            modified = base_time + timedelta(minutes=i)
            target.seed_file(f.path, content_blocks(seed, cloud, f.path, f.size, f.content), f.size, modified)
            count += 1
        for dup in section.get("duplicates", []):
            size = parse_size(dup.get("size", "1K"))
            for k in range(int(dup.get("count", 2))):
                target.seed_file(dup["path"], content_blocks(seed, cloud, f"{dup['path']}#{k}", size), size,
                                 base_time + timedelta(hours=k))
                count += 1
        for nb in section.get("notebooks", []):
            target.seed_special(nb, "notebook")
            count += 1
        for doc in section.get("docs", []):
            target.seed_special(doc, "doc")
            count += 1
        for folder in section.get("folders", []):
            target.seed_folder(folder)
            count += 1
        created[cloud] = count
    return created


# --- binding to the emulator's models ---------------------------------------------------------------


class _GraphTarget:
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


class _DriveTarget:
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

    def seed_special(self, path: str, kind: str) -> str:
        parent, _, name = path.strip("/").rpartition("/")
        return str(self.model.create_native(name, self.seed_folder(parent), text=f"{name}\n").id)


def seed_targets(emu: Any) -> dict[str, SeedTarget]:
    """The seed targets of a running emulator: "onedrive" (Graph model) and "gdrive" (Drive model)."""
    targets: dict[str, SeedTarget] = {}
    for module in emu.modules:
        prefix = getattr(module, "route_prefix", "")
        if prefix == "graph.":
            targets["onedrive"] = _GraphTarget(module.model)
        elif prefix == "drive.":
            targets["gdrive"] = _DriveTarget(module.model)
    return targets


def seed_emulator(emu: Any, spec: dict[str, Any]) -> dict[str, int]:
    """Apply a seed spec to a running (or constructed) emulator. Returns items created per cloud."""
    return apply_spec(spec, seed_targets(emu))
