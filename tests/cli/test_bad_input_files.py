"""Typed validation of every file a user writes: remotes, job, emulator seed, fault and realism files.

Each wrong input exits 2 with ONE line `driveferry: error: ... <file>: <key>: expected <type>, got <value>`
(no traceback) and creates nothing: the folder's listing (names, sizes, bytes) is the same before and after.
The commands run in-process (cli.main): a traceback would be an exception escaping main.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from driveferry.cli import main

NOT_UTF8 = b'[migrate]\nsource = "caf\xe9"\n'

# (id, file body (bytes: written as is; None: the path is a folder), fragments the one line must hold)
REMOTES: list[tuple[str, bytes | None, tuple[str, ...]]] = [
    ("endpoint-number", b'[remotes.x]\ntype = "gdrive"\nendpoint = 5\n', ("remotes.x.endpoint", "expected a string, got 5")),
    ("client-id-number", b'[remotes.x]\ntype = "gdrive"\nclient_id = 12\n', ("remotes.x.client_id", "got 12")),
    ("local-root-number", b'[remotes.x]\ntype = "local"\nroot = 5\n', ("remotes.x.root", "expected a string")),
    ("unknown-key-typo", b'[remotes.x]\ntype = "gdrive"\nclient_secrt = "s"\n',
     ("remotes.x.client_secrt", 'did you mean "client_secret"')),
    ("unknown-key-for-local", b'[remotes.x]\ntype = "local"\nroot = "/tmp"\ntenant = "t"\n', ("remotes.x.tenant",)),
    ("state-dir-number", b'state_dir = 5\n', ("state_dir", "expected a non-empty string, got 5")),
    ("remotes-not-table", b'remotes = 3\n', ("remotes: expected a table, got 3",)),
    ("unknown-top-key", b'remote = 3\n', ("remote:", 'did you mean "remotes"')),
    ("create-root-word", b'[remotes.x]\ntype = "gdrive"\ncreate_root = "maybe"\n',
     ("remotes.x.create_root", 'expected true or false, got "maybe"')),
    ("time-scale-word", b'[remotes.x]\ntype = "gdrive"\ntime_scale = "fast"\n', ("remotes.x.time_scale", '"fast"')),
    ("jitter-unknown", b'[remotes.x]\ntype = "gdrive"\nretry_jitter = "wild"\n', ("remotes.x.retry_jitter", '"wild"')),
    ("scopes-number", b'[remotes.x]\ntype = "gdrive"\nscopes = 7\n', ("remotes.x.scopes", "a list of strings")),
    ("bad-toml", b'[remotes.x]\ntype = \n', ("expected valid TOML", "line 2")),
    ("not-utf8", b'[remotes.x]\ntype = "gdr\xffive"\n', ("line 2: expected UTF-8 text, got byte 0xff",)),
    ("folder", None, ("expected a TOML file, got a folder",)),
]
JOBS: list[tuple[str, bytes | None, tuple[str, ...]]] = [
    ("transfers-many", b'[migrate]\ntransfers = "many"\n', ("migrate.transfers", 'expected an integer >= 1, got "many"')),
    ("transfers-zero", b'[migrate]\ntransfers = 0\n', ("migrate.transfers", "got 0")),
    ("checkers-float", b'[migrate]\ncheckers = 2.5\n', ("migrate.checkers", "got 2.5")),
    ("chunk-negative", b'[migrate]\nchunk_size = "-5"\n', ("migrate.chunk_size", 'expected a size', '"-5"')),
    ("chunk-unparseable", b'[migrate]\nchunk_size = "10X"\n', ("migrate.chunk_size", '"10X"')),
    ("min-size-negative", b'[migrate]\nmin_size = -1\n', ("migrate.min_size", "got -1")),
    ("include-number", b'[migrate]\ninclude = 3\n', ("migrate.include", "a list of strings, got 3")),
    ("exclude-empty", b'[migrate]\nexclude = [""]\n', ("migrate.exclude", "a list of strings")),
    ("dry-run-text", b'[migrate]\ndry_run = "yes"\n', ("migrate.dry_run", 'expected true or false, got "yes"')),
    ("export-unknown", b'[migrate]\nexport = "word"\n', ("migrate.export", '"word"')),
    ("permissions-unknown", b'[migrate]\npermissions = "all"\n', ("migrate.permissions", '"all"')),
    ("anyone-links-text", b'[migrate]\nallow_anyone_links = 1\n', ("migrate.allow_anyone_links", "got 1")),
    ("hashes-number", b'[migrate]\nhashes = 5\n', ("migrate.hashes", "a list of strings, got 5")),
    ("source-number", b'[migrate]\nsource = 5\n', ("migrate.source", "got 5")),
    ("lease-word", b'[migrate]\nlease_s = "soon"\n', ("migrate.lease_s", "a duration")),
    ("unknown-key", b'[migrate]\ntransfer = 4\n', ("migrate.transfer", 'did you mean "transfers"')),
    ("migrate-not-table", b'migrate = 3\n', ("migrate: expected a table, got 3",)),
    ("bad-toml", b'[migrate\n', ("expected valid TOML",)),
    ("not-utf8", NOT_UTF8, ("line 2: expected UTF-8 text, got byte 0xe9",)),
    ("folder", None, ("expected a TOML file, got a folder",)),
]
SEEDS: list[tuple[str, bytes | None, tuple[str, ...]]] = [
    ("dotdot-path", b'[onedrive]\nfiles = [{path = "../x", size = "1K"}]\n', ("onedrive.files[0].path", '"../x"')),
    ("absolute-path", b'[gdrive]\nfiles = [{path = "/etc/x", size = 1}]\n', ("gdrive.files[0].path", '"/etc/x"')),
    ("negative-size", b'[onedrive]\nfiles = [{path = "x", size = "-1K"}]\n', ("onedrive.files[0].size", '"-1K"')),
    ("size-word", b'[onedrive]\nfiles = [{path = "x", size = "big"}]\n', ("onedrive.files[0].size", '"big"')),
    ("size-bool", b'[onedrive]\nfiles = [{path = "x", size = true}]\n', ("onedrive.files[0].size", "got true")),
    ("path-number", b'[onedrive]\nfiles = [{path = 5}]\n', ("onedrive.files[0].path", "got 5")),
    ("path-missing", b'[onedrive]\nfiles = [{size = 5}]\n', ("onedrive.files[0].path", "missing")),
    ("content-unknown", b'[onedrive]\nfiles = [{path = "x", content = "purple"}]\n', ("onedrive.files[0].content",)),
    ("bulk-count-many", b'[[onedrive.bulk]]\ndir = "d"\ncount = "many"\n', ("onedrive.bulk[0].count", '"many"')),
    ("bulk-dir-dotdot", b'[[gdrive.bulk]]\ndir = "a/../../b"\ncount = 2\n', ("gdrive.bulk[0].dir",)),
    ("folders-dotdot", b'[gdrive]\nfolders = [".."]\n', ("gdrive.folders[0]", '".."')),
    ("notebooks-number", b'[onedrive]\nnotebooks = [5]\n', ("onedrive.notebooks[0]", "got 5")),
    ("unknown-file-key", b'[onedrive]\nfiles = [{path = "x", colour = 1}]\n', ("onedrive.files[0].colour",)),
    ("unknown-cloud-key", b'[onedrive]\nfile = []\n', ("onedrive.file:", 'did you mean "files"')),
    ("seed-word", b'seed = "x"\n', ("seed: expected an integer",)),
    ("generate-files-many", b'[[onedrive.generate]]\nroot = "R"\nfiles = "many"\n', ("onedrive.generate[0].files",)),
    ("generate-root-dotdot", b'[[onedrive.generate]]\nroot = "../R"\nfiles = 2\n', ("onedrive.generate[0].root",)),
    ("bad-toml", b'[onedrive\n', ("expected valid TOML",)),
    ("not-utf8", b'[onedrive]\nfolders = ["\xff"]\n', ("line 2: expected UTF-8 text",)),
    ("folder", None, ("expected a TOML file, got a folder",)),
]
FAULTS: list[tuple[str, bytes | None, tuple[str, ...]]] = [
    ("kind-unknown", b'[[rule]]\nkind = "melt"\n', ("rule[0].kind", '"melt"')),
    ("kind-missing", b'[[rule]]\nroute = "*"\n', ("rule[0].kind", "missing")),
    ("rate-word", b'[[rule]]\nkind = "status"\nrate = "often"\n', ("rule[0].rate", "in 0..1", '"often"')),
    ("rate-above-one", b'[[rule]]\nkind = "status"\nrate = 2\n', ("rule[0].rate", "got 2")),
    ("status-text", b'[[rule]]\nkind = "status"\nstatus = "503"\n', ("rule[0].status", '"503"')),
    ("latency-negative", b'[[rule]]\nkind = "latency"\nlatency_ms = -1\n', ("rule[0].latency_ms", "got -1")),
    ("unknown-rule-key", b'[[rule]]\nkind = "reset"\nroutes = "*"\n', ("rule[0].routes", 'did you mean "route"')),
    ("seed-word", b'seed = "x"\n', ("seed: expected an integer",)),
    ("bandwidth-negative", b'bandwidth_bps = -5\n', ("bandwidth_bps", "got -5")),
    ("bad-toml", b'[[rule]\n', ("expected valid TOML",)),
    ("folder", None, ("expected a TOML file, got a folder",)),
]
PROFILES: list[tuple[str, bytes | None, tuple[str, ...]]] = [
    ("clock-scale-word", b'clock_scale = "x"\n', ("clock_scale: expected a number", '"x"')),
    ("drive-status-text", b'[drive]\nstatus = "403"\n', ("drive.status: expected an integer", '"403"')),
    ("drive-not-table", b'drive = 3\n', ("drive: expected a table, got 3",)),
    ("unknown-setting", b'[graph]\nthrotle = {}\n', ("graph.throtle", "unknown")),
    ("bad-toml", b'clock_scale = \n', ("expected valid TOML",)),
    ("folder", None, ("expected a TOML file, got a folder",)),
]
ALL = ([("remotes", *c) for c in REMOTES] + [("job", *c) for c in JOBS] + [("seed", *c) for c in SEEDS]
       + [("faults", *c) for c in FAULTS] + [("profile", *c) for c in PROFILES])


def argv_for(kind: str, name: str) -> list[str]:
    return {"remotes": ["ls", "x:", "--config", name],
            "job": ["migrate", "src", "dst", "--job", name, "-q"],
            "seed": ["emulator", "serve", "--data", "emu", "--seed", name],
            "faults": ["emulator", "serve", "--data", "emu", "--faults", name],
            "profile": ["emulator", "serve", "--data", "emu", "--profile", name]}[kind]


def listing(root: Path) -> dict[str, str]:
    """Every path below `root`: a folder, or a file's md5."""
    return {str(p.relative_to(root)): "dir" if p.is_dir() else hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))}


