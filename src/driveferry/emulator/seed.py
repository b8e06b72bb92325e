"""Seeding: a TOML tree spec creates folders and files with deterministic pseudo-random content.

    seed = 7                              # content of each file depends only on (seed, cloud, path)
    [onedrive]
    files = [ { path = "Projects/a.bin", size = "3M" },
              { path = "Projects/plan.docx", size = "40K", versions = 3 },   # 3 previous versions too
              { path = "Projects/zeros.img", size = "1M", content = "zeros" },
              { path = "Projects/empty.txt", size = 0 } ]
    notebooks = ["Notebooks/Team notes"]  # OneNote packages (no bytes)
    [[onedrive.bulk]]                     # many files at once: name-0000.bin ...
    dir = "Projects/many"; count = 300; size = "64K"; max_size = "256K"   # sizes vary up to max_size
    [[onedrive.generate]]                 # a whole tree from counts and shape (generate.py): 10^6 files
    root = "Big"; files = 1000000; per_folder = 100; size = "1K"; max_size = "4K"; seed = 7
    [gdrive]
    files = [ ... ];  docs = ["Docs/Plan"]             # Google Docs (no bytes)
    duplicates = [ { path = "Dup/report.pdf", count = 2, size = "10K" } ]

SharePoint: `[[onedrive.libraries]]` with `site = "contoso.sharepoint.com:/sites/Team"`, `name = "Documents"`
and its own `files` (graph/sites.py: each library a drive of its own).
Sharing (sharing_seed.py): `[[onedrive.permissions]]` grants and links on paths, `[gdrive.directory]`
the Google accounts, groups, Workspace domain and sharing policy.

`content` is "random" (default), "zeros", or "text". `versions = N` gives a file N previous versions
before its current content, oldest first (`version_size` and `version_blocks` say their bytes; a Graph
file keeps each as a version, a Drive file as a revision). Paths may hold any Unicode (NFC and NFD are kept
as written), very long names and deep folders. See configs/emulator/*.toml (scale.example.toml for
generated trees). A value of the wrong type is a `SeedSpecError` naming its key.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from driveferry.emulator.generate import CONTENTS, SeedSpecError, content_blocks, content_bytes, parse_tree
from driveferry.emulator.seedtargets import SeedTarget, seed_targets
from driveferry.typedconfig import Field, FileValueError, check_table, check_value, read_toml
from driveferry.units import parse_size

__all__ = ["SeedFile", "SeedSpecError", "SeedTarget", "apply_spec", "content_blocks", "content_bytes",
           "load_spec", "seed_emulator", "seed_targets", "version_blocks", "version_size"]
CLOUDS = ("onedrive", "gdrive")
_LISTS = ("files", "bulk", "duplicates", "notebooks", "docs", "folders", "generate", "permissions", "libraries")


@dataclass(frozen=True)
class SeedFile:
    path: str
    size: int
    content: str = "random"
    versions: int = 0  # previous versions seeded before the current content


def version_size(size: int, k: int, versions: int) -> int:
    """The size of previous version `k` (0 = oldest) of a seeded file of `size` with `versions` of them:
    they grow towards the current size, so no two neighbours have the same size."""
    return size * (k + 1) // (versions + 1)


def version_blocks(seed: int, cloud: str, path: str, k: int, size: int, versions: int,
                   content: str = "random") -> Iterator[bytes]:
    """The bytes of previous version `k` of a seeded file (what `apply_spec` seeds)."""
    return content_blocks(seed, cloud, f"{path}#v{k}", version_size(size, k, versions), content)


def _files(section: dict[str, Any]) -> Iterator[SeedFile]:
    for spec in section.get("files", []):
        yield SeedFile(spec["path"], parse_size(spec.get("size", 0)), spec.get("content", "random"),
                       int(spec.get("versions", 0)))
    for bulk in section.get("bulk", []):
        count, size = int(bulk["count"]), parse_size(bulk.get("size", "64K"))
        top = parse_size(bulk.get("max_size", size))
        rng = random.Random(zlib.crc32(bulk["dir"].encode()))
        ext = bulk.get("ext", "bin")
        for i in range(count):
            n = size if top <= size else rng.randint(size, top)
            yield SeedFile(f"{bulk['dir'].rstrip('/')}/{bulk.get('prefix', 'file')}-{i:04d}.{ext}", n,
                           bulk.get("content", "random"))


_PATH, _SIZE, _COUNT = Field("path"), Field("size"), Field("integer", minimum=0)
_CONTENT = Field("string", choices=CONTENTS)
_TOP = {"seed": Field("integer"), **{cloud: Field("table") for cloud in CLOUDS}}
_SECTION = {**{key: Field("list") for key in _LISTS}, "directory": Field("table")}  # sharing_seed.py
_ITEMS: dict[str, dict[str, Field]] = {  # the keys of one entry of each list (generate: generate.parse_tree)
    "files": {"path": _PATH, "size": _SIZE, "content": _CONTENT, "versions": _COUNT},
    "bulk": {"dir": _PATH, "count": _COUNT, "size": _SIZE, "max_size": _SIZE, "ext": Field("string", empty=False),
             "prefix": Field("string", empty=False), "content": _CONTENT},
    "duplicates": {"path": _PATH, "count": Field("integer", minimum=1), "size": _SIZE},
}
_ITEMS["libraries"] = {"site": Field("string", empty=False), "name": Field("string", empty=False),
                       "files": Field("list")}
_REQUIRED = {"files": ("path",), "bulk": ("dir", "count"), "duplicates": ("path",), "libraries": ("site", "name")}


def load_spec(path: Path) -> dict[str, Any]:
    """The parsed spec; FileNotFoundError, or SeedSpecError "<file>: <key>: expected ..." (one line) for
    a folder, non-UTF-8 text, bad TOML, an unknown key or a value of the wrong type."""
    try:
        spec = read_toml(path)
    except FileValueError as exc:
        raise SeedSpecError(str(exc)) from None
    try:
        check_spec(spec)
    except SeedSpecError as exc:
        raise SeedSpecError(f"{path}: {exc}") from None
    return spec


def check_spec(spec: dict[str, Any]) -> None:
    """SeedSpecError "<key>: expected <type>, got <value>" for the first key that is unknown or of the
    wrong type: sizes must parse and not be negative, paths must be relative and free of '..' (a seeded
    item lives inside its drive)."""
    try:
        check_table("", "", spec, _TOP)
        for cloud in CLOUDS:
            section = spec.get(cloud)
            if section is None:
                continue
            check_table("", cloud, section, _SECTION)
            for key, schema in _ITEMS.items():
                for i, item in enumerate(section.get(key, [])):
                    check_table("", f"{cloud}.{key}[{i}]", item, schema, required=_REQUIRED[key])
            for i, lib in enumerate(section.get("libraries", [])):
                for j, item in enumerate(lib.get("files", [])):
                    check_table("", f"{cloud}.libraries[{i}].files[{j}]", item, _ITEMS["files"], required=("path",))
            for key in ("notebooks", "docs", "folders"):
                for i, item in enumerate(section.get(key, [])):
                    check_value("", f"{cloud}.{key}[{i}]", item, _PATH)
    except FileValueError as exc:
        raise SeedSpecError(str(exc)) from None
    for cloud in CLOUDS:
        for i, tree in enumerate((spec.get(cloud) or {}).get("generate", [])):
            parse_tree(tree, f"{cloud}.generate[{i}]")


def apply_spec(spec: dict[str, Any], targets: dict[str, SeedTarget]) -> dict[str, int]:
    """Create the spec's trees on the targets ("onedrive", "gdrive"). Returns items created per cloud."""
    check_spec(spec)
    seed = int(spec.get("seed", 0))
    base_time = datetime(2024, 1, 1, tzinfo=UTC)
    created: dict[str, int] = {}
    for cloud, target in targets.items():
        section = spec.get(cloud)
        if not section:
            continue
        count = _seed_files(target, section, seed, cloud, base_time)
        for i, lib in enumerate(section.get("libraries", [])):
            seed_library = getattr(target, "seed_library", None)
            if seed_library is None:
                raise SeedSpecError(f"{cloud}.libraries[{i}]: only OneDrive has SharePoint document libraries")
            count += _seed_files(seed_library(lib["site"], lib["name"]), lib, seed, cloud, base_time)
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
        for i, raw in enumerate(section.get("generate", [])):
            count += target.generate(parse_tree(raw, f"{cloud}.generate[{i}]"), cloud, base_time)
        created[cloud] = count
    from driveferry.emulator.sharing_seed import apply_sharing
    apply_sharing(spec, targets)  # after the trees: grants name their paths
    return created


