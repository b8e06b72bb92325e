"""One streaming upload: read -> hash -> withhold the last chunk until the source proof holds -> send.

Used by the relay (`migrate/relay.py`, any source) and by `verify --fix` (a local file), so the rule
that a destination never commits bytes the source did not prove is written once:

    for each chunk of exactly `chunk_bytes` (the last may be short):
        hash it (as it fills: see `rechunk`)
        if it is the last: the source must be read to its end (a read that goes on past the planned
        size, or a local file that changed between its two fstats, raises here), then `gate(hashes)`
        must pass; otherwise the session is aborted and nothing is committed
        send it

`chunk_bytes_for` is the one place chunk sizes are derived from a destination's declared limits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping

from driveferry.errors import IntegrityError
from driveferry.integrity.hashes import Buffer, HashType, MultiHasher
from driveferry.providers.base import Entry, Features, UploadSession

__all__ = ["CHUNK_TARGET_BYTES", "HASH_SPAN_BYTES", "chunk_bytes_for", "rechunk", "stream_upload", "Gate"]

CHUNK_TARGET_BYTES = 8 << 20  # a default that fits every destination's limits once rounded to its multiple
# Bytes are hashed in spans of this size as they land in the chunk buffer, while they are still in the
# core's cache, rather than a whole chunk (8-10 MiB, past a core's L2) once it is full. Measured on the
# relay benchmark's large set (2 GiB, 4 transfers, Intel with AVX-512): SHA-256 + quickXor per 1 MiB
# span cost 0.15 s/GiB less CPU than per 10 MiB chunk (0.25-2 MiB spans within noise of each other);
# much smaller spans pay quickXor's per-call cost (numpy) instead (64 KiB: 0.1 s/GiB more).
HASH_SPAN_BYTES = 1 << 20

Gate = Callable[[Mapping[HashType, str]], None]  # raises IntegrityError to withhold the last chunk


def chunk_bytes_for(features: Features, target: int = CHUNK_TARGET_BYTES) -> int:
    """The largest multiple of the destination's chunk multiple not above `target` or its max chunk
    (at least one multiple)."""
    multiple = max(1, features.chunk_multiple)
    return max(multiple, min(features.max_chunk, target) // multiple * multiple)


def rechunk(blocks: Iterable[Buffer], buf: bytearray | memoryview,
            hasher: MultiHasher | None = None) -> Iterator[memoryview]:
    """Regroup a stream of arbitrary blocks into chunks of exactly `len(buf)` bytes (the last may be short).

    A stream that also has `readinto(view) -> n` (0 at its end) reads each chunk straight into `buf`.
    Otherwise each chunk is copied into `buf` and handed out as a view of it, valid until the next chunk is asked
    for: one buffer per transfer, reused for every chunk, so memory stays at one chunk per transfer and
    nothing is allocated per chunk. The consumer must be done with a chunk (sent, hashed) before it
    asks for the next; `UploadSession.send` keeps no reference to it.

    `hasher`, when given, is fed every byte handed out, in order, span by span (`HASH_SPAN_BYTES`) as
    the buffer fills: each chunk is hashed whole by the time it is handed out.
    """
    size = len(buf)
    if not size:  # nothing is expected: bytes that come anyway are handed out as they are
        for b in blocks:
            piece = memoryview(b).cast("B")
            if piece.nbytes:
                if hasher is not None:
                    hasher.update(piece)
                yield piece
        return
    view = memoryview(buf)
    readinto = getattr(blocks, "readinto", None)
    if readinto is not None:  # the stream reads straight into `buf` (a Graph download): no copy
        yield from _filled(readinto, view, hasher)
        return
    spans = _Spans(hasher, view)
    held = 0
    for block in blocks:
        data = memoryview(block).cast("B")
        pos, n = 0, len(data)
        while pos < n:
            take = min(n - pos, size - held)
            view[held:held + take] = data[pos:pos + take]
            held += take
            pos += take
            spans.filled(held, end=held == size)
            if held == size:
                yield view
                held = 0
    if held:
        spans.filled(held, end=True)
        yield view[:held]


class _Spans:
    """Feeds `hasher` (if any) the bytes of a filling buffer, span by span (`HASH_SPAN_BYTES`): `filled(held)`
    after the buffer holds `held` bytes; `end=True` hashes the rest, for a chunk about to be handed out
    (the next chunk then starts at 0)."""

    def __init__(self, hasher: MultiHasher | None, view: memoryview) -> None:
        self.hasher, self.view, self.done = hasher, view, 0

    def filled(self, held: int, *, end: bool = False) -> None:
        if self.hasher is not None and (held - self.done >= HASH_SPAN_BYTES or (end and held > self.done)):
            self.hasher.update(self.view[self.done:held])
            self.done = held
        if end:
            self.done = 0


def _filled(readinto: Callable[[memoryview], int], view: memoryview,
            hasher: MultiHasher | None) -> Iterator[memoryview]:
    """`rechunk` for a stream with `readinto(view) -> n` (0 at its end): each chunk is read into `view`
    itself. After a full chunk the next one is asked for only when the consumer asks, so a read past
    the end (which must find nothing) happens where `rechunk`'s would."""
    size = len(view)
    spans = _Spans(hasher, view)
    while True:
        held = 0
        while held < size:
            n = readinto(view[held:])
            if not n:
                break
            held += n
            spans.filled(held)
        spans.filled(held, end=True)
        if held < size:
            if held:
                yield view[:held]
            return
        yield view