@pytest.mark.parametrize("kind,body,fragments", [c[:1] + c[2:] for c in ALL], ids=[f"{c[0]}-{c[1]}" for c in ALL])
def test_a_wrong_file_is_one_line_exit_2_and_creates_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str], kind: str,
                                                             body: bytes | None, fragments: tuple[str, ...]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DRIVEFERRY_STATE_DIR", str(tmp_path / "state"))
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_text("a")
    name = f"{kind}.toml"
    if body is None:
        (tmp_path / name).mkdir()
    else:
        (tmp_path / name).write_bytes(body)
    before = listing(tmp_path)
    code = main(argv_for(kind, name))
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2, (out, err)
    assert len(lines) == 1 and lines[0].startswith("driveferry: error: "), err
    assert f"{name}: " in lines[0], err  # names the file ...
    for fragment in fragments:  # ... and the key, what was expected and what it got
        assert fragment in lines[0], err
    assert listing(tmp_path) == before, "a refused command created or changed something"


def test_the_table_covers_every_file_kind_with_many_inputs() -> None:
    counts = {kind: sum(1 for c in ALL if c[0] == kind) for kind in ("remotes", "job", "seed", "faults", "profile")}
    assert min(counts.values()) >= 6 and sum(counts.values()) >= 60, counts


