"""Hashing throughput: each hash alone and the combined MultiHasher pass (one pass, every type).

Prints MB/s (10^6 bytes per second) over the same data, and every figure as a ratio against hashlib
MD5 alone measured in the same run (so figures from different machines can be compared).

    python benchmarks/hashing.py                  # 512 MiB in 8 MiB chunks
    python benchmarks/hashing.py --total-mib 128 --chunk-mib 4
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Iterable

from driveferry.integrity.hashes import HashType, MultiHasher, new_hasher

RELAY_SET = (HashType.MD5, HashType.SHA256, HashType.QUICKXOR)  # what the relay always computes


def chunks(total: int, chunk: int) -> list[bytes]:
    """`total` bytes as chunks, built from up to 8 distinct random chunks (memory stays ~8 chunks)."""
    distinct = [os.urandom(chunk) for _ in range(min(8, max(1, total // chunk)))]
    return [distinct[i % len(distinct)] for i in range(total // chunk)]


def timed(feed: Callable[[bytes], object], data: Iterable[bytes],
          finish: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process across all threads)."""
    start, cpu = time.perf_counter(), time.process_time()
    for block in data:
        feed(block)
    finish()
    return time.perf_counter() - start, time.process_time() - cpu


def best_of(runs: int, make: Callable[[], tuple[Callable[[bytes], object], Callable[[], object]]],
            data: list[bytes]) -> tuple[float, float]:
    best = (float("inf"), 0.0)
    for _ in range(runs):
        feed, finish = make()
        best = min(best, timed(feed, data, finish))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--total-mib", type=int, default=512)
    ap.add_argument("--chunk-mib", type=int, default=8)
    ap.add_argument("--runs", type=int, default=2, help="best of N runs per figure")
    args = ap.parse_args()
    data = chunks(args.total_mib << 20, args.chunk_mib << 20)
    total = sum(len(b) for b in data)
    print(f"{total / 2**20:.0f} MiB in {args.chunk_mib} MiB chunks, best of {args.runs}, {os.cpu_count()} CPUs")

    results: dict[str, tuple[float, float]] = {}
    for kind in HashType:
        def make(kind: HashType = kind) -> tuple[Callable[[bytes], object], Callable[[], object]]:
            h = new_hasher(kind)
            return h.update, h.digest
        results[kind.value] = best_of(args.runs, make, data)

    for label, kinds in (("multi md5+sha256+quickxor", RELAY_SET), ("multi all five", tuple(HashType))):
        def make_multi(kinds: tuple[HashType, ...] = kinds) -> tuple[Callable[[bytes], object], Callable[[], object]]:
            m = MultiHasher(kinds)
            return m.update, m.hexdigests
        results[label] = best_of(args.runs, make_multi, data)

    md5 = results["md5"][0]
    print(f"{'hash':<32} {'MB/s':>9} {'vs md5':>8} {'CPU s':>7} {'wall s':>7}")
    for label, (seconds, cpu) in results.items():
        print(f"{label:<32} {total / seconds / 1e6:>9.0f} {md5 / seconds:>8.2f} {cpu:>7.2f} {seconds:>7.2f}")


if __name__ == "__main__":
    main()
