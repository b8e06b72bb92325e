"""rclone 1.60 (a client no one here wrote) against the emulated Drive and OneDrive, unmodified.

Through the CONNECT proxy (rclone_env): listing, small and chunked uploads, downloads, rclone's own
hashes (`hashsum md5` on Drive, `hashsum quickxor` on OneDrive) checked against hashes computed here
from the bytes, and `rclone check`, which must also catch a stored byte flipped behind rclone's back.
Each test works in a folder of its own on the shared module environment.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from rclone_env import RcloneEnv

from driveferry.emulator.drive.routes import drive_model
from driveferry.integrity.hashes import HashType, b64_to_hex, hash_bytes

BIG_BYTES = 1536 * 1024 + 123  # several 256 KiB / 320 KiB chunks, the last one short
# rclone's drive backend sends files below --drive-upload-cutoff (default 8 MiB) as one multipart
# request (backend/drive/drive.go, PutUnchecked); lowering the cutoff forces the resumable path.
DRIVE_CHUNKED = ["--drive-upload-cutoff", "256k", "--drive-chunk-size", "256k"]
# onedrive sends every non-empty file through an upload session (backend/onedrive/onedrive.go, upload)
ONEDRIVE_CHUNKED = ["--onedrive-chunk-size", "320k"]
REMOTES = {"drive": ("emudrive:", DRIVE_CHUNKED, "md5"), "onedrive": ("emuonedrive:", ONEDRIVE_CHUNKED, "quickxor")}


def graph_model(env: RcloneEnv) -> Any:
    return next(m for m in env.emu.modules if getattr(m, "route_prefix", "") == "graph.").model


def local_hash(data: bytes, kind: str) -> str:
    return hash_bytes(data, [HashType(kind)])[HashType(kind)]


def make_tree(root: Path) -> dict[str, bytes]:
    files = {"small.txt": b"hello from rclone\n", "sub/empty.bin": b"",
             "sub/big.bin": os.urandom(BIG_BYTES), "sub/deeper/one.bin": os.urandom(70_000)}
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return files


def counters(env: RcloneEnv) -> dict[str, Any]:
    r = env.http().get(env.emu.base_url + "/_emulator/counters", timeout=30)
    r.raise_for_status()
    out: dict[str, Any] = r.json()
    return out


def stored_bytes(env: RcloneEnv, which: str, folder: str, rel: str) -> bytes:
    """The bytes the emulator holds for `folder/rel` (read from its model, not through rclone)."""
    if which == "drive":
        model = drive_model(env.emu)
        (f,) = model.find_by_path(f"{folder}/{rel}", root=env.drive_folder_id)
        path = model.blob_path(f)
    else:
        gm = graph_model(env)
        path = gm.content_path(gm.by_path(f"/{folder}/{rel}"))
    return path.read_bytes() if path else b""


def test_tokens_refresh_through_the_proxy(rclone_env: RcloneEnv) -> None:
    """The tokens were written already expired: rclone's first call refreshes each one at the real token
    URLs (oauth2.googleapis.com, login.microsoftonline.com), which only the CONNECT proxy can reach."""
    for remote, route in (("emudrive", "identity.google.token"), ("emuonedrive", "identity.ms.token")):
        before = counters(rclone_env)["requests"].get(route, 0)
        rclone_env.run_rclone("lsjson", f"{remote}:")
        # one refresh each: Go's oauth2 sends client_secret_basic first, which the endpoints accept
        assert counters(rclone_env)["requests"].get(route, 0) - before == 1, remote
        saved = rclone_env.saved_token(remote)
        assert saved["access_token"] != rclone_env.written_tokens[remote]["access_token"], remote
        assert not saved["expiry"].startswith("2000-"), saved
    assert rclone_env.proxy.tunnels_opened >= 2


def test_lsjson_lists_what_the_emulator_holds(rclone_env: RcloneEnv) -> None:
    data = os.urandom(5000)
    model = drive_model(rclone_env.emu)
    folder = model.create_folder("ls", parent=rclone_env.drive_folder_id)
    model.create_file("seeded.bin", [data], parent=folder.id)
    gm = graph_model(rclone_env)
    gfolder, _ = gm.create_folder(gm.root().id, "ls")
    gm.create_file(gfolder.id, "seeded.bin", [data])
    for remote, kind in (("emudrive:", "md5"), ("emuonedrive:", "quickxor")):
        (entry,) = rclone_env.lsjson(remote + "ls", "--hash")
        assert (entry["Name"], entry["Size"], entry["IsDir"]) == ("seeded.bin", 5000, False)
        assert entry["Hashes"][kind] == local_hash(data, kind), remote


@pytest.mark.parametrize("which", ["drive", "onedrive"])
def test_copy_up_small_and_chunked_then_back(rclone_env: RcloneEnv, tmp_path: Path, which: str) -> None:
    remote, chunk_flags, _ = REMOTES[which]
    src = tmp_path / "src"
    files = make_tree(src)
    before = counters(rclone_env)["requests"]
    rclone_env.run_rclone("copy", str(src), f"{remote}up", *chunk_flags)
    after = counters(rclone_env)["requests"]
    for rel, data in files.items():
        assert stored_bytes(rclone_env, which, "up", rel) == data, rel
    chunk_route = "drive.upload.chunk" if which == "drive" else "graph.upload.fragment"
    # big.bin alone is ceil(1.5 MiB / chunk) >= 5 chunks; fewer means it was not uploaded in chunks
    assert after.get(chunk_route, 0) - before.get(chunk_route, 0) >= 5
    back = tmp_path / "back"
    rclone_env.run_rclone("copy", f"{remote}up", str(back))
    for rel, data in files.items():
        assert (back / rel).read_bytes() == data, rel
    cat = rclone_env.run_rclone("cat", f"{remote}up/sub/big.bin").stdout
    assert hashlib.sha256(cat).digest() == hashlib.sha256(files["sub/big.bin"]).digest()


@pytest.mark.parametrize("which", ["drive", "onedrive"])
def test_copyto_single_file_small_and_chunked(rclone_env: RcloneEnv, tmp_path: Path, which: str) -> None:
    remote, chunk_flags, _ = REMOTES[which]
    small, big = tmp_path / "s.bin", tmp_path / "b.bin"
    small.write_bytes(os.urandom(1000))
    big.write_bytes(os.urandom(BIG_BYTES))
    rclone_env.run_rclone("copyto", str(small), f"{remote}copyto/renamed-small.bin", *chunk_flags)
    rclone_env.run_rclone("copyto", str(big), f"{remote}copyto/renamed-big.bin", *chunk_flags)
    assert stored_bytes(rclone_env, which, "copyto", "renamed-small.bin") == small.read_bytes()
    assert stored_bytes(rclone_env, which, "copyto", "renamed-big.bin") == big.read_bytes()


@pytest.mark.parametrize("which", ["drive", "onedrive"])
def test_hashsum_matches_hashes_of_the_bytes(rclone_env: RcloneEnv, tmp_path: Path, which: str) -> None:
    remote, chunk_flags, kind = REMOTES[which]
    src = tmp_path / "src"
    files = make_tree(src)
    rclone_env.run_rclone("copy", str(src), f"{remote}sums", *chunk_flags)
    out = rclone_env.run_rclone("hashsum", kind, f"{remote}sums").stdout.decode()
    got = {}
    for line in filter(str.strip, out.splitlines()):
        parts = line.split()  # "<hash>  <path>"; a blank hash (none reported) leaves the path alone
        got[parts[-1]] = parts[0] if len(parts) == 2 else ""
    want = {rel: local_hash(data, kind) for rel, data in files.items()}
    if which == "onedrive":
        # A hash may be missing (api-notes Part A, file.hashes: "clients must tolerate a missing hash"; the
        # emulated Graph keeps none for a zero-byte file); rclone then prints a blank hash
        assert got.pop("sub/empty.bin") in ("", want.pop("sub/empty.bin"))
        gm = graph_model(rclone_env)
        item = gm.by_path("/sums/sub/big.bin")
        assert item.qxh is not None and b64_to_hex(item.qxh) == want["sub/big.bin"]
    assert got == want


@pytest.mark.parametrize("which", ["drive", "onedrive"])
def test_check_agrees_then_catches_a_flipped_byte(rclone_env: RcloneEnv, tmp_path: Path, which: str) -> None:
    remote, chunk_flags, _ = REMOTES[which]
    src = tmp_path / "src"
    make_tree(src)
    rclone_env.run_rclone("copy", str(src), f"{remote}chk", *chunk_flags)
    rclone_env.run_rclone("check", str(src), f"{remote}chk")
    rclone_env.run_rclone("check", "--download", str(src), f"{remote}chk")
    if which == "drive":
        model = drive_model(rclone_env.emu)
        (f,) = model.find_by_path("chk/sub/big.bin", root=rclone_env.drive_folder_id)
        model.corrupt(f.id, offset=BIG_BYTES // 2)
    else:
        gm = graph_model(rclone_env)
        gm.corrupt(gm.by_path("/chk/sub/big.bin").id, offset=BIG_BYTES // 2)
    # the stored hash still matches, so only comparing downloaded bytes can see it
    rclone_env.run_rclone("check", str(src), f"{remote}chk")
    differ = tmp_path / "differ.txt"
    bad = rclone_env.run_rclone("check", "--download", "--differ", str(differ), str(src), f"{remote}chk",
                                check=False)
    assert bad.returncode != 0 and b"1 differences found" in bad.stderr
    assert differ.read_text().splitlines() == ["sub/big.bin"]


def _wait_for(path: Path, text: str, proc: subprocess.Popen[bytes], deadline_s: float = 60.0) -> str:
    """The output file's text once it contains `text` (a bounded wait for an event, not a timing check)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        out = path.read_text(errors="replace")
        if text in out:
            return out
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    raise AssertionError(f"rclone never printed {text!r}:\n{path.read_text(errors='replace')[-3000:]}")


