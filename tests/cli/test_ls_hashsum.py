"""`driveferry ls` and `driveferry hashsum` on local paths, in-process and as a subprocess (exit codes)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from driveferry.cli import main


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "a.txt").write_bytes(b"alpha\n")
    (root / "sub" / "b.bin").write_bytes(bytes(range(256)))
    (root / "sub" / "deeper" / "c").write_bytes(b"")
    (root / "sp ace.txt").write_bytes(b"space")
    return root


@pytest.fixture(autouse=True)
def no_user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("DRIVEFERRY_CONFIG", raising=False)


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_ls_lists_one_folder_sorted(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "ls", str(tree))
    assert code == 0
    names = [line.split("  ")[-1] for line in out.splitlines()]
    assert names == ["a.txt", "sp ace.txt", "sub/"]
    assert out.splitlines()[0].split()[:2] == ["file", "6"]


def test_ls_recursive_json(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "ls", "-R", "--json", str(tree))
    assert code == 0
    rows = {r["path"]: r for r in map(json.loads, out.splitlines())}
    assert set(rows) == {"a.txt", "sp ace.txt", "sub", "sub/b.bin", "sub/deeper", "sub/deeper/c"}
    assert rows["sub/b.bin"]["size"] == 256 and rows["sub"]["kind"] == "folder" and rows["sub"]["size"] is None
    assert rows["a.txt"]["modified"].endswith("+00:00")


def test_ls_one_file(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "ls", str(tree / "a.txt"))
    assert code == 0 and out.strip().endswith("a.txt")


def test_hashsum_md5_matches_md5sum_format(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "hashsum", "md5", str(tree))
    assert code == 0 and err == ""
    lines = dict(reversed(line.split("  ", 1)) for line in out.splitlines())
    assert lines["sub/b.bin"] == hashlib.md5(bytes(range(256))).hexdigest()
    assert lines["sp ace.txt"] == hashlib.md5(b"space").hexdigest()
    assert len(lines) == 4


def test_hashsum_output_passes_md5sum_check(tree: Path, tmp_path: Path) -> None:
    if not Path("/usr/bin/md5sum").exists() and not Path("/bin/md5sum").exists():
        pytest.skip("no md5sum")
    sums = subprocess.run([sys.executable, "-m", "driveferry.cli", "hashsum", "md5", str(tree)],
                          capture_output=True, text=True, check=True).stdout
    (tmp_path / "sums.md5").write_text(sums)
    check = subprocess.run(["md5sum", "-c", str(tmp_path / "sums.md5")], cwd=tree, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.count(": OK") == 4


@pytest.mark.parametrize("kind", ["sha256", "quickxor", "xxh3", "SHA-1"])
def test_hashsum_other_types_on_one_file(tree: Path, capsys: pytest.CaptureFixture[str], kind: str) -> None:
    code, out, _ = run_cli(capsys, "hashsum", kind, str(tree / "a.txt"))
    assert code == 0
    digest, name = out.strip().split("  ")
    assert name == "a.txt" and len(digest) in (32, 40, 64)
    if kind == "sha256":
        assert digest == hashlib.sha256(b"alpha\n").hexdigest()


def cli(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "driveferry.cli", *argv], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120)


def _one_line_error(p: subprocess.CompletedProcess[str]) -> str:
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    return p.stderr


def test_unknown_remote_without_config_says_where_it_looked(tmp_path: Path) -> None:
    err = _one_line_error(cli("ls", "nosuch:Backup", env={"XDG_CONFIG_HOME": str(tmp_path / "x")}))
    assert "nosuch" in err and str(tmp_path / "x") in err and "remotes.example.toml" in err


def test_unknown_remote_lists_configured_ones(tmp_path: Path) -> None:
    cfg = tmp_path / "remotes.toml"
    cfg.write_text(f'[remotes.archive]\ntype = "local"\nroot = "{tmp_path}"\n[remotes.other]\ntype = "local"\nroot = "."\n')
    err = _one_line_error(cli("ls", "--config", str(cfg), "nosuch:"))
    assert "archive, other" in err


def test_missing_explicit_config_file(tmp_path: Path) -> None:
    err = _one_line_error(cli("hashsum", "md5", "--config", str(tmp_path / "nope.toml"), "x:y"))
    assert "nope.toml" in err and "remotes.example.toml" in err


def test_bad_toml_names_the_line(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[remotes.a]\ntype = "local"\nroot = \n')
    err = _one_line_error(cli("ls", "--config", str(cfg), "a:"))
    assert "line 3" in err


def test_missing_path_and_bad_hash_type_exit_2(tree: Path) -> None:
    _one_line_error(cli("ls", str(tree / "missing")))
    assert "unknown hash type" in _one_line_error(cli("hashsum", "md55", str(tree)))


def test_configured_local_remote_and_exit_0(tree: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "remotes.toml"
    cfg.write_text(f'[remotes.archive]\ntype = "local"\nroot = "{tree}"\n')
    p = cli("hashsum", "sha256", "--config", str(cfg), "archive:sub")
    assert p.returncode == 0 and p.stdout.splitlines()[0].endswith("  b.bin")
    p = cli("ls", "archive:/", env={"DRIVEFERRY_CONFIG": str(cfg)})
    assert p.returncode == 0 and "sub/" in p.stdout
    _one_line_error(cli("ls", "--config", str(cfg), "archive:../.."))


def test_help_has_examples() -> None:
    for command in ("ls", "hashsum"):
        p = cli(command, "--help")
        assert p.returncode == 0 and "examples:" in p.stdout
