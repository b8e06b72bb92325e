"""A file taken over from a dead worker is found through the journal's upload session, not a listing.

Under Drive's listing lag (api-notes Part C §20) a file a worker uploaded just before it died is missing
from files.list, so a worker taking it over that looked by name would upload it again beside the first.
Every file's session token is in the journal before its bytes go (small files too); the next worker
resumes that session, and a finished session answers with the file itself.
"""

from __future__ import annotations

from typing import Any

from world import World

from driveferry.migrate.relay import Relay, RelayJob

CHUNK = 1280 * 1024


def _named(world: World, folder_id: str, name: str) -> int:
    drive = next(m for m in world.emu.modules if getattr(m, "route_prefix", "") == "drive.").model
    return sum(1 for c in drive.children(folder_id) if c.name == name and not drive.is_trashed(c))


def test_a_finished_upload_is_found_by_its_session_under_listing_lag(world: World) -> None:
    world.control("PUT", "/realism", {"drive": {"search_lag_new_s": 600}})
    src, dst = world.provider("onedrive"), world.provider("gdrive")
    folder = dst.mkdir(dst.root(), "Takeover")
    relay = Relay(src, dst)
    for path, name in (("Projects/readme.txt", "readme.txt"), ("Projects/data/a.bin", "a.bin")):
        entry = src.stat(path)
        tokens: list[tuple[str, int]] = []
        first = relay.copy(RelayJob(entry, folder, name, "run-1", CHUNK),
                           lambda t, o, seen=tokens: seen.append((t, o)))
        assert tokens and tokens[0][1] == 0  # the session was recorded before any byte went
        assert all(e.name != name for e in dst.list(folder))  # the listing lags: it cannot find the copy
        sent_before = world.upload_bytes()
        # the worker "died" before recording the copy; the next one resumes the journal's session
        again: Any = relay.copy(RelayJob(entry, folder, name, "run-2", CHUNK, resume_token=tokens[-1][0]),
                                lambda t, o: None)
        assert again.entry.id == first.entry.id and again.bytes_uploaded == 0, (path, again)
        assert world.upload_bytes() == sent_before
        assert _named(world, folder.id, name) == 1, path
