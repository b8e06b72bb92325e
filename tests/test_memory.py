"""The allocator settings the relay applies at start-up (driveferry/memory.py)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from driveferry.memory import tune_allocator


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                    reason="mallopt is glibc's")
def test_applied_on_glibc_without_running_ldconfig() -> None:
    assert tune_allocator() is True
    # found in the process's own symbols: no `ldconfig -p` child (ctypes.util.find_library runs one)
    code = ("import subprocess, sys\n"
            "calls = []\n"
            "real = subprocess.Popen.__init__\n"
            "def spy(self, *a, **k):\n    calls.append(a)\n    real(self, *a, **k)\n"
            "subprocess.Popen.__init__ = spy\n"
            "from driveferry.memory import tune_allocator\n"
            "assert tune_allocator() is True\n"
            "print(len(calls))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0"


def test_own_peak_rss_is_not_the_parents() -> None:
    """A child of a large parent reports its own peak (VmHWM), where its ru_maxrss holds the parent's."""
    import os
    import resource
    if not os.path.exists("/proc/self/status"):
        pytest.skip("VmHWM is Linux's")
    held = bytearray(300 << 20)  # zero-filled, so resident
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 > 300 << 20
    code = ("import resource\n"
            "from driveferry.memory import own_peak_rss_kb\n"
            "print(own_peak_rss_kb(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    own, inherited = (int(x) * 1024 for x in out.stdout.split())
    assert own < 100 << 20 < 300 << 20 < inherited  # the parent's peak, carried over the exec
    del held
