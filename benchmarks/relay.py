"""Relay benchmark: `driveferry migrate` against a bare download-and-upload loop, same run, same emulator.

    python benchmarks/relay.py                 # 2 GiB of large files, 2,000 x 64 KiB, 4 transfers
    python benchmarks/relay.py --large 512M --small 500

Prints, for each set: the bare loop (same providers, same concurrency, no hashing, no journal, no
provenance) and migrate, as MB/s and files/s, the ratio migrate/bare, and migrate's peak RSS against
100 MB + transfers x chunk size. Goals (issue 4): large >= 0.85, small >= 0.8, RSS within the bound.
Also (issue 15): migrate's API calls per file copied for each remote (from its --report; Drive <= 1.05
for the small set, folders included), and the relay's CPU per GiB next to the hashing floor (the same
digests over the same bytes in memory; goal <= 2 x floor + 1.5 s/GiB).
A third side, bare+hashes, is the bare loop that also computes the digests migrate must compute (MD5,
SHA-256, quickXor) and nothing else: bare+hashes/bare is the best ratio any relay that hashes can reach
on this machine, and migrate/bare+hashes is what migrate itself (journal, plan, checks) costs.
The sides run as child processes against one in-process emulator (TLS), one after the other, in
several rounds that rotate which side goes first; each ratio is the median of the rounds' ratios
(one run of any side varies by 10-20% on a shared 2-core machine). Each round also prints the CPU
seconds of the relay process and of the emulator, which share the machine's cores.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from driveferry.emulator.remotes import remote_sections, remotes_toml
from driveferry.emulator.seed import seed_emulator
from driveferry.emulator.server import Emulator
from driveferry.integrity.hashes import MultiHasher
from driveferry.migrate.relay import Relay, rechunk
from driveferry.migrate.settings import DEFAULT_CHUNK as CHUNK  # the same chunk for both sides
from driveferry.providers.base import Entry, Kind, UploadMeta
from driveferry.units import parse_size


def bare(config: str, src_path: str, dst_path: str, transfers: int, chunk: int, hashing: bool = False) -> None:
    """The baseline: walk, then Range download -> resumable upload per file; nothing else.

    With `hashing`, each chunk is also fed to the digests migrate must compute for this pair (MD5,
    SHA-256 and the source's quickXor, the same MultiHasher), and nothing else is added: the least
    work any relay meeting issue 4 can do, so hashed/bare is the ceiling of migrate/bare here."""
    from driveferry import config as cfg
    from driveferry.providers.ops import walk_files
    from driveferry.providers.registry import open_remote
    conf = cfg.load_config(config)
    src, sp = open_remote(src_path, conf)
    dst, dp = open_remote(dst_path, conf)
    root = src.stat(sp)
    parent = dst.root()
    for part in [p for p in dp.split("/") if p]:
        parent = dst.mkdir(parent, part)
    files = [w.entry for w in walk_files(src, root) if w.entry.kind is Kind.FILE]
    kinds = Relay(src, dst).kinds
    local = threading.local()

    def copy(entry: Entry) -> None:
        # migrate's own chunking (one reused buffer per thread, views sent as they are): the bare loop
        # differs from migrate only by what migrate adds, not by how bytes are regrouped
        size = entry.size or 0
        session = dst.begin_upload(parent, entry.name, size, UploadMeta())
        buf = getattr(local, "buf", None)
        if buf is None:
            buf = local.buf = bytearray(chunk)
        offset = 0
        view = memoryview(buf)[:min(size, chunk)]
        hasher = MultiHasher(kinds) if hashing else None
        for piece in rechunk(src.open_range(entry, 0, size), view):
            if hasher:
                hasher.update(piece)
            session.send(offset, piece, offset + len(piece) >= size)
            offset += len(piece)
        if size == 0:
            session.send(0, b"", True)
        if hasher:
            hasher.hexdigests()

    with ThreadPoolExecutor(transfers) as pool:
        list(pool.map(copy, files))


_PEAK = ("import resource, runpy, sys\n"
         "sys.argv = sys.argv[1:]\n"
         "try:\n    runpy.run_path(sys.argv[0], run_name='__main__') if sys.argv[0].endswith('.py') else "
         "runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)\n"
         "finally:\n    print('PEAK_RSS_KB=%d' % resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n")


def _child(args: list[str], env: dict[str, str]) -> tuple[float, int, float]:
    """Run `python <script|-m module> ...` as a child: (seconds, its own peak RSS in bytes, its CPU seconds)."""
    target = args[2] if args[1] == "-m" else args[1]
    rest = args[3:] if args[1] == "-m" else args[2:]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    proc = subprocess.run([args[0], "-c", _PEAK, target, *rest], env=env, capture_output=True, text=True)
    elapsed = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    peak = [int(line.split("=")[1]) for line in proc.stderr.splitlines() if line.startswith("PEAK_RSS_KB=")]
    if proc.returncode != 0 or not peak:
        raise SystemExit(f"{args[1:4]} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return elapsed, peak[0] * 1024, cpu


def _emulator_dir(workdir: Path, name: str, spec: dict[str, Any]) -> Path:
    """The emulator's data on tmpfs when there is room: it stands in for the clouds, whose disks are not
    the relay's, and its writes would otherwise be flushed by the journal's fsyncs in migrate's time.
    The journal itself stays in `workdir`, on disk, where a relay keeps it."""
    shm = Path("/dev/shm")
    need = 3 * sum(parse_size(str(f["size"])) for f in spec["onedrive"].get("files", [])) + (1 << 30)
    if shm.is_dir() and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free > need:
        return Path(tempfile.mkdtemp(prefix=f"driveferry-bench-{name}-", dir=shm))
    return workdir / name / "emu"


def _own_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def hash_floor_s_per_gib(kinds: frozenset[Any] | None = None) -> float:
    """CPU seconds per GiB of the digests migrate streams (the relay's kinds for OneDrive -> Drive),
    over bytes already in memory: the least CPU any relay that proves its copies can spend."""
    from driveferry.integrity.hashes import HashType
    kinds = kinds or frozenset({HashType.MD5, HashType.SHA256, HashType.QUICKXOR})
    block = memoryview(os.urandom(CHUNK))
    blocks = max(1, (256 << 20) // CHUNK)
    start = _own_cpu()
    hasher = MultiHasher(kinds)
    for _ in range(blocks):
        hasher.update(block)
    hasher.hexdigests()
    return (_own_cpu() - start) / (blocks * CHUNK / 2**30)


SIDES = ("bare", "hashed", "migrate")
LABELS = {"bare": "bare loop", "hashed": "bare+hashes", "migrate": "migrate"}


def _median_ratio(pairs: list[dict[str, Any]], num: str, den: str) -> tuple[float, list[float]]:
    """Median over rounds of seconds(num) / seconds(den), i.e. throughput(den side) / throughput(num side)."""
    ratios = sorted(p[num]["s"] / p[den]["s"] for p in pairs)
    return statistics.median(ratios), ratios


def run_set(name: str, spec: dict[str, Any], transfers: int, rounds: int, workdir: Path) -> dict[str, Any]:
    """`rounds` rounds of (bare, hashed, migrate) against one emulator, each side into its own destination
    folder (and journal), the order rotated every round. Machines drift: a round's sides run back to back,
    and the figures judged are medians of per-round ratios."""
    (workdir / name).mkdir(parents=True, exist_ok=True)
    with Emulator(_emulator_dir(workdir, name, spec), tls=True) as emu:
        seed_emulator(emu, spec)
        graph: Any = next(m for m in emu.modules if getattr(m, "route_prefix", "") == "graph.")
        drive: Any = next(m for m in emu.modules if getattr(m, "route_prefix", "") == "drive.")
        total = int(graph.model.folder_size(graph.model.root().id))
        nfiles = sum(1 for i in graph.model.descendant_ids(graph.model.root().id)
                     if graph.model.get(i).kind == "file")
        config = workdir / name / "remotes.toml"
        config.write_text(remotes_toml(remote_sections(emu.describe())))
        env = {**os.environ, "DRIVEFERRY_CONFIG": str(config)}
        pairs = []
        for r in range(rounds):
            cmds = {side: [sys.executable, __file__, f"--{side}-child", str(config), str(transfers),
                           "emu-onedrive:/Set", f"emu-gdrive:{side}-{r}"] for side in ("bare", "hashed")}
            cmds["migrate"] = [sys.executable, "-m", "driveferry.cli", "migrate", "emu-onedrive:/Set",
                               f"emu-gdrive:migrate-{r}", "--journal", str(workdir / name / f"journal-{r}.sqlite3"),
                               "--transfers", str(transfers), "-q",
                               "--report", str(workdir / name / f"report-{r}.json")]
            out: dict[str, Any] = {}
            for side in SIDES[r % 3:] + SIDES[:r % 3]:
                os.sync()  # no writeback left over from the previous child
                emu_before = _own_cpu()
                seconds, rss, cpu = _child(cmds[side], env)
                out[side] = {"s": seconds, "rss": rss, "cpu": cpu, "emu_cpu": _own_cpu() - emu_before}
                for copy in drive.model.find_by_path(f"{side}-{r}"):
                    drive.model.delete(copy.id)  # checked already by the child; frees the emulator's space
            calls = json.loads((workdir / name / f"report-{r}.json").read_text())["summary"].get("api_calls", {})
            out["calls_per_file"] = {remote: c.get("per_file") for remote, c in calls.items()}
            pairs.append(out)
    ratio, ratios = _median_ratio(pairs, "bare", "migrate")
    secs = {side: statistics.median(p[side]["s"] for p in pairs) for side in SIDES}
    return {"set": name, "files": nfiles, "bytes": total, "rounds": pairs, "ratios": ratios, "ratio": ratio,
            "ceiling": _median_ratio(pairs, "bare", "hashed")[0],
            "overhead": _median_ratio(pairs, "hashed", "migrate")[0],
            **{f"{side}_s": secs[side] for side in SIDES},
            **{f"{side}_MBps": total / secs[side] / 1e6 for side in SIDES},
            **{f"{side}_files_per_s": nfiles / secs[side] for side in SIDES},
            "migrate_peak_rss_MB": max(p["migrate"]["rss"] for p in pairs) / 1e6,
            "calls_per_file": pairs[-1]["calls_per_file"],
            "migrate_cpu_s_per_GiB": statistics.median(p["migrate"]["cpu"] for p in pairs) / (total / 2**30),
            "hash_floor_s_per_GiB": hash_floor_s_per_gib(),
            "rss_bound_MB": (100e6 + transfers * CHUNK) / 1e6}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--large", default="2G", help="bytes of large files (256 MiB each; default 2G)")
    ap.add_argument("--small", type=int, default=2000, help="number of 64 KiB files (default 2000)")
    ap.add_argument("--transfers", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3, help="rounds of (bare, hashed, migrate) per set (default 3)")
    ap.add_argument("--bare-child", nargs=4, help=argparse.SUPPRESS)
    ap.add_argument("--hashed-child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.bare_child or args.hashed_child:
        config, transfers, src, dst = args.bare_child or args.hashed_child
        bare(config, src, dst, int(transfers), CHUNK, hashing=bool(args.hashed_child))
        return
    large = parse_size(args.large)
    each = min(large, 256 * 1024 * 1024)
    large_spec = {"seed": 1, "onedrive": {"files": [{"path": f"Set/big-{i}.bin", "size": each}
                                                     for i in range(max(1, large // each))]}}
    small_spec = {"seed": 2, "onedrive": {"bulk": [{"dir": "Set/small", "count": args.small, "size": "64K"}]}}
    results = []
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; {args.rounds} rounds per set; "
          "CPU seconds: relay process / emulator (in this process)")
    with tempfile.TemporaryDirectory(prefix="driveferry-bench-") as tmp:
        for name, spec in (("large", large_spec), ("small", small_spec)):
            try:
                r = run_set(name, spec, args.transfers, args.rounds, Path(tmp))
            finally:
                for leftover in Path("/dev/shm").glob(f"driveferry-bench-{name}-*"):
                    shutil.rmtree(leftover, ignore_errors=True)
            results.append(r)
            goal = 0.85 if name == "large" else 0.8
            print(f"{name}: {r['files']} files, {r['bytes'] / 2**20:.0f} MiB, {args.transfers} transfers")
            for i, pair in enumerate(r["rounds"]):
                print(f"  round {i + 1}: " + "   ".join(
                    f"{side} {pair[side]['s']:6.2f} s (CPU {pair[side]['cpu']:5.1f} / {pair[side]['emu_cpu']:5.1f})"
                    for side in SIDES) + f"   ratio {pair['bare']['s'] / pair['migrate']['s']:.2f}")
            for side in SIDES:
                print(f"  {LABELS[side]:<12}: {r[side + '_s']:7.2f} s  {r[side + '_MBps']:7.1f} MB/s  "
                      f"{r[side + '_files_per_s']:7.1f} files/s  (median)")
            print(f"  ratio migrate/bare = {r['ratio']:.2f} median of rounds (goal >= {goal})   "
                  f"peak RSS {r['migrate_peak_rss_MB']:.0f} MB (bound {r['rss_bound_MB']:.0f} MB)")
            print(f"  ceiling bare+hashes/bare = {r['ceiling']:.2f} (the required digests alone, no journal); "
                  f"migrate/bare+hashes = {r['overhead']:.2f} (what migrate adds beyond them)")
            floor = r["hash_floor_s_per_GiB"]
            print(f"  relay CPU {r['migrate_cpu_s_per_GiB']:.2f} s/GiB; hashing floor {floor:.2f} s/GiB "
                  f"(goal <= 2 x floor + 1.5 = {2 * floor + 1.5:.2f})")
            print("  API calls per file copied (migrate): " + ", ".join(
                f"{remote} {v:.3f}" if v is not None else f"{remote} -" for remote, v in r["calls_per_file"].items())
                  + (" (goal for Drive <= 1.05, folders included)" if name == "small" else ""))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
