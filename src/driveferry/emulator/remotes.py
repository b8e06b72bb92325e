"""Remote config sections that point driveferry's own providers at an emulator.

Plain data (the same shape as `[remotes.NAME]` in remotes.toml), so the demo, the tests and child
processes build providers through the normal registry, and `emulator serve --remotes-out FILE` writes
a ready config. Also the small record `serve` keeps in its data folder (serve.json: the port it last
listened on, the seed specs applied), so a restart keeps its base URL and state.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

_PORT_FILE = "serve.json"


def remote_sections(describe: dict[str, Any], gdrive_root: str = "", onedrive_root: str = "") -> dict[str, dict[str, Any]]:
    """Sections {"onedrive": {...}, "gdrive": {...}} for an emulator's `describe()` output.

    OneDrive signs in with client credentials (app-only, addressing the drive by id); Drive uses the
    emulator's OAuth client and refresh token, as a real installed-app setup would. When the emulator's
    clock is scaled its credentials carry `time_scale`, and so do the sections: the retry layer divides
    its waits by it (providers/registry.retry_policy), so a config printed for a scaled emulator works.
    """
    base, ca, creds = describe["base_url"], describe.get("ca_file"), describe["credentials"]
    ms, graph, google = creds["microsoft"], creds["graph"], creds["google"]
    common = {"endpoint": base, **({"ca_file": ca} if ca else {})}
    onedrive = {"type": "onedrive", **common, "auth": "client_credentials", "tenant": ms["tenant_id"],
                "client_id": ms["client_id"], "client_secret": ms["client_secret"], "drive_id": graph["drive_id"]}
    gdrive = {"type": "gdrive", **common, "auth": "oauth", "client_id": google["client_id"],
              "client_secret": google["client_secret"], "refresh_token": google["refresh_token"],
              "token_uri": google["token_uri"]}
    for section, cred in ((onedrive, graph), (gdrive, google)):
        if "time_scale" in cred:
            section["time_scale"] = cred["time_scale"]
    if onedrive_root:
        onedrive["root"] = onedrive_root
    if gdrive_root:
        gdrive["root"], gdrive["create_root"] = gdrive_root, True
    return {"onedrive": onedrive, "gdrive": gdrive}


def remotes_toml(sections: dict[str, dict[str, Any]], prefix: str = "emu-") -> str:
    """The sections as remotes.toml text (`[remotes.emu-onedrive]` ...)."""
    lines = []
    for name, section in sections.items():
        lines.append(f"[remotes.{prefix}{name}]")
        for key, value in section.items():
            if isinstance(value, bool):
                lines.append(f"{key} = {'true' if value else 'false'}")
            else:
                text = str(value).replace("\\", "\\\\").replace('"', '\\"')
                lines.append(f'{key} = "{text}"')
        lines.append("")
    return "\n".join(lines)


def _record(data_dir: Path) -> dict[str, Any]:
    try:
        rec = json.loads((data_dir / _PORT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return rec if isinstance(rec, dict) else {}


def _save(data_dir: Path, **changes: Any) -> None:
    rec = {**_record(data_dir), **changes}
    (data_dir / _PORT_FILE).write_text(json.dumps(rec) + "\n", encoding="utf-8")


def last_port(data_dir: Path) -> int | None:
    """The port `emulator serve` last listened on for this data folder, or None (first start)."""
    port = _record(data_dir).get("port")
    return port if isinstance(port, int) and 0 < port < 65536 else None


def record_port(data_dir: Path, port: int) -> None:
    """Remember the port, so the next start of this data folder keeps its base URL (and remotes file)."""
    _save(data_dir, port=port)


def was_seeded(data_dir: Path, spec_sha256: str) -> bool:
    """Whether this data folder was already seeded from a spec with these bytes."""
    return spec_sha256 in _record(data_dir).get("seeded", [])


def record_seeded(data_dir: Path, spec_sha256: str) -> None:
    """Remember a seed, so the same `serve --seed` command can start the same folder again."""
    seeded = list(_record(data_dir).get("seeded", []))
    _save(data_dir, seeded=[*seeded, spec_sha256])
