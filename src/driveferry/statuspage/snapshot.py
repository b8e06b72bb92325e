"""One picture of a journal: whole-migration totals, each run's share, workers, budget, errors, files.

`status`, `status --json` and the live page's /api/status all come from `job_snapshot`, so they
agree by construction. Totals count items, never runs: a file is done once, whichever run, resume,
take-over or worker finished it, and its bytes count once at its size. Folders are not files and
unsupported items (OneNote packages, shortcuts) cannot be copied, so neither is in the goal: a
migration whose every copyable file is done or skipped is at 100%.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from driveferry.journal.records import ItemRecord, ItemState, JobRecord, RunRecord
from driveferry.journal.store import Journal
from driveferry.migrate.quota import DRIVE_DAILY_CAP_BYTES
from driveferry.statuspage.liveness import liveness

#: `status --files --filter` values: display states of a file, and which journal state holds them.
FILTERS: dict[str, ItemState | None] = {
    "all": None, "in_flight": ItemState.IN_PROGRESS, "pending": ItemState.PENDING,
    "waiting_for_quota": ItemState.PENDING, "failed": ItemState.FAILED, "unverified": ItemState.DONE,
    "done": ItemState.DONE, "skipped": ItemState.SKIPPED, "unsupported": ItemState.UNSUPPORTED,
}
WINDOW = timedelta(hours=24)  # Drive's daily upload cap is a rolling 24 h (migrate/quota.py)


def job_snapshot(journal: Journal, job: JobRecord, now: datetime, *, errors: int = 10) -> dict[str, Any]:
    """Everything `status` shows about one job at `now`, JSON-able. Raises JournalError."""
    counts = journal.counts(job.id, files_only=True)
    runs, workers = _runs_and_workers(journal, job.id, now)
    run_views = [_run(r, workers) for r in runs]
    quota_stopped = _quota_waiting(runs, run_views)
    totals = _totals(counts)
    totals["unverified"] = journal.count_unhashed_done(job.id)
    totals["waiting_for_quota"] = counts[ItemState.PENDING].items if quota_stopped else 0
    rate = sum(w["rate_bytes_per_s"] for w in workers if w["alive"])
    totals["rate_bytes_per_s"] = round(rate, 1)
    left = totals["goal_bytes"] - totals["bytes_done"]
    totals["eta_s"] = round(left / rate) if rate > 0 and left > 0 else (0 if left <= 0 else None)
    return {
        "job": f"{job.source_spec} -> {job.dest_spec}", "job_id": job.id,
        "states": {s.value: {"items": t.items, "bytes": t.size_bytes, "bytes_done": t.bytes_done}
                   for s, t in counts.items() if t.items},
        "totals": totals,
        "runs": run_views,
        "workers": workers,
        "budget": _budget(journal, runs, now),
        "history": _history(journal, now),
        "errors": [{"path": path, "at": e.at.isoformat(), "kind": e.kind, "message": e.message}
                   for path, e in journal.recent_errors(job.id, errors)],
        "quota_stopped": quota_stopped,
        "dead_workers": sorted(w["worker"] for w in workers if w["state"] == "dead"),
    }


def file_context(journal: Journal, job_id: int, now: datetime) -> tuple[bool, frozenset[str]]:
    """What `file_rows` needs beyond the items: whether pending files wait for the daily cap (see
    `_quota_waiting`) and the ids of the workers proven dead. Raises JournalError."""
    runs, workers = _runs_and_workers(journal, job_id, now)
    dead = frozenset(w["worker"] for w in workers if w["state"] == "dead")
    return _quota_waiting(runs, [_run(r, workers) for r in runs]), dead


def _quota_waiting(runs: list[RunRecord], views: list[dict[str, Any]]) -> bool:
    """The last finished run stopped at the daily cap and no run started after it is running."""
    finished = [i for i, r in enumerate(runs) if r.finished_at is not None]
    if not finished:
        return False
    last = runs[finished[-1]]
    if not (last.summary or {}).get("stopped_for_quota"):
        return False
    return not any(v["state"] == "running" for v in views[finished[-1] + 1:])


def _runs_and_workers(journal: Journal, job_id: int, now: datetime) -> tuple[list[RunRecord], list[dict[str, Any]]]:
    runs = journal.runs(job_id)
    by_id = {r.id: r for r in runs}
    here = socket.gethostname()
    workers: list[dict[str, Any]] = []
    for w in journal.workers(job_id):
        life = liveness(w, by_id.get(w.run_id or ""), now, here)
        workers.append({"worker": w.worker_id, "host": w.host, "pid": w.pid, "run": w.run_id,
                        "state": life.state, "alive": life.alive, "why": life.why,
                        "current_item": _item_path(journal, w.current_item_id) if life.alive else None,
                        "bytes": w.bytes_done, "rate_bytes_per_s": round(w.rate_bytes_per_s, 1),
                        "heartbeat": w.heartbeat_at.isoformat(),
                        "heartbeat_age_s": round((now - w.heartbeat_at).total_seconds(), 1)})
    return runs, workers


def _totals(counts: dict[ItemState, Any]) -> dict[str, Any]:
    settled = (ItemState.DONE, ItemState.SKIPPED)
    open_ = (ItemState.PENDING, ItemState.IN_PROGRESS)
    goal = [s for s in ItemState if s is not ItemState.UNSUPPORTED]
    goal_bytes = sum(counts[s].size_bytes for s in goal)
    # a settled file counts at its size; an open one at what the destination has committed of it
    done_bytes = sum(counts[s].size_bytes for s in settled) + sum(counts[s].bytes_done for s in open_)
    return {
        "files": sum(counts[s].items for s in goal),
        "files_done": sum(counts[s].items for s in settled),
        "files_in_flight": counts[ItemState.IN_PROGRESS].items,
        "files_pending": counts[ItemState.PENDING].items,
        "files_failed": counts[ItemState.FAILED].items,
        "files_unsupported": counts[ItemState.UNSUPPORTED].items,
        "goal_bytes": goal_bytes, "bytes_done": done_bytes,
        "percent": round(100.0 * done_bytes / goal_bytes, 2) if goal_bytes else
        (100.0 if not any(counts[s].items for s in open_) else 0.0),
    }


def _run(run: RunRecord, workers: list[dict[str, Any]]) -> dict[str, Any]:
    """One run's own share: what its summary says, or for a run without one what its worker's last
    heartbeat says (it is still going, or it was killed: "interrupted")."""
    summary = run.summary or {}
    mine = [w for w in workers if w["run"] == run.id]
    if run.finished_at is not None:
        state = "finished"
    else:
        state = "running" if any(w["alive"] for w in mine) else "interrupted"
    sent = summary.get("bytes_uploaded") if run.finished_at is not None else sum(w["bytes"] for w in mine)
    return {"run": run.id, "worker": run.worker_id, "state": state, "started": run.started_at.isoformat(),
            "finished": run.finished_at.isoformat() if run.finished_at else None,
            "copied": summary.get("copied"), "skipped": summary.get("skipped"), "failed": summary.get("failed"),
            "bytes_uploaded": sent, "stopped_for_quota": summary.get("stopped_for_quota")}


def _budget(journal: Journal, runs: list[RunRecord], now: datetime) -> list[dict[str, Any]]:
    """Bytes each destination user uploaded in the last 24 h against its daily cap. A key without
    ':' is a capped destination (migrate/job.py); the cap is the last run's --daily-cap or Drive's."""
    cap_option = next((r.options.get("daily_cap") for r in reversed(runs) if r.options.get("daily_cap")), None)
    keys = sorted({k for k, _, _ in journal.upload_minutes(now - WINDOW)})
    out = []
    for key in keys:
        used = journal.uploaded_since(key, now - WINDOW)
        limit = None if ":" in key else int(cap_option or DRIVE_DAILY_CAP_BYTES)
        out.append({"user": key, "bytes_24h": used.bytes_in_window, "limit_bytes": limit,
                    "resets_at": (used.oldest + WINDOW).isoformat() if used.oldest else None})
    return out


def _history(journal: Journal, now: datetime) -> list[list[Any]]:
    """[minute, bytes uploaded] for the last 24 h, every destination user added up."""
    per_minute: dict[datetime, int] = {}
    for _, at, n in journal.upload_minutes(now - WINDOW):
        per_minute[at] = per_minute.get(at, 0) + n
    return [[at.isoformat(), n] for at, n in sorted(per_minute.items())]


def _unverified(journal: Journal, job_id: int) -> Iterator[ItemRecord]:
    """Done files with no destination hash recorded: nothing proved the copy (size alone never does)."""
    return (i for i in journal.iter_items(job_id, ItemState.DONE) if i.kind != "folder" and not i.dest_hashes)


def file_rows(journal: Journal, job_id: int, which: str = "all", *, quota_stopped: bool = False,
              dead_workers: frozenset[str] = frozenset(), limit: int | None = None) -> list[dict[str, Any]]:
    """Per-file state, offset, attempts and last error for `status --files` and /api/files.

    A file's state is its journal state, except: in_flight (in progress under a live lease), stalled
    (in progress, but its lease ran out or its worker is dead: the next claim once the lease ends
    takes it over at its offset), waiting_for_quota (pending after the
    last run stopped at the daily cap) and unverified (done, no destination hash recorded).
    `which` is a FILTERS key (in_flight lists stalled files too). Raises KeyError for another, JournalError.
    """
    state = FILTERS[which]
    items: Iterator[ItemRecord] = (_unverified(journal, job_id) if which == "unverified"
                                   else journal.iter_items(job_id, state))
    rows: list[dict[str, Any]] = []
    for item in items:
        if item.kind == "folder":
            continue
        shown = _display_state(item, quota_stopped, dead_workers)
        if which == "waiting_for_quota" and shown != "waiting_for_quota":
            continue
        if which == "pending" and shown != "pending":
            continue
        rows.append({"path": item.path, "state": shown, "size": item.size_bytes,
                     "offset": item.committed_offset if item.state in (ItemState.PENDING, ItemState.IN_PROGRESS)
                     else item.bytes_done, "attempts": item.attempts, "error": item.reason,
                     "worker": item.lease_owner, "updated": item.updated_at.isoformat()})
        if limit is not None and len(rows) >= limit:
            break
    return rows


def _display_state(item: ItemRecord, quota_stopped: bool, dead_workers: frozenset[str]) -> str:
    if item.state is ItemState.IN_PROGRESS:
        expired = item.lease_expires_at is not None and item.lease_expires_at < datetime.now(UTC)
        return "stalled" if expired or item.lease_owner in dead_workers else "in_flight"
    if item.state is ItemState.PENDING and quota_stopped:
        return "waiting_for_quota"
    if item.state is ItemState.DONE and not item.dest_hashes:
        return "unverified"
    return item.state.value


def _item_path(journal: Journal, item_id: int | None) -> str | None:
    if item_id is None:
        return None
    try:
        return str(journal.get_item(item_id).path)
    except Exception:  # the item may have been re-planned away; status must not fail on that
        return None
