"""Every argument is checked before anything is created or opened for writing; foreign files are never
modified; a pipe closed early and a remote that never answers end in one quiet line.

A refused command exits 2 with one `driveferry: error:` line, and the work folder's listing (names and
bytes) is the same before and after: no journal, report, destination or data folder was created.
"""

from __future__ import annotations

import hashlib
import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from driveferry.cli import main

CONFIG = """\
[remotes.loc]
type = "local"
root = "{root}"

[remotes.cloud]
type = "gdrive"
endpoint = "http://127.0.0.1:9"
auth = "access_token"
access_token = "t"
"""

# (id, argv, fragment of the one error line); run in a folder holding src/ (with files), remotes.toml,
# report.txt (a file) and foreign.db (an SQLite database that is not a journal)
CASES: list[tuple[str, tuple[str, ...], str]] = [
    ("dest-inside-source", ("migrate", "./src", "./src/backup"), "destination ./src/backup is inside the source"),
    ("dest-inside-source-abs", ("migrate", "src", "{tmp}/src/b/c"), "is inside the source"),
    ("source-inside-dest", ("migrate", "./src/sub", "./src"), "source ./src/sub is inside the destination"),
    ("same-folder", ("migrate", "src", "./src/"), "are the same folder"),
    ("local-remote-overlap", ("migrate", "loc:sub", "./src"), "is inside the destination"),
    ("same-remote-overlap", ("migrate", "cloud:A", "cloud:A/B"), "destination cloud:A/B is inside the source"),
    ("same-remote-root", ("migrate", "cloud:", "cloud:Backup"), "is inside the source cloud:"),
    ("exclude-empty", ("migrate", "src", "dst", "--exclude", ""), "--exclude '': an empty pattern"),
    ("include-empty", ("migrate", "src", "dst", "--include", " "), "--include '': an empty pattern"),
    ("min-above-max", ("migrate", "src", "dst", "--min-size", "2M", "--max-size", "1M"), "--min-size (2097152 bytes) is above"),
    ("journal-folder-missing", ("migrate", "src", "dst", "--journal", "jfolder/j.sqlite3"),
     "folder jfolder does not exist"),
    ("journal-is-a-folder", ("migrate", "src", "dst", "--journal", "src"), "--journal src is a folder"),
    ("journal-below-a-file", ("migrate", "src", "dst", "--journal", "report.txt/j.sqlite3"), "is not a folder"),
    ("report-is-a-folder", ("migrate", "src", "dst", "--report", "src"), "--report src is a folder"),
    ("report-below-a-file", ("migrate", "src", "dst", "--report", "report.txt/r.json"), "report.txt is not a folder"),
    ("journal-foreign-sqlite", ("migrate", "src", "dst", "--journal", "foreign.db"), "not a driveferry journal"),
    ("status-foreign-sqlite", ("status", "--journal", "foreign.db"), "not a driveferry journal"),
    ("status-journal-missing-folder", ("status", "--journal", "jfolder/j.sqlite3"), "no journal at"),
    ("verify-exclude-empty", ("verify", "src", "loc:", "--exclude", ""), "--exclude '': an empty pattern"),
    ("verify-exclude-malformed", ("verify", "src", "loc:", "--exclude", "[ab"), "malformed glob '[ab'"),
    ("port-out-of-range", ("emulator", "serve", "--data", "emu", "--port", "70000"), "--port 70000: expected a port"),
    ("data-is-a-file", ("emulator", "serve", "--data", "report.txt"), "--data report.txt is a file"),
    ("data-below-a-file", ("emulator", "serve", "--data", "report.txt/emu"), "report.txt is a file, not a folder"),
    ("seed-missing", ("emulator", "serve", "--data", "emu", "--seed", "none.toml"), "seed spec none.toml not found"),
]


def listing(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): "dir" if p.is_dir() else hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))}


@pytest.fixture()
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    w = tmp_path / "work"
    (w / "src" / "sub").mkdir(parents=True)
    (w / "src" / "a.txt").write_text("a")
    (w / "src" / "sub" / "b.txt").write_text("b")
    (w / "report.txt").write_text("not a folder")
    (w / "remotes.toml").write_text(CONFIG.format(root=w / "src"))
    db = sqlite3.connect(w / "foreign.db")
    with db:
        db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
        db.execute("INSERT INTO notes (text) VALUES ('mine')")
    db.close()
    monkeypatch.chdir(w)
    monkeypatch.setenv("DRIVEFERRY_CONFIG", str(w / "remotes.toml"))
    monkeypatch.setenv("DRIVEFERRY_STATE_DIR", str(tmp_path / "state"))
    return w


@pytest.mark.parametrize("argv,fragment", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_refused_before_anything_is_created(work: Path, capsys: pytest.CaptureFixture[str],
                                            argv: tuple[str, ...], fragment: str) -> None:
    before = listing(work)
    code = main([a.replace("{tmp}", str(work)) for a in argv])
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2, (out, err)
    assert len(lines) == 1 and lines[0].startswith("driveferry: error: ") and fragment in lines[0], err
    assert listing(work) == before, "a refused command created or changed something"


def test_a_foreign_sqlite_file_keeps_its_bytes_and_mode(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = (work / "foreign.db").read_bytes()
    assert raw[18:20] == b"\x01\x01"  # rollback-journal mode (WAL would be 2, 2: sqlite.org/fileformat.html)
    for argv in (["migrate", "src", "dst", "--journal", "foreign.db"], ["status", "--journal", "foreign.db"],
                 ["migrate", "src", "dst", "--journal", "foreign.db", "--dry-run"]):
        assert main(argv) == 2, capsys.readouterr()
    assert (work / "foreign.db").read_bytes() == raw
    assert not (work / "foreign.db-wal").exists() and not (work / "foreign.db-shm").exists()
    db = sqlite3.connect(work / "foreign.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    db.close()


def test_the_default_journal_location_still_works(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The checks refuse mistakes, not the ordinary run: a fresh migrate creates its default journal."""
    assert main(["migrate", "src", "../dst", "-q"]) == 0, capsys.readouterr()
    assert (work / "driveferry-journal.sqlite3").is_file()
    assert (work.parent / "dst" / "sub" / "b.txt").read_text() == "b"


def cli(*args: str, cwd: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "driveferry.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=cwd, env=env)


def test_a_pipe_closed_early_exits_quietly(work: Path) -> None:
    many = work / "many"
    many.mkdir()
    for i in range(4000):
        (many / f"file-{i:05d}.txt").write_bytes(b"")
    proc = cli("ls", "-R", "many", cwd=work)
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()  # like `| head -1`: read a line, then go away
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 1
    assert first.startswith(b"file ") and "Traceback" not in err and "BrokenPipe" not in err and err == ""


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("endpoint", [f"http://127.0.0.1:{_closed_port()}", "http://no-such-host.invalid"],
                         ids=["refused", "unresolvable"])
def test_a_remote_that_never_answers_is_one_line_naming_it_and_the_url(
        work: Path, capsys: pytest.CaptureFixture[str], endpoint: str) -> None:
    (work / "down.toml").write_text(f'[remotes.down]\ntype = "gdrive"\nendpoint = "{endpoint}"\nauth = "access_token"\n'
                                    'access_token = "t"\nretry_base_delay_s = 0.01\n')
    assert main(["ls", "down:", "--config", "down.toml"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"driveferry: error: down: cannot reach {endpoint} ("), lines
    assert "retry_first_contact" in lines[0] and "[remotes.down]" in lines[0]
