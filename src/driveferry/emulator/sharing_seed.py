"""Seeding sharing: OneDrive grants and links on seeded paths, the Google side's directory and policy.

    [[onedrive.permissions]]                      # graph/permissions.py seed_permissions has every form
    path = "Projects/Shared"; user = "bob@contoso.com"; roles = ["read"]
    [[onedrive.permissions]]
    path = "Projects/Shared/plan.docx"; link = "organization"; type = "edit"
    [gdrive.directory]                            # drive/permissions.py Directory
    domain = "example.com"; accounts = ["bob@example.com"]; groups = ["sales@example.com"]
    allow_anyone = false; allow_domain = true; allow_external = true

A malformed row is a SeedSpecError naming it. Applied after the trees, so every path exists.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from driveferry.emulator.generate import SeedSpecError


def apply_sharing(spec: Mapping[str, Any], targets: Mapping[str, Any]) -> None:
    """Apply the spec's sharing parts to the targets' models (seedtargets.GraphTarget / DriveTarget)."""
    grants = (spec.get("onedrive") or {}).get("permissions") or []
    if grants and "onedrive" in targets:
        from driveferry.emulator.graph.errors import GraphError
        from driveferry.emulator.graph.permissions import GraphPermissions, seed_permissions
        for i, row in enumerate(grants):
            if not isinstance(row, dict) or not isinstance(row.get("path"), str):
                raise SeedSpecError(f"onedrive.permissions[{i}]: expected a table with a path")
        try:
            seed_permissions(GraphPermissions(targets["onedrive"].model), grants)
        except (GraphError, KeyError, TypeError, ValueError) as exc:
            raise SeedSpecError(f"onedrive.permissions: {exc}") from None
    directory = (spec.get("gdrive") or {}).get("directory")
    if directory is not None and "gdrive" in targets:
        from driveferry.emulator.drive.permissions import DrivePermissions
        if not isinstance(directory, dict):
            raise SeedSpecError("gdrive.directory: expected a table")
        DrivePermissions(targets["gdrive"].model).set_directory(directory)
