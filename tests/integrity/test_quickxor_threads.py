"""quickXorHash's numpy leaves OpenBLAS's thread pool unstarted (it runs no BLAS; the pool cost CPU)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="threads counted in /proc")
@pytest.mark.parametrize(("chosen", "threads"), [(None, 1), ("2", 2)])
def test_no_openblas_threads_unless_chosen(chosen: str | None, threads: int) -> None:
    code = ("import os\n"
            "from driveferry.integrity.hashes import QuickXor\n"
            "q = QuickXor()\nq.update(bytes(range(256)) * 4096)\n"
            "print(len(os.listdir('/proc/self/task')), os.environ.get('OPENBLAS_NUM_THREADS'))\n")
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    if chosen:
        env["OPENBLAS_NUM_THREADS"] = chosen  # the user's choice stands
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    count, value = out.stdout.split()
    assert value == (chosen or "1")
    assert int(count) == threads
