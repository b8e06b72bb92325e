"""Exit codes mean what the README says: 2 only when nothing was changed; a failure after the run began
changing things (the journal, the destination) exits 5."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from driveferry import cli
from driveferry.commands import migrate as migrate_cmd
from driveferry.errors import JournalError, TransientError


def _tree(tmp_path: Path) -> tuple[Path, Path, Path]:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_bytes(b"hello")
    return src, tmp_path / "dst", tmp_path / "j.sqlite3"


@pytest.mark.parametrize("error", [JournalError("disk I/O error"), TransientError("503 from the destination")])
def test_failure_after_the_run_began_exits_5(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str], error: Exception) -> None:
    src, dst, journal = _tree(tmp_path)
    real = migrate_cmd.run_migration

    def failing(*args: Any, **kwargs: Any) -> Any:
        real(*args, **kwargs)  # the copy is made and recorded: things changed
        raise error

    monkeypatch.setattr(migrate_cmd, "run_migration", failing)
    code = cli.main(["migrate", str(src), str(dst), "--journal", str(journal), "-q"])
    assert code == cli.EXIT_FAILED_AFTER_WRITES == 5
    assert (dst / "a.txt").read_bytes() == b"hello" and journal.exists()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(error) in err and "run the same command again" in err  # one line


def test_bad_input_exits_2_with_nothing_changed(tmp_path: Path) -> None:
    src, _, journal = _tree(tmp_path)
    not_a_folder = tmp_path / "file"
    not_a_folder.write_bytes(b"x")
    code = cli.main(["migrate", str(src), str(not_a_folder), "--journal", str(journal), "-q"])
    assert code == cli.EXIT_USAGE == 2
    assert not journal.exists() and not_a_folder.read_bytes() == b"x"


def test_help_names_exit_code_5(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "5 failed after changes began" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["migrate", "--help"])
    assert "5 failed after the run began" in " ".join(capsys.readouterr().out.split())
