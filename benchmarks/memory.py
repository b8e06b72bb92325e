"""Peak memory of streaming a large file through each adapter (issue 3 goal: under 150 MB for 1 GiB).

    python benchmarks/memory.py              # 1 GiB through local, gdrive and onedrive (emulated)
    python benchmarks/memory.py --size 256M

For each provider a child process uploads SIZE bytes in the provider's chunks (generated, never held
whole) and then reads the file back with open_range, hashing as it goes; it prints its own peak RSS
(VmHWM) and the MD5 it saw, which must equal the uploaded one. The emulator runs in this process,
so its memory is not counted.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from driveferry.emulator.remotes import remote_sections
from driveferry.emulator.server import Emulator
from driveferry.memory import own_peak_rss_kb
from driveferry.units import parse_size

GOAL_MB = 150
CHUNK = 10 * 1024 * 1024


def child(section: dict[str, Any], size: int) -> None:
    """Upload `size` pseudo-random bytes, read them back, report peak RSS and both MD5s as JSON."""
    from driveferry.providers.base import UploadMeta
    from driveferry.providers.registry import provider_from_section
    provider = provider_from_section("bench", section, Path(tempfile.mkdtemp()))
    folder = provider.mkdir(provider.root(), f"mem-{os.getpid()}")
    chunk = CHUNK - CHUNK % provider.features.chunk_multiple
    block = os.urandom(chunk)
    up = hashlib.md5()
    session = provider.begin_upload(folder, "big.bin", size, UploadMeta())
    offset = 0
    entry = None
    started = time.monotonic()
    while offset < size:
        n = min(chunk, size - offset)
        data = block[:n] if n < chunk else block
        up.update(data)
        entry = session.send(offset, data, offset + n >= size)
        offset += n
    assert entry is not None
    upload_s = time.monotonic() - started
    down = hashlib.md5()
    started = time.monotonic()
    for piece in provider.open_range(entry, 0, size):
        down.update(piece)
    print(json.dumps({"peak_rss_mb": own_peak_rss_kb() / 1024,
                      "md5_up": up.hexdigest(), "md5_down": down.hexdigest(),
                      "upload_MBps": size / upload_s / 1e6, "download_MBps": size / (time.monotonic() - started) / 1e6}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="1G")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    size = parse_size(args.size)
    if args.child:
        child(json.loads(args.child), size)
        return
    with tempfile.TemporaryDirectory(prefix="driveferry-mem-") as tmp:
        local_root = Path(tmp) / "local"
        local_root.mkdir()
        with Emulator(Path(tmp) / "emu", tls=True) as emu:
            sections = remote_sections(emu.describe())
            subjects = {"local": {"type": "local", "root": str(local_root)}, **sections}
            print(f"streaming {size / 2**20:.0f} MiB through each adapter (goal: peak RSS < {GOAL_MB} MB)")
            for name, section in subjects.items():
                proc = subprocess.run([sys.executable, __file__, "--size", str(size), "--child", json.dumps(section)],
                                      capture_output=True, text=True)
                if proc.returncode != 0:
                    print(f"  {name:9}: FAILED\n{proc.stderr[-2000:]}")
                    continue
                r = json.loads(proc.stdout.strip().splitlines()[-1])
                same = "ok" if r["md5_up"] == r["md5_down"] else "MISMATCH"
                verdict = "within goal" if r["peak_rss_mb"] < GOAL_MB else "OVER GOAL"
                print(f"  {name:9}: peak RSS {r['peak_rss_mb']:6.1f} MB ({verdict}); up {r['upload_MBps']:6.1f} MB/s, "
                      f"down {r['download_MBps']:6.1f} MB/s; bytes back {same}")


if __name__ == "__main__":
    main()
