"""Destination folders come from the journal, not from listings; a recorded folder deleted on Drive
since is made again (checked by id), never written into."""

from __future__ import annotations

from typing import Any

from world import World, drive_tree, read_all, summary_of


def _graph(world: World) -> Any:
    return next(m for m in world.emu.modules if getattr(m, "route_prefix", "") == "graph.").model


def test_a_rerun_finds_folders_in_the_journal_and_remakes_a_deleted_one(world: World) -> None:
    world.cli(*world.migrate_args(), check=True)
    gd = world.provider("gdrive")
    gd.delete(gd.stat("Archive/data"))  # to the trash, with what it holds
    graph = _graph(world)
    data = graph.resolve(graph.by_path("Projects").id, "data")
    graph.create_file(data.id, "new.bin", [b"new bytes"], conflict="replace")
    lists_before = world.counters()["requests"].get("drive.files.list", 0)
    summary = summary_of(world.cli(*world.migrate_args("--json"), check=True))
    lists = world.counters()["requests"].get("drive.files.list", 0) - lists_before
    assert (summary["copied"], summary["failed"]) == (1, 0), summary
    tree = drive_tree(world)  # walks only what is not trashed
    assert [read_all(gd, e) for e in tree["data/new.bin"]] == [b"new bytes"]
    # folders came from the journal: the re-run listed Drive only for the preflight's look at Archive
    # (once: the run takes the command's check), the look-up before making data/ again, and data/'s
    # files (for a copy already there); the other 15 folders were neither looked up nor listed
    assert lists == 3, lists
