"""Every command's --help shows an example; `driveferry --version` prints the package version."""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from driveferry import __version__
from driveferry.cli import COMMANDS, _command_in, build_parser


def _parsers() -> list[tuple[str, argparse.ArgumentParser]]:
    """(command path, parser) for every command and sub-action the CLI builds."""
    out: list[tuple[str, argparse.ArgumentParser]] = []

    def visit(prefix: str, parser: argparse.ArgumentParser) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    path = f"{prefix} {name}".strip()
                    out.append((path, child))
                    visit(path, child)
    visit("", build_parser())
    return out


PARSERS = _parsers()


def test_every_built_command_is_listed() -> None:
    top = {path for path, _ in PARSERS if " " not in path}
    assert top <= set(COMMANDS)
    assert {"migrate", "status", "ls", "hashsum", "remotes", "auth", "emulator", "demo"} <= top
    assert {"auth login", "auth status", "emulator serve"} <= {path for path, _ in PARSERS}


@pytest.mark.parametrize("path,parser", PARSERS, ids=[p for p, _ in PARSERS])
def test_help_has_an_example(path: str, parser: argparse.ArgumentParser) -> None:
    text = parser.format_help()
    assert "example" in text.lower(), f"`driveferry {path} --help` shows no example"
    assert f"driveferry {path.split()[0]}" in text, f"`driveferry {path} --help` example does not run driveferry"


def test_help_from_the_command_line_exits_0() -> None:
    proc = subprocess.run([sys.executable, "-m", "driveferry.cli", "auth", "login", "--help"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "examples:" in proc.stdout and proc.stderr == ""


def test_version() -> None:
    proc = subprocess.run([sys.executable, "-m", "driveferry.cli", "--version"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"driveferry {__version__}"
    assert proc.stderr == ""


def test_a_command_imports_only_its_own_module() -> None:
    code = ("import sys\nfrom driveferry.cli import main\ntry:\n    main(['-v', 'hashsum', '--help'])\n"
            "except SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith('driveferry.commands.') or m == 'sqlalchemy'))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    loaded = set(ast.literal_eval(proc.stdout.strip().splitlines()[-1]))
    assert "driveferry.commands.hashsum" in loaded
    # what hashsum uses (ls's listing, the shared helpers), not the journal (SQLAlchemy) or other commands
    assert not loaded & {"sqlalchemy", "driveferry.commands.migrate", "driveferry.commands.verify",
                         "driveferry.commands.status", "driveferry.commands.emulator", "driveferry.commands.demo"}


@pytest.mark.parametrize("argv,command", [(["migrate", "a", "b"], "migrate"), (["-v", "-v", "status"], "status"),
                                          (["--help"], None), (["bogus", "migrate"], None), ([], None)])
def test_the_command_is_the_first_word_that_is_not_an_option(argv: list[str], command: str | None) -> None:
    assert _command_in(argv) == command


ROOT = Path(__file__).resolve().parents[2]


def test_colab_notebook_is_valid_and_runs_the_relay_commands() -> None:
    nb = json.loads((ROOT / "configs" / "colab_relay.ipynb").read_text(encoding="utf-8"))
    assert nb["nbformat"] == 4 and isinstance(nb["nbformat_minor"], int)
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    for cell in nb["cells"]:
        assert cell["cell_type"] in ("markdown", "code") and isinstance(cell["source"], list)
        assert all(isinstance(line, str) for line in cell["source"])
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None
    code = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    # tests/notebook/test_colab_relay.py runs it; here: the relay's shape (journal on local disk, backed up)
    for needle in ("pip install", "drive.mount(MOUNT)", "remotes.toml", "!driveferry auth login onedrive",
                   '!driveferry migrate "{SOURCE}"', '--journal "{JOURNAL}" --journal-backup', 'WORK = "/content/',
                   "!driveferry status --journal", "!driveferry verify ", "!driveferry remotes --check"):
        assert needle in code, needle
    # the remotes.toml the notebook writes is valid and names both clouds
    toml_text = code.split("config.write_text(f'''", 1)[1].split("''')", 1)[0]
    parsed = tomllib.loads(toml_text.replace("{work}", "/h").replace("{TENANT}", "t").replace("{CLIENT_ID}", "c"))
    assert {r["type"] for r in parsed["remotes"].values()} == {"onedrive", "gdrive"}


def test_real_clouds_guide_is_linked_from_the_readme() -> None:
    guide = (ROOT / "docs" / "real-clouds.md").read_text(encoding="utf-8")
    for needle in ("Files.Read.All", "admin consent", "Desktop app", "Drive API", "refresh token",
                   "domain-wide delegation", "auth.authenticate_user()", "[remotes.onedrive]", "[remotes.gdrive]",
                   "driveferry remotes --check", "driveferry auth login onedrive"):
        assert needle in guide, needle
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "## Real clouds" in readme and "docs/real-clouds.md" in readme
    assert "pip install -e . && driveferry demo" in readme and "bash scripts/test.sh" in readme
