"""The relay benchmark's peak RSS is the child's own, not its parent's (benchmarks/relay.py, `_child`).

On Linux a process's ru_maxrss also holds the high-water mark of the address space it had before exec;
a child of subprocess (vfork, then exec) had its parent's. The benchmark's parent hosts the emulator, so
its children reported the emulator's growth as theirs (peak RSS rising round after round, all sides)."""

from __future__ import annotations

import importlib.util
import os
import resource
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="VmHWM is Linux's")
def test_child_peak_is_its_own_not_the_parents(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("relay_bench", ROOT / "benchmarks" / "relay.py")
    assert spec is not None and spec.loader is not None
    relay = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(relay)
    held = bytearray(400 << 20)  # zero-filled, so resident: this process's peak is now over 400 MB
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 > 400 << 20
    script = tmp_path / "small.py"
    script.write_text("block = bytearray(30 << 20)\n")  # ~30 MB of its own, plus the interpreter
    _, peak, _ = relay._child([sys.executable, str(script)], dict(os.environ))
    assert 30 << 20 < peak < 120 << 20, peak
    del held
