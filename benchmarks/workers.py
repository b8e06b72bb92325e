"""Multi-worker benchmark: N `migrate` processes on one PostgreSQL journal against 1, same run, same emulator.

    python benchmarks/workers.py                  # 3,000 small files, 3 workers vs 1, 4 transfers each
    python benchmarks/workers.py --files 600 --workers 3

The emulator adds 50 ms to every request (as a distant cloud does), so a worker spends its time
waiting, which more workers should overlap. The same tree is copied twice into separate Drive folders,
each with its own journal (a fresh schema on one PostgreSQL server): once by one worker process, then
by N processes started together. Prints files/s for each and the ratio N/1. Goal (issue 6): >= 2.5 for 3.

PostgreSQL: DRIVEFERRY_BENCH_PG_URL=postgresql://USER@HOST/DB, or a throwaway cluster started from the
server binaries the tests use (tests/pg.py; Debian: apt-get install postgresql).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from driveferry.emulator.remotes import remote_sections, remotes_toml
from driveferry.emulator.seed import seed_emulator
from driveferry.emulator.server import Emulator
from driveferry.journal.db import to_url
from driveferry.providers.registry import provider_from_section

LATENCY_MS = 50


@contextlib.contextmanager
def pg_server() -> Iterator[str]:
    """The base URL of a PostgreSQL server: DRIVEFERRY_BENCH_PG_URL, or a throwaway local cluster."""
    env_url = os.environ.get("DRIVEFERRY_BENCH_PG_URL")
    if env_url:
        yield env_url
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from pg import Cluster, find_pg_bin  # the tests' throwaway cluster (initdb + pg_ctl)
    bin_dir = find_pg_bin()
    if bin_dir is None:
        raise SystemExit("no PostgreSQL server binaries (initdb, pg_ctl): install postgresql or set "
                         "DRIVEFERRY_BENCH_PG_URL")
    cluster = Cluster(bin_dir)
    try:
        cluster.start()
        yield cluster.url
    finally:
        cluster.stop()


def fresh_schema(base: str) -> str:
    """A journal URL on `base` whose tables go into a new schema of their own."""
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(to_url(base), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    finally:
        engine.dispose()
    return sa.make_url(base).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
        hide_password=False)


def run_workers(n: int, dest: str, journal: str, transfers: int, env: dict[str, str], logs: Path) -> float:
    """Start `n` migrate processes on one journal together; seconds until the last one exits.

    Their output goes to files: a pipe read one process after another would fill up and stall the
    others (which is what a sequential communicate() does)."""
    args = [sys.executable, "-m", "driveferry.cli", "migrate", "emu-onedrive:/Set", dest, "--journal", journal,
            "--transfers", str(transfers), "-q"]
    logs.mkdir(parents=True, exist_ok=True)
    outs = [logs / f"worker-{i}.log" for i in range(n)]
    start = time.monotonic()
    procs = []
    for out in outs:
        with open(out, "w") as fh:
            procs.append(subprocess.Popen(args, env=env, stdout=fh, stderr=subprocess.STDOUT))
    for p in procs:
        p.wait()
    elapsed = time.monotonic() - start
    for p, out in zip(procs, outs, strict=True):
        if p.returncode != 0:
            raise SystemExit(f"a worker failed ({p.returncode}):\n{out.read_text()[-3000:]}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=3000, help="number of small files (default 3000)")
    ap.add_argument("--workers", type=int, default=3, help="worker processes in the parallel run (default 3)")
    ap.add_argument("--transfers", type=int, default=4, help="--transfers of every worker (default 4)")
    args = ap.parse_args()
    spec = {"seed": 3, "onedrive": {"bulk": [{"dir": "Set/small", "count": args.files, "size": "1K",
                                              "max_size": "8K"}]}}
    results: dict[str, Any] = {"files": args.files, "workers": args.workers, "transfers": args.transfers,
                               "latency_ms": LATENCY_MS}
    with tempfile.TemporaryDirectory(prefix="driveferry-bench-") as tmp, pg_server() as pg, \
            Emulator(Path(tmp) / "emu", tls=True) as emu:
        seed_emulator(emu, spec)
        config = Path(tmp) / "remotes.toml"
        config.write_text(remotes_toml(remote_sections(emu.describe())))
        env = {**os.environ, "DRIVEFERRY_CONFIG": str(config)}
        import requests
        s = requests.Session()
        s.trust_env = False
        s.verify = str(emu.ca_file)
        s.put(emu.base_url + "/_emulator/faults", json={"seed": 1, "rules": [
            {"kind": "latency", "route": "*", "latency_ms": LATENCY_MS, "rate": 1.0}]}, timeout=30).raise_for_status()
        one = run_workers(1, "emu-gdrive:One", fresh_schema(pg), args.transfers, env, Path(tmp) / "one")
        many = run_workers(args.workers, "emu-gdrive:Many", fresh_schema(pg), args.transfers, env, Path(tmp) / "many")
        gd = provider_from_section("gdrive", remote_sections(emu.describe())["gdrive"], Path(tmp) / "state")
        for folder in ("One", "Many"):  # a figure for a run that did not copy everything would mislead
            copied = sum(1 for _ in gd.list(gd.stat(f"{folder}/small")))
            if copied != args.files:
                raise SystemExit(f"{folder}: {copied} files on Drive, expected {args.files}")
    results.update({"one_s": one, "many_s": many, "one_files_per_s": args.files / one,
                    "many_files_per_s": args.files / many, "ratio": one / many})
    print(f"{args.files} files of 1-8 KiB, {LATENCY_MS} ms per request, {args.transfers} transfers per worker")
    print(f"  1 worker  : {one:7.1f} s  {results['one_files_per_s']:7.1f} files/s")
    print(f"  {args.workers} workers : {many:7.1f} s  {results['many_files_per_s']:7.1f} files/s")
    print(f"  ratio {args.workers}/1 = {results['ratio']:.2f} (goal >= 2.5 for 3 workers)")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
