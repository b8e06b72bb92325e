"""Bad inputs: each exits with its documented code, prints ONE `driveferry: error:` line (no traceback)
and changes nothing (local files, journals and the emulator's write counters compared before/after).

Exit codes for the cases that are not plain bad input (documented in README "Exit codes"):
- destination storage full (Drive storageQuotaExceeded, or a full local disk): 3, "stopped: ..." on
  stderr, the run checkpointed; run again after freeing space;
- a file larger than the destination filesystem allows (EFBIG, e.g. RLIMIT_FSIZE): 1, that file failed,
  its temp file removed.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from driveferry.emulator.remotes import remote_sections, remotes_toml
from driveferry.emulator.seed import seed_emulator
from driveferry.emulator.server import Emulator
from emulator_client import EmulatorClient

SPEC: dict[str, Any] = {
    "seed": 7,
    "onedrive": {"files": [
        {"path": "Projects/readme.txt", "size": "2K", "content": "text"},
        {"path": "Projects/data/a.bin", "size": "1536K"},
        {"path": "Projects/data/b.bin", "size": "40K"},
    ]},
}
MUTATING = ("create", "delete", "update", "upload", "copy", "commit", "fragment")


@dataclass
class Env(EmulatorClient):
    emu: Emulator
    dir: Path
    config: Path
    journal: Path

    def cli(self, *args: str, preexec: Callable[[], None] | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        full = {**os.environ, "DRIVEFERRY_CONFIG": str(self.config), "DRIVEFERRY_STATE_DIR": str(self.dir / "state"),
                **(env or {})}
        return subprocess.run([sys.executable, "-m", "driveferry.cli", *args], capture_output=True, text=True,
                              timeout=120, env=full, cwd=self.dir, preexec_fn=preexec)

    def writes(self) -> dict[str, int]:
        """Requests to the emulator's routes that change data (route name -> count)."""
        reqs = self.control("GET", "/counters")["requests"]
        return {k: v for k, v in reqs.items() if k.startswith(("drive.", "graph.")) and any(m in k for m in MUTATING)}

    def files(self) -> dict[str, tuple[int, str]]:
        """Every file under the work dir but the emulator's own data and the token caches: size, md5."""
        out = {}
        for p in sorted(self.dir.rglob("*")):
            rel = p.relative_to(self.dir)
            if rel.parts[0] in ("emu", "state") or not p.is_file():
                continue
            out[str(rel)] = (p.stat().st_size, hashlib.md5(p.read_bytes()).hexdigest())
        return out


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    d = tmp_path_factory.mktemp("bad")
    with Emulator(d / "emu", tls=True) as emu:
        seed_emulator(emu, SPEC)
        sections: dict[str, dict[str, Any]] = remote_sections(emu.describe())
        (d / "root").mkdir()
        (d / "root" / "inside.txt").write_text("x")
        os.symlink("/etc", d / "root" / "outside")
        sections["loc"] = {"type": "local", "root": str(d / "root")}
        ms = emu.describe()["credentials"]["microsoft"]
        sections["dc"] = {"type": "onedrive", "endpoint": emu.base_url, "ca_file": str(emu.ca_file),
                          "auth": "device_code", "tenant": ms["tenant_id"], "client_id": ms["public_client_id"]}
        (d / "state").mkdir(mode=0o700)
        (d / "state" / "msal-cache-dc.json").write_text("{damaged")
        sections["sa-missing"] = {"type": "gdrive", "auth": "service_account",
                                  "service_account_file": str(d / "no-such-key.json")}
        (d / "garbage.json").write_text("{ not json")
        sections["bad-token-file"] = {"type": "gdrive", "token_file": str(d / "garbage.json")}
        config = d / "remotes.toml"
        config.write_text(remotes_toml(sections, prefix="") + remotes_toml(
            {k: v for k, v in remote_sections(emu.describe()).items()}, prefix="emu-"))
        wrong = remote_sections(emu.describe())
        wrong["onedrive"]["client_secret"] = "not-the-secret"
        wrong["gdrive"]["client_secret"] = "GOCSPX-not-the-secret"
        (d / "wrong.toml").write_text(remotes_toml(wrong, prefix="wrong-"))
        (d / "bad.toml").write_text("[remotes.x]\ntype = \"gdrive\"\nclient_id = \n")
        (d / "notype.toml").write_text("[remotes.x]\nroot = \"/tmp\"\n")
        (d / "badtype.toml").write_text("[remotes.x]\ntype = \"dropbox\"\n")
        (d / "noroot.toml").write_text("[remotes.x]\ntype = \"local\"\n")
        (d / "notdb.sqlite3").write_text("this is not an SQLite database\n")
        (d / "job-unknown.toml").write_text("[migrate]\nsource = \"onedrive:/Projects\"\ndestination = \"gdrive:A\"\n"
                                            "transfer = 4\n")
        (d / "not-sa.json").write_text(json.dumps({"type": "authorized_user", "client_id": "x"}))
        journal = d / "journal.sqlite3"
        e = Env(emu, d, config, journal)
        done = e.cli("migrate", "onedrive:/Projects", "gdrive:Done", "--journal", str(journal), "-q")
        assert done.returncode == 0, done.stderr
        newer = d / "newer.sqlite3"
        newer.write_bytes(journal.read_bytes())
        db = sqlite3.connect(newer)
        with db:
            db.execute("INSERT INTO schema_version(version, applied_at, written_by) "
                       "VALUES (99, '2030-01-01 00:00:00', 'driveferry 9.0')")
        db.close()  # checkpoints the WAL: the file alone is the journal
        yield e


