"""Refusing a migration whose destination is inside its source (or the other way round), before anything
is created: `migrate ./src ./src/backup` would copy the tree into itself and nest one level deeper on
every run, and a source inside its destination would be rewritten while it is read.

Two specs overlap when they name the same store and one path is the other or lies below it: two local
paths (symlinks resolved), a local path and a `type = "local"` remote (its root joined with the path),
or two paths of the same remote.
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path

from driveferry.errors import UserError

__all__ = ["check_no_overlap"]


def _location(spec: str, config_path: str | None) -> tuple[str, tuple[str, ...]]:
    """(store, path parts) that `spec` names: store "" for the local filesystem, else the remote's name."""
    from driveferry.providers.registry import parse_spec
    name, path = parse_spec(spec)
    if name is not None:
        root = _local_root(name, config_path)
        if root is None:
            clean = posixpath.normpath("/" + path.replace("\\", "/")).strip("/")
            return name, tuple(p for p in clean.split("/") if p)
        path = os.path.join(root, path.lstrip("/"))
    real = os.path.realpath(os.path.abspath(os.path.expanduser(path or ".")))
    return "", Path(real).parts


def _local_root(name: str, config_path: str | None) -> str | None:
    """The root folder of remote `name` when it is a `type = "local"` remote, else None (also when the
    config cannot be read: the command reports that itself, with its own message)."""
    from driveferry.config import load_config
    try:
        remote = load_config(config_path).remotes.get(name)
    except UserError:
        return None
    if remote is None or remote.type != "local":
        return None
    return str(remote.section.get("root") or "") or None


def check_no_overlap(source: str, destination: str, config_path: str | None) -> None:
    """UserError when source and destination are the same folder, or one lies inside the other."""
    src_store, src = _location(source, config_path)
    dst_store, dst = _location(destination, config_path)
    if src_store != dst_store:
        return
    if src == dst:
        raise UserError(f"source {source} and destination {destination} are the same folder; "
                        "give a destination outside the source")
    if dst[:len(src)] == src:
        raise UserError(f"destination {destination} is inside the source {source}: each run would copy the "
                        "tree into itself again; give a destination outside the source")
    if src[:len(dst)] == dst:
        raise UserError(f"source {source} is inside the destination {destination}: the copy would write "
                        "into the tree being read; give a destination outside the source")
