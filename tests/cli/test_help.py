"""Every command's --help shows an example; `driveferry --version` prints the package version."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from driveferry import __version__
from driveferry.cli import COMMANDS, build_parser


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
