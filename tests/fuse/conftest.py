"""The FUSE tests reuse tests/interop's RcloneEnv (emulator + CONNECT proxy + rclone config): put it on the path."""

from __future__ import annotations

import sys
from pathlib import Path

_INTEROP = str(Path(__file__).resolve().parents[1] / "interop")
if _INTEROP not in sys.path:
    sys.path.insert(0, _INTEROP)