def test_a_job_file_sets_the_sharing_options_like_the_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """`permissions = "map"` in a job file is read (it needs a sharing map, as the flag does); the map file
    it names is read too, and `hashes`: a missing map or an unknown hash is refused before anything is
    created."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DRIVEFERRY_STATE_DIR", str(tmp_path / "state"))
    (tmp_path / "src").mkdir()
    (tmp_path / "job.toml").write_text('[migrate]\npermissions = "map"\n')
    (tmp_path / "job2.toml").write_text('[migrate]\npermissions = "map"\nsharing_map = "nowhere.csv"\n')
    (tmp_path / "job3.toml").write_text('[migrate]\nhashes = ["md5", "crc"]\n')
    before = listing(tmp_path)
    assert main(["migrate", "src", "dst", "--job", "job.toml", "-q"]) == 2
    assert "--permissions map needs --sharing-map" in capsys.readouterr().err
    assert main(["migrate", "src", "dst", "--job", "job2.toml", "-q"]) == 2
    assert "nowhere.csv" in capsys.readouterr().err
    assert main(["migrate", "src", "dst", "--job", "job3.toml", "-q"]) == 2
    assert "unknown hash 'crc'" in capsys.readouterr().err
    assert main(["migrate", "src", "dst", "--job", "job.toml", "-q", "--permissions", "skip", "--dry-run"]) == 0
    capsys.readouterr()
    assert listing(tmp_path) == before
