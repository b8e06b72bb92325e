"""A Python child's own peak RSS, for the benchmarks that start children (relay.py, scale.py).

Not the child's `ru_maxrss` (getrusage, wait4): Linux carries into it the high-water mark of the address
space the process had before exec, and a child started by subprocess (vfork, then exec) had its parent's,
so ru_maxrss is max(parent, child) (`driveferry.memory.own_peak_rss_kb` says more). `wrap` runs the same
command under a shim that prints the child's own VmHWM to stderr as it ends (also on SystemExit, so on
SIGTERM where the program turns that into sys.exit: `driveferry emulator serve` does); `peak_kb` reads it
back from that stderr.
"""

from __future__ import annotations

MARK = "PEAK_RSS_KB="
# A script runs as `python script.py` would run it: its own folder first on sys.path (not -c's '').
_SHIM = ("import os, runpy, sys\n"
         "sys.argv = sys.argv[1:]\n"
         "script = sys.argv[0].endswith('.py')\n"
         "if script:\n    sys.path[0] = os.path.dirname(os.path.abspath(sys.argv[0]))\n"
         "try:\n    runpy.run_path(sys.argv[0], run_name='__main__') if script else "
         "runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)\n"
         "finally:\n"
         "    from driveferry.memory import own_peak_rss_kb\n"
         f"    print('{MARK}%d' % own_peak_rss_kb(), file=sys.stderr, flush=True)\n")


def wrap(cmd: list[str]) -> list[str]:
    """`[python, script.py, args...]` or `[python, -m, module, args...]` run under the shim."""
    if cmd[1] == "-m":
        return [cmd[0], "-c", _SHIM, cmd[2], *cmd[3:]]
    return [cmd[0], "-c", _SHIM, cmd[1], *cmd[2:]]


def peak_kb(stderr: str) -> int | None:
    """The peak the shim printed (the last, if several), or None (the child was killed)."""
    found = [int(line[len(MARK):]) for line in stderr.splitlines() if line.startswith(MARK)]
    return found[-1] if found else None
