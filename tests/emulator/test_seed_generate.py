"""Generated seed trees (issue #16): layout, content and hashes, idempotence, spec errors, and the running
totals (Graph folder sizes and quota, Drive storage usage) checked against a full re-sum after every
kind of change. Graph reads go over HTTP as the OneDrive provider sends them."""

from __future__ import annotations

import base64
import hashlib
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import requests

from driveferry.emulator.drive.models import DriveModel
from driveferry.emulator.generate import (
    GenFile,
    GenFolder,
    SeedSpecError,
    TreeSpec,
    content_bytes,
    file_at,
    parse_tree,
    walk,
)
from driveferry.emulator.graph.models import GraphModel
from driveferry.emulator.seed import load_spec, seed_emulator
from driveferry.emulator.seedtargets import quickxor_b64
from driveferry.emulator.server import Emulator
from driveferry.emulator.state import State
from driveferry.integrity.hashes import QuickXor

SPEC: dict[str, Any] = {
    "onedrive": {"generate": [{"root": "Gen", "files": 250, "per_folder": 10, "fan_out": 5, "size": 0,
                               "max_size": "3K", "seed": 3, "names": "f{i:04d}.bin"}]},
    "gdrive": {"generate": [{"root": "GenD", "files": 45, "per_folder": 20, "size": "1K", "max_size": "2K",
                             "seed": 4}]},
}


def _models(emu: Emulator) -> tuple[GraphModel, DriveModel]:
    by_prefix = {m.route_prefix: m.model for m in emu.modules if hasattr(m, "model")}  # type: ignore[attr-defined]
    return by_prefix["graph."], by_prefix["drive."]


def _graph_session(emu: Emulator) -> tuple[requests.Session, str]:
    creds = emu.credentials()
    s = requests.Session()
    s.verify, s.trust_env = str(emu.ca_file), False
    s.headers["Authorization"] = "Bearer " + creds["microsoft"]["access_token"]
    return s, f"{creds['graph']['api_root']}/drives/{creds['graph']['drive_id']}"


def _graph_resum(state: State) -> dict[str, int]:
    """Every live folder's size summed from scratch over its live files (what the triggers must keep)."""
    rows = state.query("SELECT id, parent_id, kind, size FROM graph_items WHERE deleted=0")
    parent = {r["id"]: r["parent_id"] for r in rows}
    totals = {r["id"]: 0 for r in rows if r["kind"] in ("folder", "root")}
    for r in rows:
        if r["kind"] == "file":
            cur = r["parent_id"]
            while cur is not None:
                totals[cur] += r["size"]
                cur = parent.get(cur)
    return totals


def _graph_stored(state: State) -> dict[str, int]:
    return {r["id"]: r["size"] for r in state.query("SELECT id, size FROM graph_items WHERE deleted=0 "
                                                    "AND kind IN ('folder', 'root')")}


def test_layout_follows_counts_fan_out_and_per_folder() -> None:
    tree = parse_tree({"root": "R", "files": 250, "per_folder": 10, "fan_out": 5}, "t")
    assert tree.shape() == (2, 5)  # 25 leaves need two levels of 5
    entries = list(walk(tree))
    folders = [e.path for e in entries if isinstance(e, GenFolder)]
    files = [e for e in entries if isinstance(e, GenFile)]
    assert len(files) == 250 and len(folders) == 5 + 25
    assert len({(f.folder, f.name) for f in files}) == 250
    assert folders[:2] == ["dir-000", "dir-000/dir-000"]
    assert list(walk(tree)) == entries  # deterministic
    assert parse_tree({"root": "R", "files": 7, "per_folder": 10}, "t").shape() == (0, 10)


def test_generated_graph_tree_has_exact_bytes_hashes_and_folder_sizes(tmp_path: Path) -> None:
    with Emulator(tmp_path / "emu", tls=True) as emu:
        assert seed_emulator(emu, SPEC) == {"onedrive": 5 + 25 + 250, "gdrive": 3 + 45}
        graph, _ = _models(emu)
        s, drive = _graph_session(emu)
        tree = parse_tree(SPEC["onedrive"]["generate"][0], "t")
        expected = {f"Gen/{e.folder}/{e.name}": e.size for e in walk(tree) if isinstance(e, GenFile)}
        assert sum(expected.values()) > 0
        top = s.get(f"{drive}/root:/Gen").json()
        assert top["size"] == sum(expected.values()) and top["folder"]["childCount"] == 5
        leaf = s.get(f"{drive}/root:/Gen/dir-003/dir-004:/children").json()["value"]
        assert [i["name"] for i in leaf] == [f"f{n:04d}.bin" for n in range(190, 200)]
        for item in leaf[:4]:
            path = f"Gen/dir-003/dir-004/{item['name']}"
            data = s.get(f"{drive}/items/{item['id']}/content").content
            assert data == content_bytes(3, "onedrive", path, expected[path])
            qx = QuickXor()
            qx.update(data)
            want = base64.b64encode(qx.digest()).decode() if data else None
            assert item.get("file", {}).get("hashes", {}).get("quickXorHash") == want
        assert s.get(drive).json()["quota"]["used"] == graph.quota()["used"] == sum(expected.values())