def _has_command(name: str) -> bool:
    import importlib.util
    return importlib.util.find_spec(f"driveferry.commands.{name}") is not None


MIG = ("migrate", "onedrive:/Projects", "gdrive:Fresh", "--journal", "journal.sqlite3", "-q")

# (id, argv, expected stderr fragment); every one exits 2 and changes nothing
CASES: list[tuple[str, tuple[str, ...], str]] = [
    ("unknown-remote", ("ls", "nope:Backup"), "unknown remote 'nope'"),
    ("unknown-remote-migrate", ("migrate", "nope:/x", "gdrive:Fresh", "-q"), "unknown remote 'nope'"),
    ("malformed-spec-empty-name", ("ls", ":Backup"), "no such file or folder"),
    ("malformed-glob", (*MIG, "--include", "[abc"), "malformed glob '[abc'"),
    ("bad-size", (*MIG, "--chunk-size", "10X"), "bad value for --chunk-size"),
    ("bad-min-size", (*MIG, "--min-size", "-5"), "min-size"),
    ("chunk-not-multiple", (*MIG, "--chunk-size", "300K"), "not a multiple of 262144"),
    ("chunk-too-small", (*MIG, "--chunk-size", "1K"), "--chunk-size must be between"),
    ("missing-config", ("ls", "x:", "--config", "no-such.toml"), "no-such.toml not found"),
    ("bad-toml", ("ls", "x:", "--config", "bad.toml"), "bad.toml: expected valid TOML, got Invalid value"),
    ("config-missing-type", ("ls", "x:", "--config", "notype.toml"), "missing required key 'type'"),
    ("config-local-missing-root", ("ls", "x:", "--config", "noroot.toml"), "missing required key 'root'"),
    ("unknown-remote-type", ("ls", "x:", "--config", "badtype.toml"), "unknown type 'dropbox'"),
    ("journal-not-sqlite-migrate", ("migrate", "onedrive:/Projects", "gdrive:Fresh", "--journal", "notdb.sqlite3",
                                    "-q"), "not a driveferry journal or is corrupt"),
    ("journal-not-sqlite-status", ("status", "--journal", "notdb.sqlite3"), "not a driveferry journal"),
    ("journal-newer-migrate", ("migrate", "onedrive:/Projects", "gdrive:Fresh", "--journal", "newer.sqlite3", "-q"),
     "schema version 99, newer than"),
    ("journal-newer-status", ("status", "--journal", "newer.sqlite3"), "schema version 99, newer than"),
    ("status-journal-missing", ("status", "--journal", "missing.sqlite3"), "no journal at missing.sqlite3"),
    ("wrong-secret-onedrive", ("ls", "wrong-onedrive:/", "--config", "wrong.toml"), "sign-in failed (invalid_client)"),
    ("wrong-secret-gdrive", ("migrate", "root", "wrong-gdrive:Fresh", "--config", "wrong.toml",
                             "--journal", "journal.sqlite3", "-q"), "credentials rejected"),
    ("wrong-secret-gdrive-fresh-journal", ("migrate", "root", "wrong-gdrive:Fresh", "--config", "wrong.toml",
                                           "--journal", "fresh.sqlite3", "-q"), "credentials rejected"),
    ("dest-is-a-file-fresh-journal", ("migrate", "onedrive:/Projects/data", "onedrive:/Projects/readme.txt",
                                      "--journal", "fresh.sqlite3", "-q"), "is a file, not a folder"),
    ("dest-is-a-file", ("migrate", "onedrive:/Projects/data", "onedrive:/Projects/readme.txt", "--journal",
                        "journal.sqlite3", "-q"), "is a file, not a folder"),
    ("dotdot-remote-path", ("migrate", "onedrive:/Projects", "gdrive:Done/../Other", "-q"), "'..' is not allowed"),
    ("dotdot-local-remote", ("ls", "loc:../../etc"), "'..' is not allowed"),
    ("absolute-dotdot-local-remote", ("ls", "loc:/../../etc/passwd"), "'..' is not allowed"),
    ("absolute-path-stays-in-root", ("ls", "loc:/etc/passwd"), "loc:/etc/passwd: no such file or folder"),
    ("symlink-out-of-local-root", ("hashsum", "md5", "loc:outside/hostname"), "outside"),
    ("missing-source", ("migrate", "onedrive:/NoSuchFolder", "gdrive:Fresh", "--journal", "journal.sqlite3", "-q"),
     "source path 'NoSuchFolder' does not exist"),
    ("transfers-zero", (*MIG, "--transfers", "0"), "--transfers must be between 1 and 64"),
    ("json-and-quiet", ("migrate", "onedrive:/Projects", "gdrive:Fresh", "--json", "-q"), "not allowed with"),
    ("job-unknown-key", ("migrate", "--job", "job-unknown.toml"), "migrate.transfer: expected a known key"),
    ("job-not-found", ("migrate", "--job", "no-such-job.toml"), "job file no-such-job.toml not found"),
    ("migrate-no-args", ("migrate", "-q"), "missing source"),
    ("emulator-non-loopback", ("emulator", "serve", "--data", "emu2", "--host", "0.0.0.0"), "non-loopback"),
    ("emulator-seed-missing", ("emulator", "serve", "--data", "emu3", "--seed", "missing.toml"),
     "seed spec missing.toml not found"),
    ("service-account-file-missing", ("ls", "sa-missing:"), "no-such-key.json does not exist"),
    ("token-file-not-json", ("ls", "bad-token-file:"), "garbage.json is not JSON"),
    ("damaged-token-cache", ("ls", "dc:/"), "run `driveferry auth login dc`"),
    ("report-is-a-folder", (*MIG, "--report", "root"), "--report root is a folder"),
    ("report-below-a-file", (*MIG, "--report", "bad.toml/report.json"), "bad.toml is not a folder"),
    ("hashsum-bad-type", ("hashsum", "crc32", "loc:"), "crc32"),
    ("auth-login-unknown-remote", ("auth", "login", "nope"), "unknown remote 'nope'"),
    ("auth-login-local", ("auth", "login", "loc"), "needs no sign-in"),
    ("auth-login-onedrive-with-gdrive-flag", ("auth", "login", "onedrive", "--token-file", "x.json"),
     "are for Google Drive remotes"),
    ("auth-login-not-a-service-account", ("auth", "login", "emu-gdrive", "--service-account", "not-sa.json"),
     "not a service account key"),
    ("auth-login-token-file-missing", ("auth", "login", "emu-gdrive", "--token-file", "missing.json"),
     "missing.json does not exist"),
    ("remotes-config-missing", ("remotes", "--check", "--config", "no-such.toml"), "no-such.toml not found"),
]

