"""Process memory tuning for the relay: keep RSS close to transfers x chunk size.

glibc serves allocations above its mmap threshold (128 KiB) with mmap and returns them to the OS on
free, but it raises that threshold (up to 32 MiB) each time such a block is freed. Every 10 MiB chunk
then comes from a heap arena, and with several transfer threads, several arenas fragment: a run's RSS
grew to well over transfers x chunk although Python held about one chunk per transfer (measured with
tracemalloc). Pinning the threshold and capping the arena count keeps RSS tracking live data.

`own_peak_rss_kb` is what the benchmarks report as a process's peak RSS.
"""

from __future__ import annotations

import ctypes
import resource
import sys

_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


def tune_allocator(mmap_threshold: int = 1 << 20, arena_max: int = 2) -> bool:
    """Apply the settings above on Linux with glibc; returns whether they were applied."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        # the C library already loaded into this process, by the symbols it exports: not
        # ctypes.util.find_library, which runs `ldconfig -p` (~0.1 s at every start-up)
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(mallopt(_M_ARENA_MAX, arena_max))


def own_peak_rss_kb() -> int:
    """This process's own peak RSS in KiB: VmHWM, the high-water mark of its own address space.

    Not getrusage's ru_maxrss: Linux carries into it the high-water mark of the address space a process
    had before exec (fs/exec.c, exec_mmap: setmax_mm_hiwater_rss(&tsk->signal->maxrss, old_mm)), and a
    child started by subprocess (vfork, then exec) had its parent's, so ru_maxrss is max(parent, child)
    (measured: a child of a 321 MB parent reports 321 MB of ru_maxrss and 14 MB of VmHWM). ru_maxrss
    only where /proc has no VmHWM."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))
    except (OSError, StopIteration, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
