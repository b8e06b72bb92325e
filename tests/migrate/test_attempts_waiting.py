"""A file's attempts are spent only on errors that cannot clear by waiting: a run of 5xx answers longer
than the retry layer's give-up time sends the file round again without spending an attempt."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from world import World, drive_tree, read_all, summary_of

from driveferry.emulator.remotes import remote_sections, remotes_toml

SPEC: dict[str, Any] = {"seed": 9, "onedrive": {"files": [{"path": "Projects/a.bin", "size": 4 * 1280 * 1024 + 5}]}}


@pytest.mark.parametrize("world", [SPEC], indirect=True)
def test_5xx_outlasting_the_retry_layer_spends_no_attempt(world: World, tmp_path: Path) -> None:
    from driveferry.journal import Journal
    from driveferry.journal.records import ItemState
    # the retry layer gives up on 5xx after 0.05 s; 40 answers of 503 take many such rounds, far more
    # than the 5 attempts a file has
    sections = remote_sections(world.emu.describe())
    fast = {"retry_base_delay_s": 0.005, "retry_max_delay_s": 0.02, "retry_transient_give_up": 0.05}
    world.config.write_text(remotes_toml({k: {**v, **fast} for k, v in sections.items()}))
    world.control("PUT", "/faults", {"seed": 1, "rules": [
        {"kind": "status", "route": "drive.upload.chunk", "status": 503, "code": "backendError",
         "after": 1, "count": 40}]})
    proc = world.cli(*world.migrate_args("--json", "--chunk-size", "1280K"), check=True)
    fired = world.control("GET", "/faults")["rules"][0]["fired"]
    world.control("PUT", "/faults", {"rules": []})
    summary = summary_of(proc)
    assert fired == 40 and summary["failed"] == 0 and summary["copied"] == 1
    assert '"status": "retry"' in proc.stdout  # it did go round again
    assert "no attempt spent" in proc.stderr
    journal = Journal.open(str(world.journal))
    try:
        job = journal.find_job("emu-onedrive:/Projects", "emu-gdrive:Archive")
        assert job is not None
        item = journal.find_item(job.id, "a.bin")
        assert item is not None and item.state is ItemState.DONE and item.attempts == 0
    finally:
        journal.close()
    tree = drive_tree(world)
    assert len(tree["a.bin"]) == 1 and read_all(world.provider("gdrive"), tree["a.bin"][0]) == world.expected()["a.bin"]
    assert world.upload_bytes() <= SPEC["onedrive"]["files"][0]["size"] + 1280 * 1024  # resumed, not restarted
