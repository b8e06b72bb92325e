"""Relay benchmark: `driveferry migrate` against a bare download-and-upload loop, same run, same emulator.

    python benchmarks/relay.py                 # 2 GiB of large files, 2,000 x 64 KiB, 4 transfers
    python benchmarks/relay.py --large 512M --small 500 --realism-files 300

Prints, for each set: the bare loop (same providers, same concurrency, no hashing, no journal, no
provenance) and migrate, as MB/s and files/s, the ratio migrate/bare, and migrate's peak RSS against
100 MB + transfers x chunk size. Goals (issue 4): large >= 0.85, small >= 0.8, RSS within the bound.
Also (issue 15): migrate's API calls per file copied for each remote (from its --report; Drive <= 1.05
for the small set, folders included), and the relay's CPU per GiB relayed next to the hashing floor (the
same digests over the same bytes in memory; goal <= 2 x floor + 1.5 s/GiB), judged less the process's
start-up (imports, sign-in, journal, plan: paid once per run, measured by the same command on a one-file
tree in the same round), and also printed whole, start-up included.
Next to it, bare+hashes' CPU per GiB the same way: this transport and these digests and nothing else, the
least any relay that proves its copies like this spends on this machine; where it is above (c)'s goal,
the goal is out of this transport's reach here (kernel TCP, TLS and the digests cost what the CPU makes them).
Two more sides: bare+hashes, the bare loop that also computes exactly the digests migrate streams for
each file (`migrate/hash_set.py`: SHA-256 and quickXor for OneDrive -> Drive, plus MD5 for a file sent
in one request) and nothing else, and bare+old hashes, the same with the three digests migrate streamed
before (MD5, SHA-256, quickXor) for every file: bare+hashes/bare is the best ratio any relay that proves
its copies this way can reach on this machine, migrate/bare+hashes is what migrate itself (journal,
plan, checks) costs, and bare+old/bare keeps the cost of the dropped MD5 visible.
(d) A realism round: migrate of small files against a Drive rate-limited as configs/emulator/real.toml
(3 writes per emulated second, burst 20), its clock scaled so the limit is `--realism-rate` writes per wall
second (well below what the machine relays unthrottled) and Graph's realism off (the source is not measured):
files/s against rate / 1 call per file (goal >= 0.9).
The sides run as child processes against one in-process emulator (TLS), one after the other, in
several rounds that rotate which side goes first; each ratio is the median of the rounds' ratios
(one run of any side varies by 10-20% on a shared 2-core machine; 5 rounds by default). Each round
also prints the CPU seconds of the relay process and of the emulator, which share the machine's cores,
and the steal time while each side ran (a shared VM's host serving other tenants; a round whose sides
saw very different steal compares the machine's load, not the sides).
"""

from __future__ import annotations

import argparse
import compileall
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

import peak  # benchmarks/peak.py, next to this script

import driveferry
from driveferry.integrity.hashes import HashType, MultiHasher
from driveferry.migrate.relay import Relay, rechunk
from driveferry.migrate.settings import DEFAULT_CHUNK as CHUNK  # the same chunk for both sides
from driveferry.providers.base import Entry, Kind, UploadMeta
from driveferry.units import parse_size

# The emulator's modules (and werkzeug's) are imported where the emulator runs, in this process, not at
# the top: the bare loop's children run this file too, and would pay them (~85 ms of imports) in the
# baseline's start-up.

OLD_KINDS = frozenset({HashType.MD5, HashType.SHA256, HashType.QUICKXOR})  # what migrate streamed before #15
REAL_PROFILE = Path(__file__).resolve().parent.parent / "configs" / "emulator" / "real.toml"