VERIFY_CASES: list[tuple[str, tuple[str, ...], str]] = [
    ("verify-unknown-remote", ("verify", "root", "nope:Backup"), "unknown remote 'nope'"),
    ("verify-missing-local", ("verify", "no-such-dir", "gdrive:Done"), "no-such-dir"),
    ("verify-dotdot", ("verify", "root", "gdrive:Done/../x"), "'..' is not allowed"),
]


def assert_one_error_line(proc: subprocess.CompletedProcess[str], fragment: str, code: int = 2) -> None:
    detail = f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    assert proc.returncode == code, detail
    assert "Traceback" not in proc.stderr + proc.stdout, detail
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, detail
    assert lines[0].startswith("driveferry: error:"), detail
    assert fragment in lines[0], detail


@pytest.mark.parametrize("argv,fragment", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input(env: Env, argv: tuple[str, ...], fragment: str) -> None:
    files, writes = env.files(), env.writes()
    proc = env.cli(*argv)
    assert_one_error_line(proc, fragment)
    assert env.files() == files, "a local file or journal changed"
    assert env.writes() == writes, "the emulator saw a write"


@pytest.mark.skipif(not _has_command("verify"), reason="verify command not built yet")
@pytest.mark.parametrize("argv,fragment", [c[1:] for c in VERIFY_CASES], ids=[c[0] for c in VERIFY_CASES])
def test_verify_bad_input(env: Env, argv: tuple[str, ...], fragment: str) -> None:
    files, writes = env.files(), env.writes()
    assert_one_error_line(env.cli(*argv), fragment)
    assert env.files() == files and env.writes() == writes


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 25
    assert len({c[0] for c in CASES}) == len(CASES)


def test_revoked_refresh_token(tmp_path: Path) -> None:
    """After the emulator revokes every token, Drive refuses the configured refresh token: exit 2,
    one line that says to re-authorise, and nothing written on either side."""
    with Emulator(tmp_path / "emu", tls=True) as emu:
        seed_emulator(emu, SPEC)
        config = tmp_path / "remotes.toml"
        config.write_text(remotes_toml(remote_sections(emu.describe()), prefix=""))
        e = Env(emu, tmp_path, config, tmp_path / "j.sqlite3")
        before = e.cli("migrate", "onedrive:/Projects", "gdrive:Before", "--journal", str(e.journal), "-q")
        assert before.returncode == 0, before.stderr
        e.control("POST", "/identity/revoke")
        files, writes = e.files(), e.writes()
        proc = e.cli("migrate", "onedrive:/Projects", "gdrive:After", "--journal", str(e.journal), "-q")
        assert_one_error_line(proc, "revoked or expired")
        assert e.files() == files and e.writes() == writes


def test_destination_storage_quota_stops_with_exit_3(env: Env) -> None:
    """Drive's storage quota is not a per-file failure: the run stops (exit 3), says why on one line,
    and copies nothing beyond the limit; the journal keeps the items pending for the next run."""
    env.control("PUT", "/drive/limits", {"storage_limit_bytes": 1})
    try:
        journal = env.dir / "quota.sqlite3"
        proc = env.cli("migrate", "onedrive:/Projects", "gdrive:Quota", "--journal", str(journal), "-q")
    finally:
        env.control("PUT", "/drive/limits", {"storage_limit_bytes": None})
    detail = f"{proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert proc.returncode == 3, detail
    assert "Traceback" not in proc.stderr, detail
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("stopped:") and "storageQuotaExceeded" in err[0], detail
    assert "copied 0," in proc.stdout, detail


def _small_disk(path: Path) -> bool:
    path.mkdir()
    if os.geteuid() != 0:
        return False
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(path)], capture_output=True)
    return r.returncode == 0


