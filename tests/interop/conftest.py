"""Fixtures for the interop tests: `rclone_env` (rclone_env.RcloneEnv) shared by a module's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from rclone_env import RcloneEnv


@pytest.fixture(scope="module")
def rclone_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RcloneEnv]:
    """An emulator, a CONNECT proxy and rclone remotes `emudrive:`/`emuonedrive:`; skips without rclone."""
    with RcloneEnv(tmp_path_factory.mktemp("rclone")) as env:
        yield env
