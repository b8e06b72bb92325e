"""Generated seed trees: a spec (counts, sizes, fan-out, depth, names, random seed) expands to folders and
files without listing them, so a seed file can describe 10^6 items (issue #16).

    [[onedrive.generate]]
    root = "Big"              # folder the tree is made in (created if missing)
    files = 1000000           # how many files
    per_folder = 100          # files per leaf folder
    fan_out = 100             # subfolders per folder (default: per_folder)
    depth = 0                 # folder levels below root (default 0: as few as fan_out allows)
    size = "1K"               # file size, or the low end of a uniform range ...
    max_size = "4K"           # ... up to this (default: size)
    seed = 7                  # sizes and content depend only on the seed (and cloud, path)
    names = "file-{i:07d}.bin"        # {i}: file number in the tree, {n}: number in its folder
    folder_names = "dir-{n:03d}"      # {n}: number in its parent, {level}: 1 for the first level
    content = "random"        # or "zeros", "text" (as for listed files)

Leaf folders hold `per_folder` files each (the last one the rest) and sit `depth` levels below the root;
interior folders hold up to `fan_out` subfolders. Everything is yielded in order, parents first.
Content is derived from (seed, cloud, path), so a reader can recompute any file's bytes.
"""

from __future__ import annotations

import json
import random
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from driveferry.units import parse_size

_BLOCK = 1 << 20
CONTENTS = ("random", "zeros", "text")


class SeedSpecError(ValueError):
    """A seed spec value that is missing or of the wrong type; the message names the key."""


def content_blocks(seed: int, cloud: str, path: str, size: int, content: str = "random") -> Iterator[bytes]:
    """The deterministic bytes of a seeded file, in blocks of at most 1 MiB."""
    if content == "zeros":
        zero = bytes(min(size, _BLOCK))
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