def stream_upload(session: UploadSession, blocks: Iterable[Buffer], buf: memoryview, *, offset: int, size: int,
                  hasher: MultiHasher, gate: Gate, label: str,
                  sent: Callable[[int, int], None] | None = None) -> Entry:
    """Send bytes [offset, size) read from `blocks` through `session`; returns the finished Entry.

    `hasher` must already hold bytes [0, offset) (a resumed upload re-reads its prefix). `gate` sees
    the hashes of all `size` bytes before the last chunk is sent. `sent(n, new_offset)` is called after
    each chunk the destination accepted. Raises IntegrityError, with the session aborted and nothing
    committed, when the source sends more or fewer bytes than `size`, its read reports a change
    (IntegrityError from `blocks`), or the gate refuses; other errors (provider, network) pass through
    with the session kept, so the upload can resume.
    """
    try:
        return _stream(session, rechunk(blocks, buf, hasher), offset=offset, size=size, hasher=hasher, gate=gate,
                       label=label, sent=sent)
    except IntegrityError:
        session.abort()
        raise


def _stream(session: UploadSession, chunks: Iterator[memoryview], *, offset: int, size: int,
            hasher: MultiHasher, gate: Gate, label: str, sent: Callable[[int, int], None] | None) -> Entry:
    result: Entry | None = None
    gated = False
    for chunk in chunks:
        n = len(chunk)
        if offset + n > size:
            raise IntegrityError(f"{label}: the source sent more than its {size} bytes", hash_type="size",
                                 expected=str(size), actual=f"more than {size}")
        last = offset + n == size  # `rechunk` has hashed the chunk
        if last:
            # before the last chunk goes the source must be at its end (reading on lets a local
            # source run its closing fstat check), and the gate must pass
            if next(chunks, None) is not None:
                raise IntegrityError(f"{label}: the source sent more than its {size} bytes", hash_type="size",
                                     expected=str(size), actual=f"more than {size}")
            gate(hasher.hexdigests())
            gated = True
        result = session.send(offset, chunk, last)
        offset += n
        if sent is not None:
            sent(n, offset)
        if last:
            break
    if offset != size:
        raise IntegrityError(f"{label}: the source ended early", hash_type="size", expected=str(size),
                             actual=str(offset))
    if not gated:  # nothing was left to send (empty, or every byte committed before a resume)
        gate(hasher.hexdigests())
    if result is None:  # the server finishes the file on a status query
        result = session.send(size, b"", True)
    if result is None:
        raise IntegrityError(f"{label}: upload did not finish", hash_type="size", expected=str(size),
                             actual=str(offset))
    return result
