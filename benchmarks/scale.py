"""Scale benchmark (issue #16): a generated tree of 10k and 100k files (1M with --million) on the emulator.

    python benchmarks/scale.py                       # 10k and 100k, 100 files per folder
    python benchmarks/scale.py --sizes 10000 --shapes 100,10
    python benchmarks/scale.py --million             # adds 1M (~3 GB of local files for verify, under --tmp)
    python benchmarks/scale.py --seed-only --million # only the emulator's seeding at 1M
    python benchmarks/scale.py --million --sizes 10000 --shapes 10 --copy-only --no-verify  # copy at 10 per folder
    python benchmarks/scale.py --verify-only --sizes 300000   # only verify (Drive tree + local copy)

Per tree it prints, each process's own peak RSS (VmHWM, read by benchmarks/peak.py's shim; not
wait4's ru_maxrss, which holds this parent's when that is larger):
- seed: the emulator generating the OneDrive tree, the same tree on Drive and on local disk (verify; not
  with --no-verify);
- plan: `migrate --json` from OneDrive to Drive at --latency-ms (default 50) per request, time until the
  plan is complete ("remaining" event), the journal's bytes per planned entry;
- copy: files/s over a bounded sample (--sample-bytes, default 4 MiB: ~1,600 files of 1-4 KiB) copied
  in the same run, on the full journal, from the first file started to the last one copied;
- dry-run: `migrate --dry-run` on the planned journal vs on no journal (a fresh one), and their ratio;
  the fresh one again with `--checkers 1` (a sequential first walk) against the default --checkers;
- delta: the whole OneDrive tree through Graph delta from scratch (one paged enumeration, no per-folder
  requests), its time and peak RSS (the DeltaLister returns a list: not bounded memory);
- backup day: the planned journal's --journal-backup over a simulated day (every 5 min, 288 uploads) in
  which the whole tree completes in claim order, uploaded to emu-onedrive: the base, the deltas, the
  day's total and its share of Drive's 750 GB daily cap (goal: <= 1 %);
- status: `driveferry status` on the planned journal;
- verify: `driveferry verify LOCAL emu-gdrive:Verify` of the whole local tree.
Goals (issue #16, at 1M, 100 per folder): seed <= 10 min; plan <= 10 min at <= 150 MB RSS and <= 350 B
per journal entry; dry-run <= 2x plan without journal; status <= 1 s; copy files/s at 1M >= 0.9x at
10k; verify <= 200 MB RSS. A JSON line with every figure follows the table.

Measured 2026-12-01 (2 shared cores, 50 ms latency, 100 per folder, --no-verify): plan 4.9 s at 10k and
34 s at 100k with --checkers 8, against 16.6 s and 78 s for a --checkers 1 walk (4.8x at 100k); dry-run
on the planned journal 1.17x a dry-run with no journal at 100k; Graph delta from scratch 6.7 s at 10k;
journal backup over a simulated day at 100k: 9.8 MB base, 40.8 MB in 289 uploads (0.005 % of the cap).
Measured 2026-12-01 after verify streams and journal schema 4 (load average 5-12, --no-backup): verify
peak RSS 64 MB at 10k, 69 MB at 100k (was 323 MB), 72 MB at 300k and 80 MB at 1M (--verify-only;
378 s and 958 s, 97 s and 343 s of CPU; every file ok);
journal 335 B per entry at 100k (was 361); status 1.5 s wall at 100k, about 0.8 s of it CPU.
Measured 2026-12-01 at 1M, 100 per folder (--no-delta --no-sequential --no-verify, load 0.4-1.7): seed
161 s, plan 198 s at 106 MB, 329 B per entry, dry-run 1.08x, status 0.94 s, backup day 0.046 % of the
cap; copy files/s at 1M / 10k (--copy-only --checkers 16) 0.91 at 100 and 1.08 at 10 per folder, once
download URLs came 20 per $batch and the emulator charged a batch one round trip (0.70 before).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import peak  # benchmarks/peak.py, next to this script

ROOT = Path(__file__).resolve().parent.parent
CHILD_SEED = "_seed"
CHILD_BACKUP = "_backup_day"
CHILD_DELTA = "_delta"
CAP_BYTES = 750 * 10**9  # Drive's daily upload cap (providers/gdrive/provider.py)


def _tree(files: int, per_folder: int, root: str) -> dict[str, Any]:
    return {"root": root, "files": files, "per_folder": per_folder, "size": "1K", "max_size": "4K", "seed": 7}


def _peak_mb(log: Path, usage: Any) -> float:
    """A child's own peak RSS in MB from the shim's line in its stderr log; ru_maxrss (an upper bound: it
    is max(this parent's, the child's)) only for a child killed before it could print one."""
    kb = peak.peak_kb(log.read_text(errors="replace"))
    return (kb if kb is not None else usage.ru_maxrss) / 1024


def run(cmd: list[str], env: dict[str, str], log: Path, timeout_s: float = 7200) -> dict[str, Any]:
    """Run a child to its end: wall seconds, exit code, its own peak RSS (MB) and CPU seconds (the machine
    may be shared: CPU seconds say what the wall time would be on an idle core), and its stdout lines,
    each with the second it arrived (relative to the start)."""
    start = time.monotonic()
    lines: list[tuple[float, str]] = []
    with open(log, "w") as err:
        p = subprocess.Popen(peak.wrap(cmd), env=env, stdout=subprocess.PIPE, stderr=err, text=True)
        assert p.stdout is not None
        for line in p.stdout:
            lines.append((time.monotonic() - start, line.rstrip("\n")))
            if time.monotonic() - start > timeout_s:
                p.kill()
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
    return {"s": time.monotonic() - start, "rc": p.returncode, "rss_mb": _peak_mb(log, usage),
            "cpu_s": usage.ru_utime + usage.ru_stime, "lines": lines}


def seed_child(data: str, spec_json: str, local: str) -> None:
    """In a child process: seed the emulator's data directory (OneDrive tree, Drive tree) and write the
    local copy of the Drive tree; print the seconds of each as JSON."""
    sys.path.insert(0, str(ROOT / "src"))
    from driveferry.emulator.generate import GenFile, content_bytes, parse_tree, walk
    from driveferry.emulator.seed import seed_emulator
    from driveferry.emulator.server import Emulator
    spec = json.loads(spec_json)
    out: dict[str, float] = {}
    with Emulator(data) as emu:
        for cloud in [c for c in ("onedrive", "gdrive") if c in spec]:
            t = time.monotonic()
            n = seed_emulator(emu, {cloud: spec[cloud]})[cloud]
            out[f"{cloud}_s"], out[f"{cloud}_items"] = time.monotonic() - t, n
    if "gdrive" not in spec:
        print(json.dumps(out), flush=True)
        return
    t = time.monotonic()
    tree = parse_tree(spec["gdrive"]["generate"][0], "gdrive.generate[0]")
    base = Path(local)
    for entry in walk(tree):
        if isinstance(entry, GenFile):
            path = "/".join(p for p in (tree.root, entry.folder, entry.name) if p)
            (base / entry.folder / entry.name).write_bytes(content_bytes(tree.seed, "gdrive", path, entry.size))
        else:
            (base / entry.path).mkdir(parents=True, exist_ok=True)
    out["local_s"] = time.monotonic() - t
    print(json.dumps(out), flush=True)


def backup_day_child(journal_path: str, intervals_text: str) -> None:
    """In a child process: back up a copy of a planned journal to emu-onedrive every simulated 5 minutes
    while its items complete in id order (the order workers claim them), all of them within the day;
    print the bytes uploaded as JSON."""
    import random
    import sqlite3
    from datetime import UTC, datetime, timedelta
    sys.path.insert(0, str(ROOT / "src"))
    from driveferry.commands.common import open_remotes
    from driveferry.migrate.backup import JournalBackup
    intervals = int(intervals_text)
    journal = Path(journal_path)
    provider, folder = open_remotes(None).open("emu-onedrive:BenchBackup")
    clock = [datetime(2026, 12, 1, tzinfo=UTC)]
    backup = JournalBackup(provider, folder, journal, now=lambda: clock[0])
    conn = sqlite3.connect(journal)
    ids = [r[0] for r in conn.execute("SELECT id FROM items WHERE kind != 'folder' ORDER BY id")]
    rng = random.Random(7)
    t = time.monotonic()
    backup.backup_now()
    base = backup.uploaded_bytes
    step = -(-len(ids) // intervals)
    for i in range(intervals):
        clock[0] += timedelta(minutes=5)
        done = ids[i * step:(i + 1) * step]
        with conn:  # what a completion writes: state, offsets, destination id and hashes, lease cleared
            conn.executemany("UPDATE items SET state = 'done', bytes_done = size_bytes, committed_offset = NULL, "
                             "dest_id = ?, dest_hashes = ?, lease_owner = NULL, lease_expires_at = NULL, "
                             "updated_at = ? WHERE id = ?",
                             [(f"{rng.getrandbits(132):033x}", json.dumps({"md5": f"{rng.getrandbits(128):032x}"}),
                               clock[0].isoformat(), item) for item in done])
        backup.backup_now()
    conn.close()
    print(json.dumps({"backup_base_bytes": base, "backup_day_bytes": backup.uploaded_bytes,
                      "backup_uploads": backup.uploaded, "backup_cpu_s": time.monotonic() - t,
                      "backup_cap_pct": 100 * backup.uploaded_bytes / CAP_BYTES}), flush=True)


def delta_child(spec: str) -> None:
    """In a child process: the whole tree through Graph delta from scratch (the OneDrive provider's
    DeltaLister with no cursor), as the alternative to a first walk; print the items and seconds."""
    sys.path.insert(0, str(ROOT / "src"))
    from driveferry.commands.common import open_remotes
    provider, _ = open_remotes(None).open(spec)
    lister = provider.features.delta
    if lister is None:
        raise SystemExit(f"{spec} has no delta listing (a OneDrive remote has)")
    t = time.monotonic()
    entries, _ = lister.delta(None)
    print(json.dumps({"delta_items": len(entries), "delta_s": time.monotonic() - t}), flush=True)


class Serve:
    """`driveferry emulator serve` over a seeded data directory, with per-request latency."""

    def __init__(self, data: Path, latency_ms: float, env: dict[str, str], log: Path) -> None:
        self._log = open(log, "w")  # noqa: SIM115 - closed in stop()
        self.log = log
        self.p = subprocess.Popen(peak.wrap([sys.executable, "-m", "driveferry.cli", "emulator", "serve", "--data",
                                             str(data), "--tls", "--latency-ms", str(latency_ms)]),
                                  env=env, stdout=subprocess.PIPE, stderr=self._log, text=True)
        assert self.p.stdout is not None
        line = self.p.stdout.readline()
        if not line:
            raise SystemExit(f"emulator did not start; see {log}")
        self.describe: dict[str, Any] = json.loads(line)

    def stop(self) -> float:
        """Stop it; its peak RSS in MB."""
        self.p.terminate()
        _, _, usage = os.wait4(self.p.pid, 0)  # SIGTERM is sys.exit(0) there: the shim prints its peak
        self._log.close()
        return _peak_mb(self.log, usage)


def bench_tree(files: int, per_folder: int, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from driveferry.emulator.remotes import remote_sections, remotes_toml
    work = tmp / f"t{files}-{per_folder}"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    spec = {"onedrive": {"generate": [_tree(files, per_folder, "Big")]},
            "gdrive": {"generate": [_tree(files, per_folder, "Verify")]}}
    if args.seed_only or args.no_verify:  # the emulator's OneDrive tree only (the seeding figure)
        del spec["gdrive"]
    if args.verify_only:  # the Drive tree and its local copy only
        del spec["onedrive"]
    r: dict[str, Any] = {"files": files, "per_folder": per_folder, "latency_ms": args.latency_ms}
    local = work / "local"
    local.mkdir()
    seed = run([sys.executable, __file__, CHILD_SEED, str(work / "emu"), json.dumps(spec), str(local)], env,
               work / "seed.log")
    if seed["rc"] != 0:
        raise SystemExit(f"seeding failed; see {work / 'seed.log'}")
    timings = json.loads(seed["lines"][-1][1])
    r.update(seed_onedrive_s=timings.get("onedrive_s"), seed_gdrive_s=timings.get("gdrive_s"),
             seed_local_s=timings.get("local_s"), seed_rss_mb=seed["rss_mb"], seed_cpu_s=seed["cpu_s"],
             seed_disk_mb=sum(f.stat().st_size for f in (work / "emu").rglob("*") if f.is_file()) / 2**20)
    if args.seed_only:
        return r
    serve = Serve(work / "emu", args.latency_ms, env, work / "serve.log")
    try:
        config = work / "remotes.toml"
        config.write_text(remotes_toml(remote_sections(serve.describe)))
        env["DRIVEFERRY_CONFIG"] = str(config)
        cli = [sys.executable, "-m", "driveferry.cli"]
        if args.verify_only:
            _verify(cli, local, env, work, r)
            return r
        journal = work / "journal.sqlite3"
        # --permissions skip: sharing (issue #18) reads every item's permissions, one request each; these
        # figures are about listing, planning and copying
        cli_mig = [*cli, "migrate", "--permissions", "skip"]
        mig = run([*cli_mig, "emu-onedrive:/Big", "emu-gdrive:Dest", "--journal", str(journal), "--json",
                   "--max-transfer", str(args.sample_bytes), "--checkers", str(args.checkers)], env,
                  work / "migrate.log")
        events = [(t, json.loads(line)) for t, line in mig["lines"] if line.startswith("{")]
        planned_at = next((t for t, e in events if e.get("event") == "remaining"), None)
        if planned_at is None:
            raise SystemExit(f"migrate did not finish planning (exit {mig['rc']}); see {work / 'migrate.log'}")
        finishes = [t for t, e in events if e.get("event") == "finish" and e.get("status") == "copied"]
        planned = max((int(e["count"]) for _, e in events if e.get("event") == "planned"), default=0)
        jbytes = sum(p.stat().st_size for p in work.glob("journal.sqlite3*"))
        # from the first file started to the last one copied: a file may start before the plan completes
        first_start = min((t for t, e in events if e.get("event") == "start"), default=planned_at)
        copy_s = (finishes[-1] - first_start) if finishes else float("nan")
        r.update(plan_s=planned_at, plan_rss_mb=mig["rss_mb"], migrate_cpu_s=mig["cpu_s"], planned=planned, migrate_rc=mig["rc"],
                 journal_bytes_per_entry=jbytes / max(planned, 1), copied=len(finishes),
                 copy_files_per_s=len(finishes) / copy_s if finishes else 0.0)
        if args.copy_only:  # the 10-per-folder shape: only its copy rate is a goal
            return r
        dry = run([*cli_mig, "emu-onedrive:/Big", "emu-gdrive:Dest", "--journal", str(journal), "--dry-run",
                   "-q"], env, work / "dry.log")
        fresh = run([*cli_mig, "emu-onedrive:/Big", "emu-gdrive:Dest", "--journal",
                     str(work / "fresh.sqlite3"), "--dry-run", "-q", "--checkers", str(args.checkers)], env,
                    work / "dry-fresh.log")
        if not args.no_sequential:
            seq = run([*cli_mig, "emu-onedrive:/Big", "emu-gdrive:Dest", "--journal",
                       str(work / "fresh.sqlite3"), "--dry-run", "-q", "--checkers", "1"], env, work / "dry-seq.log")
            r.update(plan_checkers1_s=seq["s"], checkers=args.checkers, checkers_speedup=seq["s"] / fresh["s"])
        if not args.no_delta:
            delta = run([sys.executable, __file__, CHILD_DELTA, "emu-onedrive:/"], env, work / "delta.log")
            if delta["rc"] == 0:
                r.update(json.loads(delta["lines"][-1][1]), delta_rss_mb=delta["rss_mb"])
        status = run([*cli, "status", "--journal", str(journal)], env, work / "status.log")
        r.update(dry_run_s=dry["s"], dry_run_rss_mb=dry["rss_mb"], dry_run_fresh_s=fresh["s"],
                 dry_run_ratio=dry["s"] / fresh["s"], status_s=status["s"], status_rss_mb=status["rss_mb"],
                 status_rc=status["rc"])
        if not args.no_verify:
            _verify(cli, local, env, work, r)
        if not args.no_backup:
            copy = work / "backup-day.sqlite3"
            shutil.copyfile(journal, copy)
            day = run([sys.executable, __file__, CHILD_BACKUP, str(copy), "288"], env, work / "backup.log")
            if day["rc"] == 0:
                r.update(json.loads(day["lines"][-1][1]))
    finally:
        r["emulator_rss_mb"] = serve.stop()
    return r


def _verify(cli: list[str], local: Path, env: dict[str, str], work: Path, r: dict[str, Any]) -> None:
    """`verify LOCAL emu-gdrive:Verify` of the whole tree, cold (no hash cache): time and peak RSS."""
    ver = run([*cli, "verify", str(local), "emu-gdrive:Verify", "-q", "--no-cache"], env, work / "verify.log")
    r.update(verify_s=ver["s"], verify_rss_mb=ver["rss_mb"], verify_cpu_s=ver["cpu_s"], verify_rc=ver["rc"])


def _print(results: list[dict[str, Any]]) -> None:
    rows = [("seed OneDrive (s)", "seed_onedrive_s"), ("seed Drive (s)", "seed_gdrive_s"),
            ("seed local (s)", "seed_local_s"), ("seed CPU, all three (s)", "seed_cpu_s"),
            ("seed peak RSS (MB)", "seed_rss_mb"),
            ("emulator data (MB)", "seed_disk_mb"), ("plan (s)", "plan_s"),
            ("migrate peak RSS (MB)", "plan_rss_mb"), ("journal B/entry", "journal_bytes_per_entry"),
            ("copy files/s", "copy_files_per_s"), ("copied (sample)", "copied"), ("dry-run (s)", "dry_run_s"),
            ("dry-run no journal (s)", "dry_run_fresh_s"), ("dry-run ratio", "dry_run_ratio"),
            ("dry-run RSS (MB)", "dry_run_rss_mb"), ("plan --checkers 1 (s)", "plan_checkers1_s"),
            ("--checkers N speed-up", "checkers_speedup"), ("Graph delta, whole tree (s)", "delta_s"),
            ("Graph delta items", "delta_items"), ("Graph delta RSS (MB)", "delta_rss_mb"), ("backup base (B)", "backup_base_bytes"),
            ("backup day (B)", "backup_day_bytes"), ("backup day % of cap", "backup_cap_pct"), ("status (s)", "status_s"), ("verify (s)", "verify_s"), ("verify CPU (s)", "verify_cpu_s"),
            ("verify peak RSS (MB)", "verify_rss_mb"), ("emulator peak RSS (MB)", "emulator_rss_mb")]
    head = "".join(f"{r['files']:>12,}/{r['per_folder']:<4}" for r in results)
    print(f"{'':26}{head}")
    for label, key in rows:
        cells = "".join(f"{r[key]:>17.2f}" if isinstance(r.get(key), float) else f"{r.get(key, '-')!s:>17}"
                        for r in results)
        print(f"{label:26}{cells}")
    base = {r["per_folder"]: r for r in results if r["files"] == min(x["files"] for x in results)}
    for r in results:
        ref = base.get(r["per_folder"])
        if ref and r is not ref and ref.get("copy_files_per_s"):
            print(f"copy files/s at {r['files']:,} / at {ref['files']:,} ({r['per_folder']} per folder): "
                  f"{r.get('copy_files_per_s', 0) / ref['copy_files_per_s']:.2f} (goal >= 0.9 at 1M)")
    print(json.dumps(results))


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == CHILD_SEED:
        seed_child(*sys.argv[2:])
        return
    if len(sys.argv) == 3 and sys.argv[1] == CHILD_DELTA:
        delta_child(sys.argv[2])
        return
    if len(sys.argv) == 4 and sys.argv[1] == CHILD_BACKUP:
        backup_day_child(*sys.argv[2:])
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000", help="tree sizes, comma-separated (default 10000,100000)")
    ap.add_argument("--million", action="store_true", help="add a tree of 1,000,000 files")
    ap.add_argument("--shapes", default="100", help="files per folder, comma-separated (default 100; e.g. 100,10)")
    ap.add_argument("--latency-ms", type=float, default=50.0, help="emulated latency per request (default 50)")
    ap.add_argument("--sample-bytes", type=int, default=4 << 20, help="bytes copied for files/s (default 4 MiB)")
    ap.add_argument("--checkers", type=int, default=8, help="migrate --checkers for the plans (default 8)")
    ap.add_argument("--no-verify", action="store_true", help="skip verify")
    ap.add_argument("--no-backup", action="store_true", help="skip the simulated day of journal backups")
    ap.add_argument("--no-delta", action="store_true", help="skip the Graph delta enumeration (it holds the whole "
                    "tree: ~3.5 GB and ~20 min at 1M)")
    ap.add_argument("--no-sequential", action="store_true", help="skip the --checkers 1 dry-run (10x the plan)")
    ap.add_argument("--copy-only", action="store_true",
                    help="measure only seeding, planning and the copy sample (no dry-runs, status, backup, verify)")
    ap.add_argument("--seed-only", action="store_true", help="measure only seeding")
    ap.add_argument("--verify-only", action="store_true",
                    help="seed only the Drive tree and its local copy, and measure only verify")
    ap.add_argument("--tmp", default=None, help="work directory (default: a temporary one, removed after)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s] + ([1_000_000] if args.million else [])
    shapes = [int(s) for s in args.shapes.split(",") if s]
    if args.tmp:
        Path(args.tmp).mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="driveferry-scale-", dir=args.tmp))
    results = []
    try:
        for per_folder in shapes:
            for files in sizes:
                results.append(bench_tree(files, per_folder, args, tmp))
                print(json.dumps(results[-1]), file=sys.stderr, flush=True)
                if not args.keep:  # bounded disk: one tree at a time
                    shutil.rmtree(tmp / f"t{files}-{per_folder}", ignore_errors=True)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    _print(results)


if __name__ == "__main__":
    main()
