"""The benchmarks' peak RSS is the child's own, not its parent's (benchmarks/peak.py, used by relay.py's
`_child` and scale.py).

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
def test_child_peak_is_its_own_not_the_parents(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # as `python benchmarks/relay.py` has it: peak.py
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


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="VmHWM is Linux's")
def test_a_child_stopped_by_sigterm_still_reports_its_peak(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """scale.py stops `driveferry emulator serve` with SIGTERM, which it turns into sys.exit(0): the shim's
    line must still come out. A child killed outright prints none (then scale.py falls back)."""
    import signal
    import subprocess
    import time
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import peak
    script = tmp_path / "serve.py"
    script.write_text("import signal, sys, time\nsignal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n"
                      "block = bytearray(20 << 20)\nprint('ready', flush=True)\ntime.sleep(60)\n")
    for stop, expect in ((signal.SIGTERM, True), (signal.SIGKILL, False)):
        p = subprocess.Popen(peak.wrap([sys.executable, str(script)]), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        assert p.stdout is not None and p.stdout.readline() == "ready\n"
        started = time.monotonic()
        p.send_signal(stop)
        _, err = p.communicate(timeout=30)
        kb = peak.peak_kb(err)
        assert time.monotonic() - started < 30
        if expect:
            assert kb is not None and 20 << 10 < kb < 120 << 10, (kb, err)
        else:
            assert kb is None
