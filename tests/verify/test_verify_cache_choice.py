"""A re-run of verify is answered by the hash cache even when this CPU's hash timings change between runs.

verify computes the one hash `choose_hash` picks from measured speeds. With SHA-NI, SHA-1 and SHA-256
run at close speeds (0.49 and 0.55 s/GiB on a Xeon here), so a timing taken under load picked either,
and a run that picked the other one re-hashed the whole tree (found by the rclone FUSE test in CI: the
second run rewrote every cache row). The speeds here are made to flip between the two runs; the
tree is verified over real HTTP against the emulated Drive, kind and under the realism profile (its
rate-limited reads must be met: both runs list every folder).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from driveferry.emulator.generate import content_bytes
from driveferry.emulator.remotes import remote_sections
from driveferry.emulator.seed import seed_emulator
from driveferry.integrity.hashes import HashType
from driveferry.providers.ops import resolve
from driveferry.providers.registry import provider_from_section
from driveferry.verify import scan as scan_mod
from driveferry.verify.cache import HashCache
from driveferry.verify.classify import Policy, Status
from driveferry.verify.compare import compare_local
from driveferry.verify.sink import FindingSink
from realism_run import Profile, kind_and_real, profiled_emulator

FILES = [f"d{i:02}/f{j}.bin" for i in range(16) for j in range(2)]  # 17 listings a run


@kind_and_real("drive.rate_limited")
def test_second_run_hashes_nothing_when_the_measured_speeds_now_favour_another_hash(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, emu_profile: Profile,
        request: pytest.FixtureRequest) -> None:
    runs = iter([{HashType.SHA256: 0.7, HashType.SHA1: 1.0, HashType.MD5: 0.5},  # SHA-256 not within 25 %
                 {HashType.SHA256: 1.0, HashType.SHA1: 1.0, HashType.MD5: 0.5}])

    def speeds(sample_bytes: int = 0) -> Mapping[HashType, float]:
        return next(runs)

    monkeypatch.setattr(scan_mod, "measure_hash_speeds", speeds)
    old = (datetime.now(UTC) - timedelta(days=1)).timestamp()
    local = tmp_path / "local"
    for rel in FILES:
        f = local / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(content_bytes(1, "gdrive", f"V/{rel}", 50_000))
        os.utime(f, (old, old))
    with profiled_emulator(emu_profile, tmp_path / "emu", request) as emu:
        seed_emulator(emu, {"seed": 1, "gdrive": {"files": [{"path": f"V/{rel}", "size": 50_000} for rel in FILES]}})
        sections = remote_sections(emu.describe())
        name = next(k for k in sections if "gdrive" in k)
        provider = provider_from_section(name, sections[name], tmp_path / "state")
        results = []
        for _ in range(2):
            # racy_window_s=0: the files were written (ctime) just now
            with HashCache(tmp_path / "cache.db", racy_window_s=0) as cache, FindingSink() as sink:
                comp = compare_local(local, provider, resolve(provider, "V"), now=datetime.now(UTC),
                                     policy=Policy(), cache=cache, workers=2, sink=sink)
                found = {f.path: f.status for f in sink.findings()}
            results.append((comp.hash_type, comp.hashed_files, comp.cached_files, found))
    assert results[0][:3] == (HashType.SHA1, len(FILES), 0)
    assert results[1][:3] == (HashType.SHA1, 0, len(FILES))  # was SHA-256, 32 hashed, 0 cached
    assert results[0][3] == results[1][3] == {rel: Status.OK for rel in FILES}