def test_generated_drive_tree_has_md5_sha1_sha256_and_usage(tmp_path: Path) -> None:
    with Emulator(tmp_path / "emu") as emu:
        seed_emulator(emu, SPEC)
        _, drive = _models(emu)
        files = [f for f in drive.all_files() if not f.is_folder]
        assert len(files) == 45
        for f in files[:10]:
            path = drive.blob_path(f)
            assert path is not None
            data = path.read_bytes()
            assert (f.md5, f.sha1, f.sha256) == (hashlib.md5(data).hexdigest(), hashlib.sha1(data).hexdigest(),
                                                 hashlib.sha256(data).hexdigest())
        assert [f.name for f in drive.find_by_path("GenD/dir-001")[0:1] for f in drive.children(f.id)][:2] == [
            "file-0000020.bin", "file-0000021.bin"]
        assert drive.quotas.storage_used() == (sum(f.size or 0 for f in files), 0)


def test_a_generated_tree_is_made_once_per_data_directory(tmp_path: Path) -> None:
    with Emulator(tmp_path / "emu") as emu:
        seed_emulator(emu, SPEC)
        graph, _ = _models(emu)
        before = graph.child_count(graph.by_path("/Gen/dir-000").id)
    with Emulator(tmp_path / "emu") as emu:
        assert seed_emulator(emu, SPEC) == {"onedrive": 0, "gdrive": 0}
        graph, _ = _models(emu)
        assert graph.child_count(graph.by_path("/Gen/dir-000").id) == before == 5


def test_graph_totals_match_a_full_resum_after_every_kind_of_change(tmp_path: Path) -> None:
    state = State(tmp_path)
    m = GraphModel(state)
    a, _ = m.create_folder(m.root_id, "a")
    b, _ = m.create_folder(a.id, "b")
    c, _ = m.create_folder(m.root_id, "c")
    f1 = m.create_file(b.id, "one.bin", [os.urandom(1000)])
    m.create_file(b.id, "two.bin", [os.urandom(300)])
    m.create_file(c.id, "three.bin", [os.urandom(50)])
    assert _graph_stored(state) == _graph_resum(state) and m.folder_size(a.id) == 1300
    m.create_file(b.id, "one.bin", [os.urandom(10)], conflict="replace")  # content change
    assert m.folder_size(a.id) == 310 and _graph_stored(state) == _graph_resum(state)
    m.update(b.id, parent_id=c.id)  # a folder moves with its subtree
    assert (m.folder_size(a.id), m.folder_size(c.id)) == (0, 360)
    m.update(f1.id, parent_id=a.id, name="moved.bin")
    assert (m.folder_size(a.id), m.folder_size(c.id)) == (10, 350)
    m.delete(b.id)
    assert (m.folder_size(c.id), m.quota()["used"]) == (50, 60)
    assert _graph_stored(state) == _graph_resum(state)
    state.close()


def test_graph_totals_are_computed_once_for_a_database_from_before_them(tmp_path: Path) -> None:
    state = State(tmp_path)
    m = GraphModel(state)
    a, _ = m.create_folder(m.root_id, "a")
    m.create_file(a.id, "x.bin", [os.urandom(700)])
    state.close()
    with sqlite3.connect(tmp_path / "emulator.sqlite3") as db:  # as an older emulator left it
        for name in ("graph_total_insert", "graph_total_change", "graph_total_move"):
            db.execute(f"DROP TRIGGER {name}")
        db.execute("UPDATE graph_items SET size=0 WHERE kind != 'file'")
        db.execute("DELETE FROM emu_meta WHERE key='graph.size_totals'")
    state = State(tmp_path)
    m = GraphModel(state)
    assert m.folder_size(m.by_path("/a").id) == 700 == m.quota()["used"]
    m.create_file(m.by_path("/a").id, "y.bin", [b"12345"])
    assert m.quota()["used"] == 705
    state.close()


def test_drive_usage_matches_a_full_resum_after_create_trash_update_delete(tmp_path: Path) -> None:
    state = State(tmp_path)
    d = DriveModel(state)

    def resum() -> tuple[int, int]:
        files = [f for f in d.all_files() if f.blob and not f.is_native]
        return sum(f.size or 0 for f in files), sum(f.size or 0 for f in files if f.trashed)

    folder = d.create_folder("f")
    x = d.create_file("x", [os.urandom(1000)], parent=folder.id)
    d.create_file("y", [os.urandom(200)], parent=folder.id)
    d.create_native("doc", folder.id, text="free of quota")
    assert d.quotas.storage_used() == resum() == (1200, 0)
    d.update(x.id, {"trashed": True})
    assert d.quotas.storage_used() == resum() == (1200, 1000)
    d.delete(folder.id)
    assert d.quotas.storage_used() == resum() == (0, 0)
    state.close()


