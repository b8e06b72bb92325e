"""Benchmark the verify scan: cold hashing against plain hashlib on all cores, and the warm (cached) re-run.

    python benchmarks/verify.py                 # 4 GiB tree in a temp dir
    python benchmarks/verify.py --size 256M     # smaller

Prints figures and same-run ratios; it is not a test and asserts nothing. Goals: cold scan throughput
>= 0.9 x the hashlib baseline; warm re-run >= 20 x faster than the cold run.

The tree is random data written to a temp dir just before the runs. Dropping the page cache needs root
and a quiet machine, so it is not attempted: both the baseline and the scan read from the page cache
(when the tree fits in RAM), which compares the hashing pipelines, not the disk.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from driveferry.integrity.hashes import HashType, new_hasher
from driveferry.units import format_size, parse_size
from driveferry.verify.cache import HashCache
from driveferry.verify.scan import DEFAULT_BLOCK_SIZE, choose_hash, iter_tree, measure_hash_speeds, scan

DRIVE_HASHES = frozenset({HashType.MD5, HashType.SHA1, HashType.SHA256})


def file_sizes(total: int) -> list[int]:
    """About 60% of the bytes in 128 MiB files, the rest in files of 1-8 MiB (a download folder's mix)."""
    sizes: list[int] = []
    big = min(128 << 20, max(total // 8, 1))
    left = total
    while left > total * 0.4 and left >= big:
        sizes.append(big)
        left -= big
    i = 0
    while left > 0:
        n = min(left, ((i % 8) + 1) << 20)
        sizes.append(n)
        left -= n
        i += 1
    return sizes


def generate(root: Path, total: int) -> int:
    block = 8 << 20
    sizes = file_sizes(total)
    for i, size in enumerate(sizes):
        folder = root / f"d{i % 16:02d}"
        folder.mkdir(exist_ok=True)
        with open(folder / f"f{i:05d}.bin", "wb") as fh:
            left = size
            while left:
                n = min(block, left)
                fh.write(os.urandom(n))
                left -= n
    return len(sizes)


def hashlib_baseline(root: Path, kind: HashType, workers: int, block_size: int) -> float:
    """Seconds for a plain thread pool of hashlib over every file (the reference pipeline)."""
    paths = [e.path for _, e in iter_tree(root)]

    def one(path: str) -> str:
        h = new_hasher(kind)
        buf = bytearray(block_size)
        view = memoryview(buf)
        with open(path, "rb", buffering=0) as fh:
            while n := fh.readinto(buf):
                h.update(view[:n] if kind is not HashType.QUICKXOR else bytes(view[:n]))  # type: ignore[arg-type]
        return h.digest().hex()

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(one, paths))
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="4G", help="total bytes of the generated tree (default 4G)")
    ap.add_argument("--hash", default=None, help="hash type (default: choose_hash for Drive's md5/sha1/sha256)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--block-size", default=str(DEFAULT_BLOCK_SIZE))
    ap.add_argument("--dir", default=None, help="parent directory for the temp tree (default: system temp)")
    ap.add_argument("--repeat", type=int, default=2, help="timed runs of each cold pipeline; best is kept")
    args = ap.parse_args()
    total, block = parse_size(args.size), parse_size(args.block_size)
    kind = HashType.parse(args.hash) if args.hash else choose_hash(DRIVE_HASHES)
    speeds = measure_hash_speeds()
    print(f"CPU cores: {os.cpu_count()}, workers: {args.workers}, block: {format_size(block)}")
    print("single-core hash speeds: " + ", ".join(f"{k.value} {v / 2**20:.0f} MiB/s" for k, v in speeds.items()))
    print(f"hash: {kind.value}" + ("" if args.hash else " (choose_hash for Drive)"))
    print("note: the page cache is not dropped (needs root); runs read cached pages when the tree fits in RAM")

    tmp = Path(tempfile.mkdtemp(prefix="df-bench-verify-", dir=args.dir))
    try:
        tree = tmp / "tree"
        tree.mkdir()
        t0 = time.perf_counter()
        n_files = generate(tree, total)
        print(f"generated {n_files} files, {format_size(total)} of random data in {time.perf_counter() - t0:.1f} s")
        time.sleep(2.1)  # let every file age past the cache's racy window, as real downloads have

        base = min(hashlib_baseline(tree, kind, args.workers, block) for _ in range(args.repeat))
        cold_runs = [scan(tree, {kind}, workers=args.workers, block_size=block) for _ in range(args.repeat)]
        cold = min(r.elapsed_s for r in cold_runs)
        print(f"hashlib baseline ({args.workers} threads): {base:.2f} s  {total / base / 2**20:.0f} MiB/s")
        print(f"scan, no cache:                 {cold:.2f} s  {total / cold / 2**20:.0f} MiB/s")
        print(f"  ratio scan/baseline throughput: {base / cold:.2f}  (goal >= 0.90)")

        with HashCache(tmp / "cache.sqlite3") as cache:
            filling = scan(tree, {kind}, cache=cache, workers=args.workers, block_size=block)
            warm = scan(tree, {kind}, cache=cache, workers=args.workers, block_size=block)
        print(f"scan filling the cache:         {filling.elapsed_s:.2f} s  ({filling.hashed_files} files hashed)")
        print(f"warm re-run:                    {warm.elapsed_s:.3f} s  ({warm.hashed_files} hashed, "
              f"{warm.cached_files} from cache)")
        print(f"  speed-up warm vs cold: {filling.elapsed_s / max(warm.elapsed_s, 1e-9):.0f}x  (goal >= 20x)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
