"""Drive -> OneDrive for Business over real HTTP: every source item is copied under its documented name
or reported, none dropped, none written over another.

The Drive tree holds names OneDrive refuses (`"*:<>?\\|`, a trailing dot, a trailing space, a device
name, a folder with a refused name), two siblings differing only in case, a path one character under
and one over the 400-character limit, a Doc, a Sheet, a Slides deck, a shortcut and a Doc whose export
is over Drive's 10 MB cap. The emulated Graph refuses what real OneDrive refuses (invalid names 400,
case-insensitive conflicts 409, long paths 400 pathIsTooLong), so a name that reached it unmapped
would fail the run, and a twin written over its sibling would show as a missing file.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from world import World, make_world, summary_of

from driveferry.emulator.drive import convert
from driveferry.emulator.drive.routes import drive_model
from driveferry.emulator.graph.models import GraphModel
from driveferry.emulator.graph.routes import GraphApi
from driveferry.emulator.seed import content_bytes
from driveferry.providers.onedrive import names

SEED = 21
LONG_OK = "Src/" + "d" * 150 + "/" + "e" * 150 + "/" + "f" * 85 + ".bin"  # "Migrated/" + 391: exactly 400
LONG_OVER = "Src/" + "d" * 150 + "/" + "e" * 150 + "/" + "g" * 86 + ".bin"  # one more: 401
FILES = {
    "Src/a:b*c?.txt": 1000,
    'Src/quote"pipe|lt<gt>back\\.bin': 2000,
    "Src/trailing dot.": 300,
    "Src/trailing space ": 400,
    "Src/CON.txt": 500,
    "Src/dir:x/inner.txt": 600,
    "Src/Twins/Report.txt": 700,
    "Src/Twins/report.txt": 800,
    LONG_OK: 900,
    LONG_OVER: 901,
}
DOC_TEXT = {"Plan": "the plan\n", "Budget": "a,b\n1,2\n", "Deck": "slide one\n"}
BIG_DOC_BYTES = 10 * 1000 * 1000 + 1  # over files.export's 10 MB cap once converted


def _spec() -> dict[str, Any]:
    return {"seed": SEED, "gdrive": {"files": [{"path": p, "size": n} for p, n in FILES.items()]},
            "onedrive": {"files": [{"path": "Other/x.bin", "size": 1}]}}


def graph(world: World) -> GraphModel:
    return next(m.model for m in world.emu.modules if isinstance(m, GraphApi))


def onedrive_files(world: World, top: str) -> dict[str, bytes]:
    """Every file under /`top` as Graph stores it: stored (encoded) names, bytes from the blobs."""
    g = graph(world)
    out: dict[str, bytes] = {}
    stack = [(g.by_path("/" + top), "")]
    while stack:
        folder, rel = stack.pop()
        for item in g.children(folder.id):
            path = f"{rel}/{item.name}" if rel else item.name
            if item.kind == "folder":
                stack.append((item, path))
            else:
                blob = g.content_path(item)
                out[path] = blob.read_bytes() if blob else b""
    return out


@pytest.fixture()
def drive_world(tmp_path: Path) -> Any:
    for world in make_world(tmp_path, _spec()):
        m = drive_model(world.emu)
        (src,) = m.find_by_path("Src")
        m.create_native("Plan", src.id, kind="document", text=DOC_TEXT["Plan"])
        m.create_native("Budget", src.id, kind="spreadsheet", text=DOC_TEXT["Budget"])
        m.create_native("Deck", src.id, kind="presentation", text=DOC_TEXT["Deck"])
        m.create_native("Huge", src.id, kind="document", text="x" * BIG_DOC_BYTES)
        (target,) = m.find_by_path("Src/CON.txt")
        m.create_shortcut("link to CON", target.id, src.id)
        yield world


def migrate(world: World, *extra: str) -> tuple[int, dict[str, Any]]:
    proc = world.cli("migrate", "emu-gdrive:Src", "emu-onedrive:/Migrated", "--journal", str(world.journal),
                     "--json", *extra)
    return proc.returncode, summary_of(proc)


def source(path: str) -> bytes:
    return content_bytes(SEED, "gdrive", path, FILES[path])


def test_drive_to_onedrive_maps_reports_and_never_overwrites(drive_world: World) -> None:
    code, s = migrate(drive_world)
    stored = onedrive_files(drive_world, "Migrated")
    # the documented mapping (providers/onedrive/names.py): fullwidth twins, ␠ for a space
    expected_names = {
        "a：b＊c？.txt": "Src/a:b*c?.txt",
        "quote＂pipe｜lt＜gt＞back＼.bin": 'Src/quote"pipe|lt<gt>back\\.bin',
        "trailing dot．": "Src/trailing dot.",
        "trailing space␠": "Src/trailing space ",
        "ＣON.txt": "Src/CON.txt",
        "dir：x/inner.txt": "Src/dir:x/inner.txt",
        LONG_OK.removeprefix("Src/"): LONG_OK,
    }
    for name, path in expected_names.items():
        assert name == names.encode_path(path.removeprefix("Src/"))
        assert stored[name] == source(path), name
    # case twins: both there, each with its own bytes; the later one under the documented twin name
    twins = {k: v for k, v in stored.items() if k.startswith("Twins/")}
    assert len(twins) == 2
    first, second = ("Report.txt", "report.txt") if "Twins/Report.txt" in twins else ("report.txt", "Report.txt")
    assert twins[f"Twins/{first}"] == source(f"Src/Twins/{first}")
    assert twins[f"Twins/{second.removesuffix('.txt')} (case 2).txt"] == source(f"Src/Twins/{second}")
    renamed = {r["path"]: r for r in s["renamed_items"]}
    assert f"Twins/{second.removesuffix('.txt')} (case 2).txt" in renamed
    assert "does not tell case apart" in renamed[f"Twins/{second.removesuffix('.txt')} (case 2).txt"]["why"]
    # native documents: their Office exports, byte for byte what Drive exported, recorded as exports
    exports = {"Plan.docx": convert.convert(DOC_TEXT["Plan"].encode(), convert.DOCX),
               "Budget.xlsx": convert.convert(DOC_TEXT["Budget"].encode(), convert.XLSX),
               "Deck.pptx": convert.convert(DOC_TEXT["Deck"].encode(), convert.PPTX)}
    for name, data in exports.items():
        assert stored[name] == data, name
    recorded = {e["path"]: e for e in s["exported_items"]}
    assert set(recorded) == set(exports) and s["exported"] == 3
    for name, data in exports.items():
        assert recorded[name]["sha256"] == hashlib.sha256(data).hexdigest() and recorded[name]["proven"] is True
        assert "converted copy" in recorded[name]["note"]
    # reported, not dropped: the long path, the shortcut, the doc over the export cap
    unsupported = {u["path"]: u["reason"] for u in s["unsupported_items"]}
    assert "401 characters" in unsupported[LONG_OVER.removeprefix("Src/")]
    assert unsupported["link to CON"].startswith("shortcut")
    failures = {f["path"]: f["error"] for f in s["failures"]}
    assert set(failures) == {"Huge.docx"} and "10 MB" in failures["Huge.docx"]
    assert code == 1 and s["failed"] == 1
    # every item accounted for: 10 files + 4 docs + 1 shortcut
    assert s["planned"] == 15 and s["copied"] == 12 and s["unsupported"] == 2
    assert len(stored) == 12

    code2, s2 = migrate(drive_world)  # a re-run overwrites nothing and adds no second copy
    assert onedrive_files(drive_world, "Migrated") == stored
    assert s2["failed"] == 1 and code2 == 1


def test_round_trip_restores_the_drive_names(drive_world: World) -> None:
    migrate(drive_world)
    proc = drive_world.cli("migrate", "emu-onedrive:/Migrated", "emu-gdrive:Back", "--journal",
                           str(drive_world.journal), "--json", check=True)
    s = summary_of(proc)
    assert s["failed"] == 0 and s["copied"] == 12
    m = drive_model(drive_world.emu)
    for path in ("a:b*c?.txt", 'quote"pipe|lt<gt>back\\.bin', "trailing dot.", "trailing space ", "CON.txt",
                 "dir:x/inner.txt"):
        (f,) = m.find_by_path("Back/" + path)
        blob = m.blob_path(f)
        assert blob is not None and blob.read_bytes() == source("Src/" + path)
    assert len(m.find_by_path("Back/Plan.docx")) == 1


@pytest.mark.parametrize("choice", ["pdf", "skip"])
def test_export_choice(drive_world: World, choice: str) -> None:
    code, s = migrate(drive_world, "--export", choice, "--include", "Plan", "--include", "Budget")
    stored = onedrive_files(drive_world, "Migrated")
    if choice == "pdf":
        assert stored == {"Plan.pdf": convert.convert(DOC_TEXT["Plan"].encode(), convert.PDF),
                          "Budget.pdf": convert.convert(DOC_TEXT["Budget"].encode(), convert.PDF)}
        assert s["exported"] == 2 and code == 0
    else:
        assert stored == {}
        reasons = {u["path"]: u["reason"] for u in s["unsupported_items"]}
        assert set(reasons) >= {"Plan", "Budget"} and "--export" in reasons["Plan"]
        assert code == 0 and s["copied"] == 0


def test_bad_export_choice_is_a_one_line_error(drive_world: World) -> None:
    proc = drive_world.cli("migrate", "emu-gdrive:Src", "emu-onedrive:/Migrated", "--export", "html")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_a_library_that_rewrites_office_files_keeps_the_copy_and_reports_it(drive_world: World) -> None:
    rewrite = 1024
    drive_world.control("PUT", "/realism", {"graph": {"sharepoint_rewrite_bytes": rewrite}})
    code, s = migrate(drive_world, "--include", "Plan", "--include", "a:b*c?.txt")
    assert code == 0 and s["failed"] == 0 and s["copied"] == 2
    stored = onedrive_files(drive_world, "Migrated")
    sent = convert.convert(DOC_TEXT["Plan"].encode(), convert.DOCX)
    # the library merged its metadata into the .docx; the plain file is untouched
    assert len(stored["Plan.docx"]) == len(sent) + rewrite and stored["Plan.docx"].startswith(sent[:100])
    assert stored["a：b＊c？.txt"] == source("Src/a:b*c?.txt")
    (altered,) = s["altered_items"]
    assert altered["path"] == "Plan.docx" and s["altered"] == 1
    assert altered["sent_bytes"] == len(sent) and altered["stored_bytes"] == len(sent) + rewrite
    assert altered["sent"]["sha256"] == hashlib.sha256(sent).hexdigest()
    assert "altered by the destination" in altered["note"]
    assert drive_world.realism().get("graph.sharepoint_rewrites") == 1  # uploaded once: not deleted and retried