def test_vectorised_quickxor_matches_the_streaming_one() -> None:
    for n in (0, 1, 159, 160, 161, 1000, 4096, 70_001):
        data = os.urandom(n)
        qx = QuickXor()
        qx.update(data)
        assert quickxor_b64(data) == (base64.b64encode(qx.digest()).decode() if n else None)


@pytest.mark.parametrize(("body", "message"), [
    ('[[onedrive.generate]]\nroot = "R"\nfiles = "many"\n', "onedrive.generate[0].files: expected a non-negative "
                                                            "integer"),
    ('[[gdrive.generate]]\nfiles = 3\n', "gdrive.generate[0].root: missing"),
    ('[[onedrive.generate]]\nroot = "R"\nfiles = 3\nsize = "big"\n', "onedrive.generate[0].size: expected a size"),
    ('[[onedrive.generate]]\nroot = "R"\nfiles = 3\nnames = "same.bin"\n', "onedrive.generate[0].names: expected"),
    ('[[onedrive.generate]]\nroot = "R"\nfiles = 3\ncolour = 1\n', "onedrive.generate[0].colour: unknown key"),
    ('[onedrive]\nfiles = 3\n', "onedrive.files: expected a list"),
])
def test_a_bad_spec_is_one_line_naming_the_file_and_key(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(body)
    with pytest.raises(SeedSpecError) as err:
        load_spec(path)
    text = str(err.value)
    assert text.startswith(f"{path}: {message}") and "\n" not in text


def test_the_example_spec_is_valid() -> None:
    spec = load_spec(Path(__file__).parents[2] / "configs" / "emulator" / "scale.example.toml")
    trees = [parse_tree(t, "x") for t in spec["onedrive"]["generate"]]
    assert [t.files for t in trees] == [10000, 1000] and isinstance(trees[0], TreeSpec)


def test_latency_is_a_realism_setting_validated_and_reported(tmp_path: Path) -> None:
    with Emulator(tmp_path / "emu") as emu:
        s = requests.Session()
        s.trust_env = False
        url = emu.base_url + "/_emulator/realism"
        assert s.put(url, json={"latency_ms": 5}).status_code == 200
        assert s.get(url).json()["settings"]["latency_ms"] == 5.0
        assert emu.realism.settings.latency_ms == 5.0
        bad = s.put(url, json={"latency_ms": -1})
        assert bad.status_code == 400 and "latency_ms" in bad.text
        assert s.get(url).json()["settings"]["latency_ms"] == 5.0


def test_file_at_agrees_with_the_walk() -> None:
    tree = parse_tree({"root": "R", "files": 95, "per_folder": 7, "fan_out": 3, "size": 5, "max_size": 900,
                       "seed": 9}, "t")
    files = [e for e in walk(tree) if isinstance(e, GenFile)]
    assert files == [file_at(tree, i) for i in range(95)]
    assert len({f.size for f in files}) > 10 and all(5 <= f.size <= 900 for f in files)


def test_generated_blobs_are_written_on_first_read_and_survive_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "emu"
    with Emulator(data) as emu:
        seed_emulator(emu, SPEC)
        graph, drive = _models(emu)
        assert not any(p.is_file() for p in (data / "blobs").rglob("*"))  # nothing stored per file yet
        item = graph.by_path("/Gen/dir-001/dir-002/f0070.bin")
        path = graph.content_path(item)
        assert path is not None and path.read_bytes() == content_bytes(3, "onedrive", item_path(item.name), item.size)
        assert sum(1 for p in (data / "blobs").rglob("*") if p.is_file()) == 1
        graph.corrupt(item.id, offset=0)  # corruption still works on a derived blob, and sticks
        assert path.read_bytes()[0] != content_bytes(3, "onedrive", item_path(item.name), item.size)[0]
    with Emulator(data) as emu:  # a restart without the seed: blobs are still derivable
        graph, drive = _models(emu)
        other = graph.by_path("/Gen/dir-004/dir-004/f0249.bin")
        path = graph.content_path(other)
        assert path is not None and path.read_bytes() == content_bytes(3, "onedrive", item_path(other.name, "dir-004/dir-004"),
                                                                       other.size)
        f = drive.find_by_path("GenD/dir-002/file-0000044.bin")[0]
        blob = drive.blob_path(f)
        assert blob is not None and hashlib.sha256(blob.read_bytes()).hexdigest() == f.sha256


def item_path(name: str, folder: str = "dir-001/dir-002") -> str:
    return f"Gen/{folder}/{name}"
