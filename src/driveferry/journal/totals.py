"""Running totals of a job's items per state, kept by the database itself, so `status` reads a few rows.

`item_totals` holds, per (job, state, folder or not, done without a destination hash), the items, their
source bytes and bytes sent. Triggers on `items` keep it in the same transaction as every insert,
update and delete of an item, whoever writes (no code path can forget it), so a status of a million
items costs a read of at most a few dozen rows instead of a scan (issue #16).

An item that changes key (its state, or a done file's destination hash) is subtracted from its old
totals row and added to its new one; any other change is one UPSERT of the difference. SQLite and
PostgreSQL apply them within the writer's transaction. On PostgreSQL, workers that change items of
one state touch the same totals row; each holds its lock until its short transaction commits.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from driveferry.journal import schema as t

__all__ = ["install", "fill"]

_KEY = "job_id, state, folder, unhashed"


def _key(r: str) -> str:
    return (f"{r}.job_id, {r}.state, {r}.kind = 'folder', "
            f"({r}.state = 'done' AND {r}.kind <> 'folder' AND {r}.dest_hashes = '{{}}')")


def _upsert(key_of: str, items: str, size: str, done: str) -> str:
    return (f"INSERT INTO item_totals ({_KEY}, item_count, size_bytes, bytes_done) "
            f"VALUES ({_key(key_of)}, {items}, {size}, {done}) "
            f"ON CONFLICT ({_KEY}) DO UPDATE SET item_count = item_totals.item_count + excluded.item_count, "
            "size_bytes = item_totals.size_bytes + excluded.size_bytes, "
            "bytes_done = item_totals.bytes_done + excluded.bytes_done")


def _add(r: str) -> str:
    return _upsert(r, "1", f"COALESCE({r}.size_bytes, 0)", f"{r}.bytes_done")


def _sub(r: str) -> str:
    return _upsert(r, "-1", f"-COALESCE({r}.size_bytes, 0)", f"-{r}.bytes_done")


# An update that keeps the item's key (a checkpoint's bytes_done) is one upsert of the difference.
_SAME = ("OLD.job_id = NEW.job_id AND OLD.state = NEW.state AND (OLD.kind = 'folder') = (NEW.kind = 'folder') "
         "AND (OLD.dest_hashes = '{}') = (NEW.dest_hashes = '{}')")
_DIFF = _upsert("NEW", "0", "COALESCE(NEW.size_bytes, 0) - COALESCE(OLD.size_bytes, 0)",
                "NEW.bytes_done - OLD.bytes_done")
# Only the columns a total depends on fire the update trigger (a lease renewal does not).
_WATCHED = "job_id, state, kind, size_bytes, bytes_done, dest_hashes"


def install(conn: Connection) -> None:
    """Create the triggers that keep `item_totals` (the table exists: metadata or the v4 upgrade).

    On PostgreSQL an item that moves between two totals rows updates them in a fixed order (by key),
    so two workers moving items in opposite directions (a claim, a failure put back to pending) cannot
    each hold one row while waiting for the other's.
    """
    if conn.dialect.name == "sqlite":
        for stmt in (
            f"CREATE TRIGGER IF NOT EXISTS items_totals_insert AFTER INSERT ON items BEGIN {_add('NEW')}; END",
            f"CREATE TRIGGER IF NOT EXISTS items_totals_delete AFTER DELETE ON items BEGIN {_sub('OLD')}; END",
            f"CREATE TRIGGER IF NOT EXISTS items_totals_update AFTER UPDATE OF {_WATCHED} ON items "
            f"WHEN {_SAME} BEGIN {_DIFF}; END",
            f"CREATE TRIGGER IF NOT EXISTS items_totals_move AFTER UPDATE OF {_WATCHED} ON items "
            f"WHEN NOT ({_SAME}) BEGIN {_sub('OLD')}; {_add('NEW')}; END",
        ):
            conn.execute(sa.text(stmt))
        return
    old_first = (f"ROW({_key('OLD')}) < ROW({_key('NEW')})")
    conn.execute(sa.text(f"""
CREATE OR REPLACE FUNCTION driveferry_item_totals() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN {_add('NEW')};
  ELSIF TG_OP = 'DELETE' THEN {_sub('OLD')};
  ELSIF {_SAME} THEN {_DIFF};
  ELSIF {old_first} THEN {_sub('OLD')}; {_add('NEW')};
  ELSE {_add('NEW')}; {_sub('OLD')};
  END IF;
  RETURN NULL;
END $$"""))
    conn.execute(sa.text("DROP TRIGGER IF EXISTS items_totals ON items"))
    conn.execute(sa.text(f"CREATE TRIGGER items_totals AFTER INSERT OR DELETE OR UPDATE OF {_WATCHED} ON items "
                         "FOR EACH ROW EXECUTE FUNCTION driveferry_item_totals()"))


def fill(conn: Connection) -> None:
    """Compute `item_totals` from the items once (an upgraded journal), before the triggers take over."""
    c = t.items.c
    folder = c.kind == "folder"
    unhashed = sa.and_(c.state == "done", c.kind != "folder", c.dest_hashes == "{}")
    query = (sa.select(c.job_id, c.state, folder, unhashed, sa.func.count(),
                       sa.func.coalesce(sa.func.sum(c.size_bytes), 0), sa.func.coalesce(sa.func.sum(c.bytes_done), 0))
             .group_by(c.job_id, c.state, folder, unhashed))
    conn.execute(sa.insert(t.item_totals).from_select(
        ["job_id", "state", "folder", "unhashed", "item_count", "size_bytes", "bytes_done"], query))
