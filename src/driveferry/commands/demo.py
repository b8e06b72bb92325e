"""`driveferry demo`: the whole job on an embedded emulator, with no accounts, in about two minutes.

1. starts the emulator of both clouds and seeds a OneDrive tree (awkward cases included);
2. migrates it to the emulated Google Drive with live progress, and cuts the transfer off half way
   as a lost VM would (kill -9 of the relay process);
3. runs the same command again: it resumes mid-file from the journal;
4. proves the copy from metadata alone (provenance, no download) and writes an HTML report;
5. reproduces the aria2 + FUSE story (preallocated zeros uploaded by a lazy sync), finds the bad files
   with `verify`, repairs them with `--fix`, and verifies again.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from driveferry.errors import UserError

EPILOG = """\
example:
  driveferry demo                    # in a temporary folder; only the reports are kept
  driveferry demo --dir ./demo-out   # keep the emulator state, journal and reports
  driveferry demo --quick            # a small tree (a few MiB): the same steps in seconds

The remotes file (it holds the emulator's secrets), the token caches and the hash cache live in a
private temporary folder that is removed at exit, --dir or not: nothing is left under ~/.local/state
or ~/.cache. (`driveferry emulator serve --data DIR/emulator --tls --remotes-out FILE` writes a
remotes file for a kept emulator again.)

Needs no network and no accounts. Prints the path of the HTML report and a one-screen summary."""

DEMO_SPEC: dict[str, Any] = {
    "seed": 2026,
    "onedrive": {
        "files": [
            {"path": "Projects/video/keynote.mp4", "size": "96M"},
            {"path": "Projects/video/interview.mov", "size": "48M"},
            {"path": "Projects/disk/vm-image.img", "size": "16M", "content": "zeros"},
            {"path": "Projects/disk/backup-disk-1.img", "size": "1G", "content": "zeros"},  # sparse in the
            {"path": "Projects/disk/backup-disk-2.img", "size": "1G", "content": "zeros"},  # emulator's store
            {"path": "Projects/odd/one-byte-past-a-chunk.bin", "size": 10 * 1024 * 1024 + 1},
            {"path": "Projects/empty/placeholder.txt", "size": 0},
            {"path": "Projects/Ünïcødé/résumé.pdf", "size": "700K"},
            {"path": "Projects/Ünïcødé/e\u0301te\u0301-nfd.txt", "size": "2K", "content": "text"},
            {"path": "Projects/a/b/c/d/e/f/g/h/deep.bin", "size": "1M"},
            {"path": "Projects/" + "long-name-" * 18 + ".txt", "size": "1K", "content": "text"},
        ],
        "bulk": [
            {"dir": "Projects/docs", "count": 240, "size": "1K", "max_size": "512K", "ext": "docx"},
            {"dir": "Projects/photos", "count": 40, "size": "256K", "max_size": "3M", "ext": "jpg"},
        ],
        "notebooks": ["Projects/Notebooks/Team notes"],
    },
}


def add_parser(sub: Any) -> None:
    p = sub.add_parser("demo", help="see the whole job work on an embedded emulator (no accounts)",
                       description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", metavar="DIR", help="keep everything here (default: a temporary folder)")
    p.add_argument("--transfers", type=int, default=4, help="files copied at once (default 4)")
    p.add_argument("--quick", action="store_true", help="a small tree (a few MiB) instead of the full one")
    p.set_defaults(func=run)


def _say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def quick_spec() -> dict[str, Any]:
    """DEMO_SPEC scaled down to a few MiB (no 1 GiB images, fewer bulk files), same awkward cases."""
    small = {"96M": "3M", "48M": "2M", "16M": "1M", "1G": "2M"}
    files = [{**f, "size": small.get(str(f["size"]), f["size"])} for f in DEMO_SPEC["onedrive"]["files"]]
    bulk = [{**b, "count": max(3, int(b["count"]) // 20), "max_size": "64K"} for b in DEMO_SPEC["onedrive"]["bulk"]]
    return {**DEMO_SPEC, "onedrive": {**DEMO_SPEC["onedrive"], "files": files, "bulk": bulk}}


class _Demo:
    def __init__(self, workdir: Path, transfers: int) -> None:
        from driveferry.commands.common import write_private
        from driveferry.emulator.remotes import remote_sections, remotes_toml
        from driveferry.emulator.server import Emulator
        self.dir = workdir
        self.transfers = transfers
        # secrets and per-user state never go to the report folder or the user's home (removed at exit)
        self.private = Path(tempfile.mkdtemp(prefix="driveferry-demo-private-"))
        try:
            self.emu = Emulator(workdir / "emulator", tls=True).start()
        except BaseException:
            shutil.rmtree(self.private, ignore_errors=True)
            raise
        self.config = self.private / "remotes.toml"
        state = self.private / "state"
        write_private(self.config, f"state_dir = {json.dumps(str(state))}\n\n"
                      + remotes_toml(remote_sections(self.emu.describe()), prefix="demo-"))
        self.journal = workdir / "journal.sqlite3"
        self.env = {**os.environ, "DRIVEFERRY_CONFIG": str(self.config), "DRIVEFERRY_STATE_DIR": str(state),
                    "DRIVEFERRY_HASH_CACHE": str(self.private / "hashcache.sqlite3"), "PYTHONUNBUFFERED": "1"}

    def close(self) -> None:
        self.emu.stop()
        shutil.rmtree(self.private, ignore_errors=True)

    def cli(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "driveferry.cli", *args]

    def migrate_args(self) -> list[str]:
        return ["migrate", "demo-onedrive:/Projects", "demo-gdrive:Archive/Projects",
                "--journal", str(self.journal), "--transfers", str(self.transfers),
                "--report", str(self.dir / "migrate-report.json")]

    def seeded_bytes(self) -> int:
        graph: Any = next(m for m in self.emu.modules if getattr(m, "route_prefix", "") == "graph.")
        return int(graph.model.folder_size(graph.model.root().id))

    def uploaded(self) -> int:
        snap = self.emu.state.counters.snapshot()["bytes_in"]
        return sum(v for k, v in snap.items() if k.startswith("drive.upload"))

    def run(self, args: list[str], check: bool = True) -> int:
        rc = subprocess.call(self.cli(*args), env=self.env)
        if check and rc not in (0, 1):
            raise UserError(f"demo step failed: driveferry {' '.join(args[:3])} exited {rc}")
        return rc


def run(args: argparse.Namespace) -> int:
    from driveferry.emulator.seed import seed_emulator
    started = time.monotonic()
    keep = args.dir is not None
    workdir = Path(args.dir) if keep else Path(tempfile.mkdtemp(prefix="driveferry-demo-"))
    if keep and workdir.exists() and any(workdir.iterdir()):
        raise UserError(f"--dir {workdir} is not empty; give a new or empty folder")
    workdir.mkdir(parents=True, exist_ok=True)
    demo = _Demo(workdir, args.transfers)
    try:
        _say(f"1/5 emulator of OneDrive and Google Drive at {demo.emu.base_url}; seeding a OneDrive tree")
        created = seed_emulator(demo.emu, quick_spec() if args.quick else DEMO_SPEC)
        total = demo.seeded_bytes()
        print(f"   {created['onedrive']} OneDrive items, {total / 2**20:.0f} MiB (a OneNote notebook, unicode "
              "NFC/NFD, deep and long names, an all-zero disk image, an empty file)")

        _say("2/5 migrate OneDrive:/Projects -> Drive:Archive/Projects ... and lose the VM half way")
        proc = subprocess.Popen(demo.cli(*demo.migrate_args()), env=demo.env)
        while proc.poll() is None and demo.uploaded() < 0.5 * total:
            time.sleep(0.05)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            print(f"\n   relay killed (kill -9) after {demo.uploaded() / 2**20:.0f} MiB uploaded", flush=True)
        before = demo.uploaded()

        _say("3/5 the same command again: resumes every file from its last committed chunk")
        demo.run(demo.migrate_args())
        resent = demo.uploaded() - before
        extra = before + resent - total
        print(f"   second run uploaded {resent / 2**20:.1f} MiB; in all {(before + resent) / 2**20:.1f} MiB for "
              f"{total / 2**20:.1f} MiB of files ({max(0, extra) / 2**20:.1f} MiB sent twice: the chunks in "
              "flight at the kill)", flush=True)

        _say("4/5 verify the migration from metadata alone (provenance), no download")
        report = workdir / "migration-report.html"
        findings = workdir / "migration-verify.jsonl"
        verify_rc = None
        if _has("verify"):
            verify_rc = demo.run(["verify", "demo-onedrive:/Projects", "demo-gdrive:Archive/Projects",
                                  "--report", str(report)], check=False)
            demo.run(["verify", "demo-onedrive:/Projects", "demo-gdrive:Archive/Projects", "-q",
                      "--report", str(findings)], check=False)

        _say("5/5 aria2 + FUSE: preallocated zeros uploaded by a lazy sync; find, fix, verify again")
        aria_report = _aria2_story(demo) if _has("verify") else None

        report_json = json.loads((workdir / "migrate-report.json").read_text())
        _say(f"done in {time.monotonic() - started:.0f}s")
        print("   " + migration_outcome(report_json["summary"], report_json.get("migration")))
        if verify_rc is not None:
            print(f"   verify of the migration: {verify_outcome(findings)}")
            print(f"   HTML report: {report}")
        if aria_report:
            print(f"   aria2/FUSE report: {aria_report}")
        if not keep:
            print(f"   (the emulator's state was removed; the reports stay in {workdir}; --dir keeps everything)")
        return 0
    finally:
        demo.close()
        if not keep:  # the big parts go; the reports (a few hundred KiB) stay for the user to open
            for bulky in ("emulator", "downloads", "journal.sqlite3"):
                target = workdir / bulky
                if target.is_dir():
                    shutil.rmtree(target, ignore_errors=True)
                elif target.exists():
                    target.unlink()


def migration_outcome(run: dict[str, Any], whole: dict[str, Any] | None) -> str:
    """The demo's line about the migration: the whole migration's totals (every run: the one killed
    and the resume), with the last run's own share beside them."""
    share = f"the last run copied {run['copied']}, {run['skipped']} were already there"
    if not whole:
        return f"{share}, {run['failed']} failed; {run['unsupported']} reported as not copyable (OneNote)"
    return (f"migrated {whole['files_done']} of {whole['files']} files ({whole['percent']:.1f}%) in "
            f"{whole['runs']} runs ({share}); {whole['files_failed']} failed, {whole['files_unsupported']} "
            "reported as not copyable (OneNote)")


def verify_outcome(findings: Path) -> str:
    """The demo's closing line about verify, computed from its JSONL report: how many items were
    proven ok, and every other status with its count and first paths (never a fixed claim)."""
    if not findings.exists():
        return "verify wrote no report"
    by_status: dict[str, list[str]] = {}
    for line in findings.read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        by_status.setdefault(str(rec["status"]), []).append(str(rec["path"]))
    ok = len(by_status.pop("ok", []))
    total = ok + sum(len(v) for v in by_status.values())
    if not by_status:
        return f"all {total} items proven ok from metadata"
    rest = "; ".join(f"{len(paths)} {status} ({', '.join(paths[:3])}{', ...' if len(paths) > 3 else ''})"
                     for status, paths in sorted(by_status.items()))
    return f"{ok} of {total} items proven ok; not proven: {rest}"


def _has(command: str) -> bool:
    import importlib.util
    return importlib.util.find_spec(f"driveferry.commands.{command}") is not None


def _aria2_story(demo: _Demo) -> Path | None:
    """The FUSE half of the demo (needs the lazy-sync simulator)."""
    import importlib.util
    if importlib.util.find_spec("driveferry.emulator.lazysync") is None:
        print("   (lazy-sync simulator not available in this build)")
        return None
    from driveferry.commands.demo_fuse import run_fuse_story
    report: Path | None = run_fuse_story(demo.emu, demo.dir, demo.cli, demo.env)
    return report
