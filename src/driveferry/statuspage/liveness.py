"""Is a worker still alive? Proven from its process where we can see it, from its heartbeat elsewhere.

A worker records host, pid and run in every heartbeat. On the same host a pid that is gone, a zombie,
or a process started after the worker's run began (the pid was reused) proves the worker dead at
once. On another host only the heartbeat's age can tell: a worker beats every lease/3 seconds
(migrate/workers.py), so one that missed two beats is reported dead.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from driveferry.journal.records import RunRecord, WorkerRecord

DEFAULT_LEASE_S = 60.0  # migrate's default --lease
# A process started this much later than the worker's run is another process that got the pid. The
# margin covers the start time's rounding and clock steps (NTP) between the run's start and now.
REUSE_MARGIN_S = 60.0


@dataclass(frozen=True)
class Liveness:
    """A worker's state: "alive", "finished" (its run recorded its end), "dead" or "silent" (its
    process exists but has not beaten for two intervals: stuck); `why` says what proved it."""

    state: str
    why: str

    @property
    def alive(self) -> bool:
        return self.state == "alive"


def beat_interval_s(run: RunRecord | None) -> float:
    """Seconds between a worker's heartbeats, from its run's --lease (migrate/workers.py beats every
    max(0.5, lease/3) seconds)."""
    lease = DEFAULT_LEASE_S
    if run is not None:
        try:
            lease = float(run.options.get("lease_s") or DEFAULT_LEASE_S)
        except (TypeError, ValueError):
            pass
    return max(0.5, lease / 3)


def liveness(worker: WorkerRecord, run: RunRecord | None, now: datetime, here: str | None = None) -> Liveness:
    """The state of `worker` (whose current run is `run`) at `now`, seen from host `here`."""
    age_s = (now - worker.heartbeat_at).total_seconds()
    stale_s = 2 * beat_interval_s(run) + 5
    if run is not None and run.finished_at is not None:
        return Liveness("finished", f"run finished {run.finished_at.isoformat(timespec='seconds')}")
    if worker.host == (here or socket.gethostname()):
        gone = _process_gone(worker.pid, run.started_at if run is not None else None)
        if gone:
            return Liveness("dead", gone)
        if age_s > stale_s:
            return Liveness("silent", f"pid {worker.pid} runs but sent no heartbeat for {age_s:.0f} s")
        return Liveness("alive", f"pid {worker.pid} running")
    if age_s > stale_s:
        return Liveness("dead", f"no heartbeat for {age_s:.0f} s (expected every {beat_interval_s(run):.0f} s)")
    return Liveness("alive", f"heartbeat {age_s:.0f} s ago")


def _process_gone(pid: int, run_started: datetime | None) -> str | None:
    """Why process `pid` of this host is provably not the worker any more, or None."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return f"pid {pid} is gone"
    except PermissionError:
        pass  # another user's process: it exists
    stat = _proc_stat(pid)
    if stat is None:
        return None  # no /proc (not Linux): the signal said it exists
    fields = stat.rsplit(")", 1)[-1].split()
    if fields and fields[0] in ("Z", "X"):
        return f"pid {pid} has exited (zombie)"
    started = _start_time(fields)
    if started is not None and run_started is not None and started > run_started + timedelta(seconds=REUSE_MARGIN_S):
        return f"pid {pid} now belongs to a process started after the run"
    return None


def _proc_stat(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None


def _start_time(fields: list[str]) -> datetime | None:
    """A process's start time from the fields of /proc/PID/stat after its name (proc(5): starttime is
    field 22, in clock ticks since boot; boot time is /proc/stat's btime)."""
    try:
        ticks = int(fields[19])
        btime = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                     if line.startswith("btime "))
        from datetime import UTC
        return datetime.fromtimestamp(btime + ticks / os.sysconf("SC_CLK_TCK"), UTC)
    except (OSError, ValueError, IndexError, StopIteration):
        return None
