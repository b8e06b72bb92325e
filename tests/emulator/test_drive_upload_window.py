"""The Drive emulator's rolling 24 h upload window: per-second totals, never early, old logs kept."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from driveferry.emulator.drive.quotas import DAY_S, Quotas
from driveferry.emulator.state import State


def test_window_counts_each_byte_for_at_least_a_day_in_bounded_rows(tmp_path: Path) -> None:
    state = State(tmp_path)
    q = Quotas(state)
    start = state.clock.timestamp()
    for _ in range(1000):  # a busy second: many uploads, one row
        q.record_upload("u", 10)
    q.record_upload("v", 7)
    assert q.uploaded_in_window("u") == 10_000 and q.usage_by_user() == {"u": 10_000, "v": 7}
    assert state.query("SELECT COUNT(*) AS n FROM drive_upload_seconds")[0]["n"] <= 3  # not one per upload
    state.advance_clock(DAY_S - 1 - (start % 1))  # not quite a day after the first upload: still counted
    assert q.uploaded_in_window("u") == 10_000
    state.advance_clock(3)
    assert q.uploaded_in_window("u") == 0


def test_a_per_upload_log_from_an_older_emulator_is_carried_over(tmp_path: Path) -> None:
    state = State(tmp_path)
    now = state.clock.timestamp()
    with sqlite3.connect(tmp_path / "emulator.sqlite3") as db:
        db.execute("CREATE TABLE drive_upload_log (ts REAL NOT NULL, user TEXT NOT NULL, nbytes INTEGER NOT NULL)")
        db.executemany("INSERT INTO drive_upload_log VALUES (?, ?, ?)",
                       [(now - 10.5, "u", 5), (now - 10.2, "u", 6), (now - 2 * DAY_S, "u", 100)])
    q = Quotas(state)
    assert q.uploaded_in_window("u") == 11
    assert not state.query("SELECT name FROM sqlite_master WHERE name='drive_upload_log'")