@dataclass(frozen=True)
class TreeSpec:
    """One `[[<cloud>.generate]]` table (see the module docstring)."""

    root: str
    files: int
    per_folder: int = 100
    fan_out: int = 0
    depth: int = 0
    size_bytes: int = 1024
    max_size_bytes: int = 0
    seed: int = 0
    names: str = "file-{i:07d}.bin"
    folder_names: str = "dir-{n:03d}"
    content: str = "random"

    @property
    def leaves(self) -> int:
        return -(-self.files // self.per_folder)

    def shape(self) -> tuple[int, int]:
        """(depth, fan_out): the levels of folders below root and the subfolders per folder."""
        if self.depth:
            fan = self.fan_out or max(1, round(self.leaves ** (1 / self.depth)))
            while fan ** self.depth < self.leaves:
                fan += 1
            return self.depth, fan
        fan = self.fan_out or self.per_folder
        depth = 0
        while fan ** depth < self.leaves:
            depth += 1
        return depth, fan


_KEYS = {"root": str, "files": int, "per_folder": int, "fan_out": int, "depth": int, "size": "size",
         "max_size": "size", "seed": int, "names": str, "folder_names": str, "content": str}


def parse_tree(raw: object, where: str) -> TreeSpec:
    """A TreeSpec from a parsed TOML table; SeedSpecError "<where>.<key>: expected ..." otherwise."""
    if not isinstance(raw, dict):
        raise SeedSpecError(f"{where}: expected a table")
    for key in raw:
        if key not in _KEYS:
            raise SeedSpecError(f"{where}.{key}: unknown key (expected one of {', '.join(_KEYS)})")
    for key in ("root", "files"):
        if key not in raw:
            raise SeedSpecError(f"{where}.{key}: missing")
    values: dict[str, Any] = {}
    for key, kind in _KEYS.items():
        if key not in raw:
            continue
        value = raw[key]
        if kind is int:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise SeedSpecError(f"{where}.{key}: expected a non-negative integer, got {value!r}")
        elif kind is str:
            if not isinstance(value, str):
                raise SeedSpecError(f"{where}.{key}: expected a string, got {value!r}")
        else:
            try:
                value = parse_size(value)
            except (ValueError, TypeError):
                raise SeedSpecError(f'{where}.{key}: expected a size (bytes or "64K", "4M"), got {value!r}') from None
            key += "_bytes"
        values[key] = value
    spec = TreeSpec(**values)
    if ".." in spec.root.replace("\\", "/").split("/") or not spec.root.strip("/"):
        raise SeedSpecError(f"{where}.root: expected a folder path without '..', got {spec.root!r}")
    if spec.per_folder < 1:
        raise SeedSpecError(f"{where}.per_folder: expected a positive integer")
    if spec.content not in CONTENTS:
        raise SeedSpecError(f"{where}.content: expected one of {', '.join(CONTENTS)}, got {spec.content!r}")
    if spec.depth == 0 and spec.leaves > 1 and spec.shape()[1] < 2:
        raise SeedSpecError(f"{where}.fan_out: expected at least 2 when the files need several folders")
    for key, fmt, probe in (("names", spec.names, {"i": 0, "n": 0}),
                            ("folder_names", spec.folder_names, {"n": 0, "level": 1})):
        try:
            fmt.format(**probe)
        except (KeyError, IndexError, ValueError) as exc:
            raise SeedSpecError(f"{where}.{key}: expected a format using only {{{'}, {'.join(probe)}}}: "
                                f"{exc}") from None
    if spec.files > 1 and spec.names.format(i=0, n=0) == spec.names.format(i=1, n=1):
        raise SeedSpecError(f"{where}.names: expected a format using {{i}} or {{n}} (names must differ)")
    if spec.shape()[0] and spec.folder_names.format(n=0, level=1) == spec.folder_names.format(n=1, level=1):
        raise SeedSpecError(f"{where}.folder_names: expected a format using {{n}} (names must differ)")
    return spec


@dataclass(frozen=True)
class GenFolder:
    path: str  # relative to the spec's root, "" for the root itself
    parent: str
    name: str


@dataclass(frozen=True)
class GenFile:
    folder: str  # relative to the spec's root
    name: str
    size: int
    index: int


def file_at(spec: TreeSpec, index: int) -> GenFile:
    """File `index` of the tree, computed alone (a derived blob is rebuilt from its index)."""
    depth, fan = spec.shape()
    leaf, n = divmod(index, spec.per_folder)
    parts = [spec.folder_names.format(n=(leaf // fan ** (depth - 1 - k)) % fan, level=k + 1) for k in range(depth)]
    top = max(spec.max_size_bytes, spec.size_bytes)
    size = spec.size_bytes
    if top > spec.size_bytes:
        size += zlib.crc32(f"{spec.seed}:size:{index}".encode()) % (top - spec.size_bytes + 1)
    return GenFile("/".join(parts), spec.names.format(i=index, n=n), size, index)


def walk(spec: TreeSpec) -> Iterator[GenFolder | GenFile]:
    """Every folder and file of the tree, each folder before anything inside it; deterministic."""
    depth, fan = spec.shape()
    made: list[str] = []  # the folder path made at each level for the current leaf
    for leaf in range(spec.leaves):
        digits = [(leaf // fan ** (depth - 1 - k)) % fan for k in range(depth)]
        path = ""
        for level, digit in enumerate(digits):
            parent = path
            name = spec.folder_names.format(n=digit, level=level + 1)
            path = f"{path}/{name}" if path else name
            if len(made) <= level or made[level] != path:
                del made[level:]
                made.append(path)
                yield GenFolder(path, parent, name)
        first = leaf * spec.per_folder
        for n in range(min(spec.per_folder, spec.files - first)):
            yield file_at(spec, first + n)


# --- derived blobs: a generated file's bytes are rebuilt from its blob name when first read -------------

_TREE_META = "seed.tree."


def tree_key(cloud: str, spec: TreeSpec) -> str:
    """8 hex digits naming one generated tree of one cloud (its record in emu_meta)."""
    return f"{zlib.crc32(json.dumps([cloud, asdict(spec)], sort_keys=True).encode()):08x}"


def derived_name(key: str, index: int) -> str:
    """The blob name of file `index` of tree `key` ("g" marks derived blobs; State.blob_path)."""
    return f"g{index % 256:02x}{key}{index}"


def record_tree(state: Any, cloud: str, spec: TreeSpec) -> str:
    """Store the tree so its blobs can be derived after a restart; its key."""
    key = tree_key(cloud, spec)
    state.set_meta(_TREE_META + key, json.dumps({"cloud": cloud, "tree": asdict(spec)}))
    return key


class DerivedBlobs:
    """`State.derive_blob` for the trees recorded in a data directory."""

    def __init__(self, state: Any) -> None:
        self.state = state
        self._trees: dict[str, tuple[str, TreeSpec]] = {}

    def __call__(self, name: str) -> Iterator[bytes]:
        key, index = name[3:11], int(name[11:])
        if key not in self._trees:
            raw = json.loads(self.state.get_meta(_TREE_META + key, "null") or "null")
            if raw is None:
                raise FileNotFoundError(f"no generated tree {key} for blob {name}")
            self._trees[key] = (str(raw["cloud"]), TreeSpec(**raw["tree"]))
        cloud, spec = self._trees[key]
        f = file_at(spec, index)
        path = "/".join(p for p in (spec.root.strip("/"), f.folder, f.name) if p)
        return content_blocks(spec.seed, cloud, path, f.size, spec.content)


def install_derived(state: Any) -> None:
    """Let `state` rebuild derived blobs (the models call this when they open a data directory)."""
    if getattr(state, "derive_blob", None) is None:
        state.derive_blob = DerivedBlobs(state)
