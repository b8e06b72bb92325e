"""`driveferry remotes [--check]`: the configured remotes, and with --check whether each one works.

A check signs in, reads the root and lists its first page: one line per remote, `NAME: ok ...` or
`NAME: error: ...`. Secret values (client secrets, tokens, keys) are never printed: keys whose names
mark them secret are left out of the listing, and any configured secret value found in an error
message is replaced by `***`.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Mapping
from typing import Any

from driveferry.commands.common import add_config_arg
from driveferry.errors import DriveferryError, UserError

EPILOG = """\
examples:
  driveferry remotes                       # name, type and where each remote points
  driveferry remotes --check               # sign in to each and list its root: ok / error per line
  driveferry remotes --check --json --config remotes.toml

exit codes: 0 listed (with --check: every remote works); 1 some remote failed its check;
2 bad or missing config."""

# shown in the listing when present (never a secret)
_SHOWN = ("auth", "endpoint", "root", "tenant", "client_id", "user", "drive_id", "subject")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("remotes", help="list the configured remotes; --check signs in to each",
                       description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="sign in to each remote and list its root")
    p.add_argument("--json", action="store_true", help="one JSON object per remote")
    add_config_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from driveferry import config as cfg
    config = cfg.load_config(args.config)
    if not config.remotes:
        raise UserError(f"no remotes configured (looked at {config.path or config.looked_at}); create it from "
                        f"{cfg.EXAMPLE}")
    failed = 0
    for name in sorted(config.remotes):
        remote = config.remotes[name]
        shown = {k: remote.section[k] for k in _SHOWN if remote.section.get(k) and not cfg.is_secret_key(k)}
        record: dict[str, Any] = {"remote": name, "type": remote.type, **shown}
        if args.check:
            ok, detail = check(remote, config.state_dir)
            failed += not ok
            record.update(status="ok" if ok else "error", detail=detail)
        if args.json:
            print(json.dumps(record, default=str), flush=True)
        elif args.check:
            print(f"{name}: {record['status']}: {record['detail']}" if not ok else f"{name}: ok ({detail})",
                  flush=True)
        else:
            extras = " ".join(f"{k}={v}" for k, v in shown.items())
            print(f"{name:<20} {remote.type:<9} {extras}".rstrip())
    return 1 if failed else 0


def check(remote: Any, state_dir: Any) -> tuple[bool, str]:
    """(works?, one line): sign in, resolve the root and list its first page. Never raises for a
    remote's own failure; the line has every configured secret value redacted."""
    from driveferry.providers.ops import resolve
    from driveferry.providers.registry import build_provider
    try:
        provider = build_provider(remote, state_dir)
        root = resolve(provider, "")
        first = next(iter(provider.list(root)), None)
        return True, "root listed" + ("" if first is not None else " (empty)")
    except DriveferryError as exc:
        return False, redact_text(_one_line(str(exc)), secret_values(remote.section))
    except Exception as exc:  # noqa: BLE001 - one bad remote must not hide the others' results
        return False, redact_text(_one_line(f"{type(exc).__name__}: {exc}"), secret_values(remote.section))


def _one_line(text: str) -> str:
    return " ".join(text.split())[:400]


def secret_values(section: Mapping[str, Any]) -> list[str]:
    """The values of a section's secret keys (and of nested secret keys), longest first."""
    from driveferry.config import is_secret_key
    found: list[str] = []

    def visit(items: Iterable[tuple[str, Any]]) -> None:
        for key, value in items:
            if isinstance(value, Mapping):
                visit(value.items())
            elif is_secret_key(key) and value:
                found.append(str(value))
    visit(section.items())
    return sorted({v for v in found if len(v) >= 6}, key=len, reverse=True)


def redact_text(text: str, secrets: Iterable[str]) -> str:
    """`text` with each of `secrets` replaced by '***'."""
    for value in secrets:
        text = text.replace(value, "***")
    return text