def test_changenotify_polls_drive_changes(rclone_env: RcloneEnv, tmp_path: Path) -> None:
    """rclone's Drive ChangeNotify (what `rclone mount` polls) reads changes.getStartPageToken/changes.list
    (backend/drive/drive.go changeNotifyRunner) and names a file added behind its back."""
    log = tmp_path / "notify.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([*rclone_env.base_args(), "test", "changenotify", "emudrive:", "--poll-interval", "1s"],
                                env=rclone_env.env(), stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_for(log, "Waiting for changes", proc)
        drive_model(rclone_env.emu).create_file("notified.txt", [b"hi"], parent=rclone_env.drive_folder_id)
        _wait_for(log, '"notified.txt"', proc)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert counters(rclone_env)["requests"].get("drive.changes.list", 0) >= 1


@pytest.mark.parametrize("which", ["drive", "onedrive"])
def test_server_side_copy_move_and_delete(rclone_env: RcloneEnv, tmp_path: Path, which: str) -> None:
    """Server-side copy (Drive files.copy; Graph's async copy and its monitor URL), move, delete, purge."""
    remote, _, _ = REMOTES[which]
    data = os.urandom(3000)
    src = tmp_path / "f.bin"
    src.write_bytes(data)
    rclone_env.run_rclone("copyto", str(src), f"{remote}ops/a/f.bin")
    before = counters(rclone_env)["requests"]
    rclone_env.run_rclone("copyto", f"{remote}ops/a/f.bin", f"{remote}ops/copy.bin")
    rclone_env.run_rclone("moveto", f"{remote}ops/a/f.bin", f"{remote}ops/moved.bin")
    after = counters(rclone_env)["requests"]
    copy_route = "drive.files.copy" if which == "drive" else "graph.item.copy"
    assert after.get(copy_route, 0) - before.get(copy_route, 0) == 1  # copied on the server, not re-uploaded
    assert stored_bytes(rclone_env, which, "ops", "copy.bin") == data
    assert stored_bytes(rclone_env, which, "ops", "moved.bin") == data
    assert sorted(e["Path"] for e in rclone_env.lsjson(f"{remote}ops", "-R")) == ["a", "copy.bin", "moved.bin"]
    rclone_env.run_rclone("deletefile", f"{remote}ops/copy.bin")
    rclone_env.run_rclone("purge", f"{remote}ops")
    assert "ops" not in [e["Path"] for e in rclone_env.lsjson(remote)]