def bare(config: str, src_path: str, dst_path: str, transfers: int, chunk: int, hashing: str = "") -> None:
    """The baseline: walk, then Range download -> resumable upload per file; nothing else.

    With `hashing` "now", each chunk is also fed to the digests migrate streams for that file (the
    relay's own choice, the same MultiHasher), and nothing else is added: the least work any relay
    that proves its copies this way can do, so hashed/bare is the ceiling of migrate/bare here. With
    "old", the three digests migrate streamed before issue #15 (MD5, SHA-256, quickXor)."""
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
    relay = Relay(src, dst)
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
        kinds = relay.kinds_for(entry, whole=size <= chunk) if hashing == "now" else OLD_KINDS
        hasher = MultiHasher(kinds) if hashing else None
        for piece in rechunk(src.open_range(entry, 0, size), view, hasher):  # hashed as migrate hashes
            session.send(offset, piece, offset + len(piece) >= size)
            offset += len(piece)
        if size == 0:
            session.send(0, b"", True)
        if hasher:
            hasher.hexdigests()

    with ThreadPoolExecutor(transfers) as pool:
        list(pool.map(copy, files))


def _child(args: list[str], env: dict[str, str]) -> tuple[float, int, float]:
    """Run `python <script|-m module> ...` as a child: (seconds, its own peak RSS in bytes, its CPU seconds)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    # its own peak (VmHWM): ru_maxrss would hold its parent's, this process hosting the emulator (peak.py)
    proc = subprocess.run(peak.wrap(args), env=env, capture_output=True, text=True)
    elapsed = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    kb = peak.peak_kb(proc.stderr)
    if proc.returncode != 0 or kb is None:
        raise SystemExit(f"{args[1:4]} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return elapsed, kb * 1024, cpu


def _child_env(config: Path, workdir: Path) -> dict[str, str]:
    """The children's environment: this run's remotes, and a state directory (token caches) of the
    run's own, so no side starts with what earlier runs left in the user's (~/.local/state)."""
    return {**os.environ, "DRIVEFERRY_CONFIG": str(config), "DRIVEFERRY_STATE_DIR": str(workdir / "state")}


def _emulator_dir(workdir: Path, name: str, spec: dict[str, Any]) -> Path:
    """The emulator's data on tmpfs when there is room: it stands in for the clouds, whose disks are not
    the relay's, and its writes would otherwise be flushed by the journal's fsyncs in migrate's time.
    The journal itself stays in `workdir`, on disk, where a relay keeps it."""
    shm = Path("/dev/shm")
    need = 3 * sum(parse_size(str(f["size"])) for f in spec["onedrive"].get("files", [])) + (1 << 30)
    if shm.is_dir() and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free > need:
        return Path(tempfile.mkdtemp(prefix=f"driveferry-bench-{name}-", dir=shm))
    return workdir / name / "emu"


def _steal_s() -> float:
    """CPU seconds this machine's vCPUs have waited for the host so far (/proc/stat "steal"), or 0:
    on a shared VM another tenant's load shows here, and a side that ran while it was high ran slow."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = fh.readline().split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _own_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def hash_floor_s_per_gib(kinds: frozenset[HashType]) -> float:
    """CPU seconds per GiB of the digests `kinds` over bytes already in memory: with the kinds migrate
    streams for a large OneDrive -> Drive file, the least CPU any relay that proves its copies can spend."""
    block = memoryview(os.urandom(CHUNK))
    blocks = max(1, (256 << 20) // CHUNK)
    start = _own_cpu()
    hasher = MultiHasher(kinds)
    for _ in range(blocks):
        hasher.update(block)
    hasher.hexdigests()
    return (_own_cpu() - start) / (blocks * CHUNK / 2**30)


SIDES = ("bare", "hashed", "hashed_old", "migrate")
LABELS = {"bare": "bare loop", "hashed": "bare+hashes", "hashed_old": "bare+old hashes", "migrate": "migrate"}
NOW_KINDS = frozenset({HashType.SHA256, HashType.QUICKXOR})  # migrate's stream for a large OneDrive -> Drive file


def _median_ratio(pairs: list[dict[str, Any]], num: str, den: str) -> tuple[float, list[float]]:
    """Median over rounds of seconds(num) / seconds(den), i.e. throughput(den side) / throughput(num side)."""
    ratios = sorted(p[num]["s"] / p[den]["s"] for p in pairs)
    return statistics.median(ratios), ratios


def run_set(name: str, spec: dict[str, Any], transfers: int, rounds: int, workdir: Path) -> dict[str, Any]:
    """`rounds` rounds of every side against one emulator, each side into its own destination
    folder (and journal), the order rotated every round. Machines drift: a round's sides run back to back,
    and the figures judged are medians of per-round ratios."""
    from driveferry.emulator.remotes import remote_sections, remotes_toml
    from driveferry.emulator.seed import seed_emulator
    from driveferry.emulator.server import Emulator
    (workdir / name).mkdir(parents=True, exist_ok=True)
    with Emulator(_emulator_dir(workdir, name, spec), tls=True) as emu:
        seed_emulator(emu, spec)
        graph: Any = next(m for m in emu.modules if getattr(m, "route_prefix", "") == "graph.")
        drive: Any = next(m for m in emu.modules if getattr(m, "route_prefix", "") == "drive.")
        top = graph.model.by_path("Set")
        total = int(graph.model.folder_size(top.id))
        nfiles = sum(1 for i in graph.model.descendant_ids(top.id) if graph.model.get(i).kind == "file")
        fixed = graph.model.child(graph.model.root().id, "One") is not None  # a one-file tree: start-up cost
        config = workdir / name / "remotes.toml"
        config.write_text(remotes_toml(remote_sections(emu.describe())))
        env = _child_env(config, workdir)
        pairs = []
        for r in range(rounds):
            cmds = {side: [sys.executable, __file__, "--child", side, str(config), str(transfers),
                           "emu-onedrive:/Set", f"emu-gdrive:{side}-{r}"] for side in ("bare", "hashed", "hashed_old")}
            cmds["migrate"] = [sys.executable, "-m", "driveferry.cli", "migrate", "emu-onedrive:/Set",
                               f"emu-gdrive:migrate-{r}", "--journal", str(workdir / name / f"journal-{r}.sqlite3"),
                               "--transfers", str(transfers), "-q",
                               "--report", str(workdir / name / f"report-{r}.json")]
            out: dict[str, Any] = {}
            for side in SIDES[r % len(SIDES):] + SIDES[:r % len(SIDES)]:
                os.sync()  # no writeback left over from the previous child
                emu_before, steal_before = _own_cpu(), _steal_s()
                seconds, rss, cpu = _child(cmds[side], env)
                out[side] = {"s": seconds, "rss": rss, "cpu": cpu, "emu_cpu": _own_cpu() - emu_before,
                             "steal": _steal_s() - steal_before}
                for copy in drive.model.find_by_path(f"{side}-{r}"):
                    drive.model.delete(copy.id)  # checked already by the child; frees the emulator's space
                if side == "migrate":  # (c)'s floor, measured next to the relay it judges: the machine's
                    out["floor"] = hash_floor_s_per_gib(NOW_KINDS)  # speed drifts between rounds
            if fixed:  # the same commands on a one-file tree: what each process costs whatever it relays
                ones = {side: [sys.executable, __file__, "--child", side, str(config), str(transfers),
                               "emu-onedrive:/One", f"emu-gdrive:{side}-one-{r}"] for side in ("bare", "hashed")}
                ones["migrate"] = [sys.executable, "-m", "driveferry.cli", "migrate", "emu-onedrive:/One",
                                   f"emu-gdrive:migrate-one-{r}", "--journal",
                                   str(workdir / name / f"journal-one-{r}.sqlite3"), "--transfers", str(transfers), "-q"]
                for side, one in ones.items():
                    out[f"{side}_fixed_cpu"] = _child(one, env)[2]
            calls = json.loads((workdir / name / f"report-{r}.json").read_text())["summary"].get("api_calls", {})
            out["calls_per_file"] = {remote: c.get("per_file") for remote, c in calls.items()}
            pairs.append(out)
    ratio, ratios = _median_ratio(pairs, "bare", "migrate")
    secs = {side: statistics.median(p[side]["s"] for p in pairs) for side in SIDES}
    return {"set": name, "files": nfiles, "bytes": total, "rounds": pairs, "ratios": ratios, "ratio": ratio,
            "ceiling": _median_ratio(pairs, "bare", "hashed")[0],
            "ceiling_old": _median_ratio(pairs, "bare", "hashed_old")[0],
            "overhead": _median_ratio(pairs, "hashed", "migrate")[0],
            **{f"{side}_s": secs[side] for side in SIDES},
            **{f"{side}_MBps": total / secs[side] / 1e6 for side in SIDES},
            **{f"{side}_files_per_s": nfiles / secs[side] for side in SIDES},
            "migrate_peak_rss_MB": max(p["migrate"]["rss"] for p in pairs) / 1e6,
            "calls_per_file": pairs[-1]["calls_per_file"],
            "migrate_cpu_s_per_GiB": statistics.median(p["migrate"]["cpu"] for p in pairs) / (total / 2**30),
            **({f"{side}_fixed_cpu_s": statistics.median(p[f"{side}_fixed_cpu"] for p in pairs)
                for side in ("bare", "hashed", "migrate")} if fixed else {}),
            **({f"{side}_marginal_cpu_s_per_GiB": statistics.median(
                (p[side]["cpu"] - p[f"{side}_fixed_cpu"]) / (total / 2**30) for p in pairs)
                for side in ("bare", "hashed", "migrate")} if fixed else {}),
            "hash_floor_s_per_GiB": statistics.median(p["floor"] for p in pairs),
            **({"c_margins": [(p["migrate"]["cpu"] - p["migrate_fixed_cpu"]) / (total / 2**30) - (2 * p["floor"] + 1.5)
                              for p in pairs]} if fixed else {}),
            "hash_floor_old_s_per_GiB": hash_floor_s_per_gib(OLD_KINDS),
            "rss_bound_MB": (100e6 + transfers * CHUNK) / 1e6}


def run_realism(files: int, transfers: int, rate_per_wall_s: float, workdir: Path) -> dict[str, Any]:
    """(d) migrate of `files` x 64 KiB under configs/emulator/real.toml, Drive's write limit (writes_per_s
    per emulated second, its burst of 20 kept) made `rate_per_wall_s` per wall second by the clock scale;
    files/s against the rate (one call per file). The burst lets `write_burst` calls through at once, so
    the run must be long against burst / rate for the ratio to measure the rate (600 files at 5/s: 3 %)."""
    import tomllib

    from driveferry.emulator.realism import Realism
    from driveferry.emulator.realism.settings import Settings
    from driveferry.emulator.remotes import remote_sections, remotes_toml
    from driveferry.emulator.seed import seed_emulator
    from driveferry.emulator.server import Emulator
    profile = tomllib.loads(REAL_PROFILE.read_text(encoding="utf-8"))
    writes = float(profile["drive"]["rate_limit"]["writes_per_s"])
    profile["clock_scale"] = rate_per_wall_s / writes
    # the source unrestricted: (d) is Drive's rate limit (a Graph throttling episode waits 41-315 s)
    profile["graph"] = {}
    spec = {"seed": 3, "onedrive": {"bulk": [{"dir": "Set/small", "count": files, "size": "64K"}]}}
    where = workdir / "realism"
    where.mkdir(parents=True, exist_ok=True)
    realism = Realism(Settings.from_dict(profile))
    with Emulator(_emulator_dir(workdir, "realism", spec), tls=True, realism=realism) as emu:
        seed_emulator(emu, spec)
        config = where / "remotes.toml"
        config.write_text(remotes_toml(remote_sections(emu.describe())))
        env = _child_env(config, workdir)
        report = where / "report.json"
        seconds, rss, cpu = _child([sys.executable, "-m", "driveferry.cli", "migrate", "emu-onedrive:/Set",
                                    "emu-gdrive:realism", "--journal", str(where / "journal.sqlite3"),
                                    "--transfers", str(transfers), "-q", "--report", str(report)], env)
        summary = json.loads(report.read_text())["summary"]
        counters = realism.counters()
    calls = summary.get("api_calls", {}).get("emu-gdrive", {})
    return {"files": files, "copied": summary.get("copied"), "s": seconds, "files_per_s": files / seconds,
            "rate_per_s": rate_per_wall_s, "clock_scale": profile["clock_scale"],
            "burst": profile["drive"]["rate_limit"]["write_burst"], "ratio": files / seconds / rate_per_wall_s,
            "drive_calls_per_file": calls.get("per_file"), "refused": counters.get("drive.rate_limited", 0),
            "realism_counters": counters,
            "peak_rss_MB": rss / 1e6, "cpu_s": cpu}


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def _print_set(r: dict[str, Any], transfers: int) -> None:
    name = r["set"]
    print(f"{name}: {r['files']} files, {r['bytes'] / 2**20:.0f} MiB, {transfers} transfers")
    for i, pair in enumerate(r["rounds"]):
        print(f"  round {i + 1}: " + "   ".join(
            f"{side} {pair[side]['s']:6.2f} s (CPU {pair[side]['cpu']:5.1f} / {pair[side]['emu_cpu']:5.1f}"
            f", steal {pair[side]['steal']:4.1f})"
            for side in SIDES) + f"   ratio {pair['bare']['s'] / pair['migrate']['s']:.2f}")
    for side in SIDES:
        print(f"  {LABELS[side]:<16}: {r[side + '_s']:7.2f} s  {r[side + '_MBps']:7.1f} MB/s  "
              f"{r[side + '_files_per_s']:7.1f} files/s  (median)")
    print(f"  ceiling bare+hashes/bare = {r['ceiling']:.2f}; bare+old hashes/bare = {r['ceiling_old']:.2f} "
          f"(the digests alone, no journal)")
    rss_ok = r["migrate_peak_rss_MB"] <= r["rss_bound_MB"]
    print(f"  peak RSS {r['migrate_peak_rss_MB']:.0f} MB, bound 100 MB + transfers x chunk = "
          f"{r['rss_bound_MB']:.0f} MB: {_verdict(rss_ok)}")
    drive = r["calls_per_file"].get("emu-gdrive")
    print("  API calls per file copied (migrate): " + ", ".join(
        f"{remote} {v:.3f}" if v is not None else f"{remote} -" for remote, v in r["calls_per_file"].items()))
    if name == "large":
        print(f"  (a) migrate/bare = {r['ratio']:.2f} (goal >= 0.85): {_verdict(r['ratio'] >= 0.85)}; "
              f"migrate/bare+hashes = {r['overhead']:.2f} (goal >= 0.95): {_verdict(r['overhead'] >= 0.95)}")
        floor, old = r["hash_floor_s_per_GiB"], r["hash_floor_old_s_per_GiB"]
        goal = 2 * floor + 1.5
        gib = r["bytes"] / 2**30
        if "migrate_marginal_cpu_s_per_GiB" in r:  # judged per GiB relayed: a run's start-up is paid once
            marginal = r["migrate_marginal_cpu_s_per_GiB"]
            margin = statistics.median(r["c_margins"])  # each round against the floor measured in it
            print(f"  (c) relay CPU per GiB relayed {marginal:.2f} s/GiB (the process less its start-up: "
                  f"{r['migrate_fixed_cpu_s']:.2f} s of CPU for the same migrate of a one-file tree); hashing floor "
                  f"{floor:.2f} s/GiB (SHA-256 + quickXor, measured after migrate in each round; the old three: "
                  f"{old:.2f}); goal <= 2 x floor + 1.5 = {goal:.2f} (medians); each round against its own "
                  f"floor: {', '.join(f'{m:+.2f}' for m in r['c_margins'])} s/GiB from its goal, median "
                  f"{margin:+.2f}: {_verdict(margin <= 0)}")
            print(f"      the whole process on this {gib:.1f} GiB set, start-up included: "
                  f"{r['migrate_cpu_s_per_GiB']:.2f} s/GiB ({r['migrate_fixed_cpu_s'] / gib:.2f} of it start-up); "
                  f"the bare loop {r['bare_marginal_cpu_s_per_GiB']:.2f} s/GiB relayed, start-up "
                  f"{r['bare_fixed_cpu_s']:.2f} s")
            least = r["hashed_marginal_cpu_s_per_GiB"]
            print(f"      bare+hashes (this transport and these digests, nothing else: the least any relay "
                  f"proving its copies this way spends here) {least:.2f} s/GiB relayed, "
                  f"{least - goal:+.2f} from the goal{'' if least <= goal else ': the goal is out of reach of this transport on this machine'}")
        else:
            print(f"  (c) relay CPU {r['migrate_cpu_s_per_GiB']:.2f} s/GiB, start-up included; hashing floor "
                  f"{floor:.2f} s/GiB; goal <= 2 x floor + 1.5 = {goal:.2f}: "
                  f"{_verdict(r['migrate_cpu_s_per_GiB'] <= goal)}")
    else:
        print(f"  (b) files/s migrate/bare = {r['ratio']:.2f} (goal >= 0.8): {_verdict(r['ratio'] >= 0.8)}; "
              f"Drive calls per small file {drive if drive is None else f'{drive:.3f}'} (goal <= 1.05, folders "
              f"included): {_verdict(drive is not None and drive <= 1.05)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--large", default="2G", help="bytes of large files (256 MiB each; default 2G; 0 skips)")
    ap.add_argument("--small", type=int, default=2000, help="number of 64 KiB files (default 2000; 0 skips)")
    ap.add_argument("--transfers", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=5, help="rounds of every side per set (default 5)")
    ap.add_argument("--realism-files", type=int, default=600,
                    help="(d) small files migrated under the rate-limited Drive (default 600; 0 skips)")
    ap.add_argument("--realism-rate", type=float, default=5.0,
                    help="(d) Drive's write limit in writes per wall second (default 5)")
    ap.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        side, config, transfers, src, dst = args.child
        bare(config, src, dst, int(transfers), CHUNK, hashing={"hashed": "now", "hashed_old": "old"}.get(side, ""))
        return
    # The children start from compiled bytecode, as an installed wheel does (pip compiles at install): from
    # an editable checkout under PYTHONDONTWRITEBYTECODE=1 (set on some machines, this one too) each
    # child would otherwise compile every driveferry module it imports, which migrate pays more than
    # the bare loop does. Python still reads .pyc files with that variable set; it only never writes them.
    compileall.compile_dir(str(Path(driveferry.__file__).parent), quiet=1)
    large = parse_size(args.large)
    each = max(1, min(large, 256 * 1024 * 1024))
    large_spec = {"seed": 1, "onedrive": {"files": [{"path": f"Set/big-{i}.bin", "size": each}
                                                     for i in range(max(1, large // each))]
                                          + [{"path": "One/tiny.bin", "size": "1K"}]}}
    small_spec = {"seed": 2, "onedrive": {"bulk": [{"dir": "Set/small", "count": args.small, "size": "64K"}]}}
    results: list[dict[str, Any]] = []
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; {args.rounds} rounds per set; "
          "CPU seconds: relay process / emulator (in this process), and the machine's steal time (the host "
          "running other tenants) while the side ran")
    with tempfile.TemporaryDirectory(prefix="driveferry-bench-") as tmp:
        sets = [(n, sp) for n, sp, on in (("large", large_spec, large), ("small", small_spec, args.small)) if on]
        for name, spec in sets:
            try:
                r = run_set(name, spec, args.transfers, args.rounds, Path(tmp))
            finally:
                for leftover in Path("/dev/shm").glob(f"driveferry-bench-{name}-*"):
                    shutil.rmtree(leftover, ignore_errors=True)
            results.append(r)
            _print_set(r, args.transfers)
        if args.realism_files:
            try:
                d = run_realism(args.realism_files, args.transfers, args.realism_rate, Path(tmp))
            finally:
                for leftover in Path("/dev/shm").glob("driveferry-bench-realism-*"):
                    shutil.rmtree(leftover, ignore_errors=True)
            results.append({"set": "realism", **d})
            print(f"realism: {d['copied']} of {d['files']} x 64 KiB under real.toml, Drive writes limited to "
                  f"{d['rate_per_s']:.1f}/wall s (clock x{d['clock_scale']:.2f}, burst {d['burst']}), {args.transfers} transfers")
            print(f"  (d) {d['files_per_s']:.1f} files/s in {d['s']:.1f} s = {d['ratio']:.2f} x rate / 1 call per "
                  f"file (goal >= 0.9): {_verdict(d['ratio'] >= 0.9)}; Drive calls per file "
                  f"{d['drive_calls_per_file']}, refused by the limit {d['refused']} times")
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
