"""Running totals of a job's items per state, kept by the database itself, so `status` reads a few rows.

`item_totals` holds, per (job, state, folder or not, done without a destination hash), the items, their
source bytes and bytes sent. Triggers on `items` keep it in the same transaction as every insert,
update and delete of an item, whoever writes (no code path can forget it), so a status of a million
items costs a read of at most a few dozen rows instead of a scan (issue #16).

Each trigger first subtracts the old row's contribution and then adds the new one, with an UPSERT on
the key: SQLite and PostgreSQL both apply it atomically within the writer's transaction. On
PostgreSQL, workers that change items of the same state touch the same totals row; each holds its
lock only until its short transaction commits (a claim or a completion batch), the same order of
locks as any two writers of those items.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from driveferry.journal import schema as t

__all__ = ["install", "fill"]

_KEY = "job_id, state, folder, unhashed"
_VALUES = "{r}.job_id, {r}.state, {r}.kind = 'folder', ({r}.state = 'done' AND {r}.kind <> 'folder' AND {r}.dest_hashes = '{{}}')"


def _add(r: str, sign: str) -> str:
    return (f"INSERT INTO item_totals ({_KEY}, item_count, size_bytes, bytes_done) "
            f"VALUES ({_VALUES.format(r=r)}, {sign}1, {sign}COALESCE({r}.size_bytes, 0), {sign}{r}.bytes_done) "
            f"ON CONFLICT ({_KEY}) DO UPDATE SET item_count = item_totals.item_count + excluded.item_count, "
            "size_bytes = item_totals.size_bytes + excluded.size_bytes, "
            "bytes_done = item_totals.bytes_done + excluded.bytes_done")


# Only the columns a total depends on fire the update trigger (a lease renewal or checkpoint offset
# does not).
_WATCHED = "job_id, state, kind, size_bytes, bytes_done, dest_hashes"


def install(conn: Connection) -> None:
    """Create the triggers that keep `item_totals` (the table exists: metadata or the v4 upgrade)."""
    if conn.dialect.name == "sqlite":
        for stmt in (
            f"CREATE TRIGGER IF NOT EXISTS items_totals_insert AFTER INSERT ON items BEGIN {_add('NEW', '')}; END",
            f"CREATE TRIGGER IF NOT EXISTS items_totals_delete AFTER DELETE ON items BEGIN {_add('OLD', '-')}; END",
            f"CREATE TRIGGER IF NOT EXISTS items_totals_update AFTER UPDATE OF {_WATCHED} ON items "
            f"BEGIN {_add('OLD', '-')}; {_add('NEW', '')}; END",
        ):
            conn.execute(sa.text(stmt))
        return
    conn.execute(sa.text(f"""
CREATE OR REPLACE FUNCTION driveferry_item_totals() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP IN ('UPDATE', 'DELETE') THEN {_add('OLD', '-')}; END IF;
  IF TG_OP IN ('UPDATE', 'INSERT') THEN {_add('NEW', '')}; END IF;
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
