"""Permission reads in batches, over HTTP against the emulator: OneDrive's `read_many` (Graph `$batch`, 20
reads per request) answers what the single reads answer for the seeded sharing tree, a missing item maps to
its error, throttled sub-requests are retried alone (after their Retry-After) while answered ones are not
sent again, the sharing pass reports the same with batches as with single reads, and a `report` run over
N files reads permissions in at most ceil(N/20) + folders requests."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from test_permissions_migrate import MAP, TREE
from world import World, make_world

from driveferry.emulator.realism.settings import Settings
from driveferry.errors import NotFoundError
from driveferry.migrate.sharing.mapping import load_map
from driveferry.migrate.sharing.walk import SharingPass
from driveferry.providers.base import BatchSharingReader, Entry, Permission, read_permissions
from driveferry.providers.ops import walk


@pytest.fixture()
def shared(tmp_path: Path) -> Iterator[World]:
    yield from make_world(tmp_path, TREE)


def _entries(od: Any) -> list[Entry]:
    root = od.stat("Projects")
    return [root, *(found.entry for found in walk(od, root))]


def _requests(world: World) -> dict[str, int]:
    return dict(world.counters()["requests"])


def _delta(after: dict[str, int], before: dict[str, int], route: str) -> int:
    return after.get(route, 0) - before.get(route, 0)


def test_batch_reads_equal_single_reads_and_a_missing_item_is_its_error(shared: World) -> None:
    od = shared.provider("onedrive")
    reader = od.features.sharing
    assert isinstance(reader, BatchSharingReader)
    entries = _entries(od)
    single = {e.id: reader.list_permissions(e) for e in entries}
    assert sum(len(p) for p in single.values()) > len(entries)  # the tree has permissions to compare
    gone = replace(entries[-1], id="NOTANITEM1", path="Projects/gone.txt")
    before = _requests(shared)
    got = reader.read_many([*entries, gone])
    after = _requests(shared)
    assert {k: v for k, v in got.items() if k != gone.id} == single
    assert isinstance(got[gone.id], NotFoundError)
    assert _delta(after, before, "graph.batch") == math.ceil((len(entries) + 1) / 20)
    assert _delta(after, before, "graph.permissions.list") == len(entries) + 1  # as sub-requests only


def test_throttled_sub_requests_are_retried_alone(shared: World) -> None:
    od = shared.provider("onedrive")
    entries = _entries(od)
    single = {e.id: od.features.sharing.list_permissions(e) for e in entries}
    # every 4th Graph call starts a 30 s episode (emulated; the clock runs 1000x, so the client waits 30 ms)
    shared.emu.realism.replace(Settings.from_dict(
        {"clock_scale": 1000, "graph": {"throttle": {"retry_after_s": [30], "every_requests": 4}}}))
    od = shared.provider("onedrive")  # with the emulator's time_scale
    before, throttled_before = _requests(shared), shared.realism().get("graph.throttled", 0)
    got = read_permissions(od.features.sharing, entries, {})
    after, throttled = _requests(shared), shared.realism().get("graph.throttled", 0) - throttled_before
    assert got == single
    assert throttled >= 1
    # each item read once successfully; only the refused ones were sent again
    assert _delta(after, before, "graph.permissions.list") == len(entries) + throttled
    assert _delta(after, before, "graph.batch") >= 2


class _SingleReads:
    """A reader with `list_permissions` only: read_permissions then reads item by item."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def list_permissions(self, entry: Entry) -> list[Permission]:
        result: list[Permission] = self.inner.list_permissions(entry)
        return result


class _Source:
    """The OneDrive provider with a sharing reader that cannot batch."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.features = replace(inner.features, sharing=_SingleReads(inner.features.sharing))

    def list(self, folder: Entry) -> Iterator[Entry]:
        return iter(self.inner.list(folder))


def test_the_pass_reports_the_same_with_batches_as_with_single_reads(shared: World) -> None:
    od, gd = shared.provider("onedrive"), shared.provider("gdrive")
    csv = shared.dir / "map.csv"
    csv.write_text(MAP)
    mapping, root, dest = load_map(str(csv)), od.stat("Projects"), gd.root()

    def report(src: Any) -> dict[str, Any]:
        made = SharingPass(src, root, gd, lambda rel, entry: dest, mapping, mode="report", allow_anyone=False)
        return made.run().to_json()

    before = _requests(shared)
    batched = report(od)
    middle = _requests(shared)
    plain = report(_Source(od))
    after = _requests(shared)
    assert json.dumps(batched, sort_keys=True) == json.dumps(plain, sort_keys=True)
    assert batched["checked"] == len(_entries(od)) and batched["planned"] >= 5 and batched["not_granted"] >= 4
    assert [i["path"] for i in batched["items"]] == sorted(i["path"] for i in batched["items"])
    assert _delta(middle, before, "graph.batch") >= 1 and _delta(after, middle, "graph.batch") == 0
    assert _delta(middle, before, "graph.permissions.list") == _delta(after, middle, "graph.permissions.list")


WIDE: dict[str, Any] = {
    "seed": 21,
    "onedrive": {
        "files": [*({"path": f"Projects/A/f{n:02}.txt", "size": 10} for n in range(30)),
                  *({"path": f"Projects/B/g{n:02}.txt", "size": 10} for n in range(15)),
                  {"path": "Projects/top.txt", "size": 10}],
        "permissions": [{"path": "Projects/A", "user": "bob@contoso.com", "roles": ["read"]},
                        {"path": "Projects/B/g03.txt", "link": "organization", "type": "view"}],
    },
}


def test_a_report_run_reads_permissions_in_batches(tmp_path: Path) -> None:
    for world in make_world(tmp_path, WIDE):
        files, folders = 46, 3  # Projects, A, B
        report = tmp_path / "report.json"
        before = _requests(world)
        world.cli(*world.migrate_args("--report", str(report)), check=True)  # --permissions report: the default
        after = _requests(world)
        sharing = json.loads(report.read_text())["sharing"]
        assert sharing["mode"] == "report" and sharing["checked"] == files + folders
        batches = _delta(after, before, "graph.batch")
        # the root alone, then per folder its children 20 at a time: 1 + (3 items) + (30: 2) + (15: 1)
        assert batches == 5 <= math.ceil(files / 20) + folders
        assert _delta(after, before, "graph.permissions.list") == files + folders  # no single reads
        # what the seed shares (and the drive owner's grant, on the root), in path order
        assert [i["path"] for i in sharing["items"]] == ["/", "A", "B/g03.txt"]