def _seed_files(target: SeedTarget, section: dict[str, Any], seed: int, cloud: str, base_time: datetime) -> int:
    """Seed the `files` and `bulk` entries of a section (or of a library); the number of files."""
    count = 0
    for i, f in enumerate(_files(section)):
        modified = base_time + timedelta(minutes=i)
        seeded: str | None = None
        for k in range(f.versions):  # older contents first: each replace keeps the one before
            seeded = _seed_content(target, seeded, f.path, version_size(f.size, k, f.versions),
                                   version_blocks(seed, cloud, f.path, k, f.size, f.versions, f.content),
                                   modified - timedelta(days=f.versions - k))
        _seed_content(target, seeded, f.path, f.size, content_blocks(seed, cloud, f.path, f.size, f.content),
                      modified)
        count += 1
    return count


def _seed_content(target: SeedTarget, file_id: str | None, path: str, size: int, blocks: Iterator[bytes],
                  modified: datetime) -> str:
    """Seed a file's content: a new file, or (`file_id`) the next content of one seeded just before, where
    the target adds files rather than replacing them by name (Drive: `seed_next`, a new revision)."""
    seed_next = getattr(target, "seed_next", None)
    if file_id is not None and seed_next is not None:
        return str(seed_next(file_id, blocks, modified))
    return target.seed_file(path, blocks, size, modified)


def seed_emulator(emu: Any, spec: dict[str, Any]) -> dict[str, int]:
    """Apply a seed spec to a running (or constructed) emulator. Returns items created per cloud."""
    return apply_spec(spec, seed_targets(emu))