def test_local_disk_full_stops_with_exit_3(env: Env) -> None:
    """A full disk while downloading to a local destination (a 1 MiB tmpfs) stops the run with exit 3
    and one line; nothing but a resumable temp file is left (no complete-looking partial file)."""
    mnt = env.dir / "tiny"
    if not _small_disk(mnt):
        pytest.skip("needs root to mount a tmpfs")
    try:
        proc = env.cli("migrate", "onedrive:/Projects/data", str(mnt), "--journal", str(env.dir / "disk.sqlite3"),
                       "-q", "--transfers", "1", "--include", "a.bin")
        detail = f"{proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        assert proc.returncode == 3, detail
        assert "Traceback" not in proc.stderr, detail
        err = proc.stderr.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("stopped:") and "local disk full" in err[0], detail
        assert not (mnt / "a.bin").exists()
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def _fsize_limit() -> None:
    # a write past the limit raises EFBIG instead of killing the process with SIGXFSZ
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))


def test_file_too_large_for_local_filesystem_fails_that_file(env: Env) -> None:
    """RLIMIT_FSIZE (EFBIG) fails the too-large file (exit 1, named in the summary), copies the small
    one, and leaves no temp file behind."""
    out = env.dir / "fsize"
    out.mkdir()
    proc = env.cli("migrate", "onedrive:/Projects/data", str(out), "--journal", str(env.dir / "fsize.sqlite3"), "-q",
                   preexec=_fsize_limit)
    detail = f"{proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert proc.returncode == 1, detail
    assert "Traceback" not in proc.stderr, detail
    assert "FAILED: a.bin:" in proc.stderr and "file too large" in proc.stderr, detail
    assert sorted(p.name for p in out.iterdir()) == ["b.bin"], detail
