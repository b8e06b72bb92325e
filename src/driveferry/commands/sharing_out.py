"""migrate's sharing lines: totals, then each permission not granted and each warning (up to 20 of each)."""

from __future__ import annotations

import json
from typing import Any

_SHOWN = 20


def _who(source: dict[str, str]) -> str:
    if source.get("kind") == "link":
        return f"{source.get('scope')} {source.get('link_type')} link"
    return f"{source.get('kind')} {source.get('address', '')} ({source.get('role')})".replace("  ", " ")


def print_sharing(report: dict[str, Any] | None, as_json: bool) -> None:
    """Print the sharing section of a run (nothing when the pass did not run: a dry run)."""
    if report is None:
        return
    if as_json:
        print(json.dumps({"event": "sharing", **{k: v for k, v in report.items() if k != "items"}}), flush=True)
        return
    if "not_run" in report:
        print(f"sharing: not read ({report['not_run']})")
        return
    verb = "would grant" if report["mode"] == "report" else "granted"
    done = report["planned"] if report["mode"] == "report" else report["granted"]
    print(f"sharing ({report['mode']}): {verb} {done}, already there {report['present']}, not granted "
          f"{report['not_granted']}, warnings {report['warnings']}; {report['checked']} items read"
          + (" (see --report)" if report["not_granted"] or report["warnings"] else ""))
    missing = [(i["path"], g) for i in report["items"] for g in i["not_granted"]]
    for path, g in missing[:_SHOWN]:
        print(f"  not shared: {path}: {_who(g['source'])}: {g['reason']}")
    if len(missing) > _SHOWN:
        print(f"  ... and {len(missing) - _SHOWN} more not shared (see --report)")
    warned = [(i["path"], w) for i in report["items"] for w in i["warnings"]]
    for path, w in warned[:_SHOWN]:
        print(f"  sharing warning: {path}: {w}")
