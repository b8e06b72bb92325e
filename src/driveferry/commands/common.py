"""Pieces several commands share: the --config flag, opening remotes, private file writes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from driveferry.providers.base import Provider


def add_config_arg(parser: Any) -> None:
    parser.add_argument("--config", metavar="FILE",
                        help="remotes config (default: $DRIVEFERRY_CONFIG or ~/.config/driveferry/remotes.toml)")


class Remotes:
    """Opens `REMOTE:PATH` specs against one loaded config (providers are cached per remote name)."""

    def __init__(self, config_path: str | None) -> None:
        from driveferry import config
        self._config = config.load_config(config_path)
        self._cache: dict[str, Provider] = {}

    def open(self, spec: str) -> tuple[Provider, str]:
        from driveferry.providers import registry
        return registry.open_remote(spec, self._config)


def open_remotes(config_path: str | None) -> Remotes:
    return Remotes(config_path)


def check_output_path(value: str, flag: str) -> None:
    """Refuse an output file path that cannot be written, before any work is done (UserError): a
    folder, a file or folder this user may not write, or a path below something that is not a folder.
    Missing folders are fine (write_private creates them)."""
    from driveferry.errors import UserError
    path = Path(value)
    if path.is_dir():
        raise UserError(f"{flag} {value} is a folder; give a file name")
    if path.exists() and not os.access(path, os.W_OK):
        raise UserError(f"{flag} {value}: the file is not writable; give another path")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"{flag} {value}: {parent} is not a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise UserError(f"{flag} {value}: folder {parent} is not writable; give another path")
            break


def write_private(path: Path, text: str) -> None:
    """Write a file readable by its owner only (reports may name paths users consider private)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
