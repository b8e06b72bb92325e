"""An entry's content hashes as reported, or computed where the provider computes rather than reports.

The local filesystem reports no hashes (`hash_types` is empty) but computes any (`content_hasher`);
the clouds report theirs. `with_computed` gives the proof (`integrity/proof.py`) a hash to compare on
either kind of side, reading a file only when none of the wanted types is reported.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from types import MappingProxyType

from driveferry.integrity.hashes import HashType
from driveferry.integrity.proof import wanted_kinds
from driveferry.providers.base import Entry, Kind, Provider

__all__ = ["with_computed"]


def with_computed(provider: Provider | None, entry: Entry, recorded: Iterable[HashType]) -> Entry:
    """`entry` with a hash computed for comparison with `recorded`, when its provider reports none of
    those types but can compute one; otherwise `entry` unchanged. Raises what `hash_file` raises."""
    hasher = provider.features.content_hasher if provider is not None else None
    kinds = wanted_kinds(recorded, entry.hashes)
    if hasher is None or not kinds or entry.kind is not Kind.FILE:
        return entry
    return replace(entry, hashes=MappingProxyType({**entry.hashes, **hasher.hash_file(entry, kinds)}))
