"""Folder sizes as running totals: every folder's `size` column holds the bytes of the live files below it.

OneDrive reports a folder's `size` as the total of its subtree, and the drive's `quota.used` as the total
of the drive (api-notes 8.2; learn.microsoft.com/graph/api/resources/driveitem "size": "Size of the item
in bytes", folders included). Summing a subtree on every stat or quota check made seeding quadratic
(issue #16), so SQLite triggers keep the totals instead: a row's contribution to its parent is its `size`
while it is live (`deleted = 0`), and any insert, content change, delete or move adds the difference to
the parent, whose own change then climbs to the root (recursive triggers, one step per level).
Every write path (model, uploads, copies, direct SQL) is covered, because the database does the work.
"""

from __future__ import annotations

import sqlite3

_FLAG = "graph.size_totals"
_LIVE_NEW = "(CASE WHEN new.deleted = 0 THEN new.size ELSE 0 END)"
_LIVE_OLD = "(CASE WHEN old.deleted = 0 THEN old.size ELSE 0 END)"

TRIGGERS = f"""
CREATE TRIGGER IF NOT EXISTS graph_total_insert AFTER INSERT ON graph_items
WHEN new.parent_id IS NOT NULL AND {_LIVE_NEW} != 0
BEGIN UPDATE graph_items SET size = size + new.size WHERE id = new.parent_id; END;

CREATE TRIGGER IF NOT EXISTS graph_total_change AFTER UPDATE OF size, deleted, parent_id ON graph_items
WHEN new.parent_id IS NOT NULL AND old.parent_id IS new.parent_id AND {_LIVE_NEW} != {_LIVE_OLD}
BEGIN UPDATE graph_items SET size = size + {_LIVE_NEW} - {_LIVE_OLD} WHERE id = new.parent_id; END;

CREATE TRIGGER IF NOT EXISTS graph_total_move AFTER UPDATE OF size, deleted, parent_id ON graph_items
WHEN old.parent_id IS NOT new.parent_id
BEGIN
    UPDATE graph_items SET size = size - {_LIVE_OLD} WHERE id = old.parent_id AND {_LIVE_OLD} != 0;
    UPDATE graph_items SET size = size + {_LIVE_NEW} WHERE id = new.parent_id AND {_LIVE_NEW} != 0;
END;
"""


def install(db: sqlite3.Connection) -> None:
    """Enable the totals on this connection; a database from before them is summed once, bottom-up.

    The caller holds the state lock and no transaction is open."""
    db.execute("PRAGMA recursive_triggers = ON")  # per connection: the climb to the root needs it
    done = db.execute("SELECT 1 FROM emu_meta WHERE key=?", (_FLAG,)).fetchone()
    db.execute("BEGIN IMMEDIATE")
    try:
        if not done:
            _recompute(db)
        for stmt in _statements(TRIGGERS):
            db.execute(stmt)
        db.execute("INSERT INTO emu_meta(key, value) VALUES(?, '1') ON CONFLICT(key) DO NOTHING", (_FLAG,))
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _statements(script: str) -> list[str]:
    """The CREATE TRIGGER statements of `script` (each ends with "END;")."""
    return [s.strip() + " END;" for s in script.split("END;") if s.strip()]


def _recompute(db: sqlite3.Connection) -> None:
    """Set every folder's size to the total of its live files (before the triggers exist)."""
    rows = db.execute("SELECT id, parent_id, kind, size FROM graph_items WHERE deleted = 0").fetchall()
    parent = {str(r[0]): r[1] for r in rows}
    totals: dict[str, int] = {str(r[0]): 0 for r in rows if r[2] in ("folder", "root")}
    for r in rows:
        if r[2] != "file" or not r[3]:
            continue
        cur = r[1]
        while cur is not None and cur in parent:
            if cur in totals:
                totals[cur] += int(r[3])
            cur = parent[cur]
    db.executemany("UPDATE graph_items SET size = ? WHERE id = ?", [(n, i) for i, n in totals.items()])
