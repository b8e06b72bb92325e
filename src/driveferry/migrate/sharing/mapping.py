"""The sharing map: which Google account or group each source person or group becomes.

A CSV file, one rule per line, `source,target` (see configs/sharing-map.example.csv and the README's
"Sharing" section):

    source,target
    # a person or group (by address) -> a Google account or group; the kind comes from the source grant
    alice@contoso.com,alice.w@example.com
    sales@contoso.com,sales@example.com
    # a domain rule: the same local part in the other domain
    *@contoso.com,*@example.com
    # the domain organization-wide links become (optional)
    organization,example.com

The `source,target` header is optional. Lines that are empty or start with `#` are skipped (a comment
is a whole line: a cell holds only its value). Addresses compare case-insensitively. An exact row
wins over a domain rule. Without an `organization` row, organization links use the target domain of the
domain rules when they all name one; otherwise they are reported, not guessed. Any other line is an
error naming the file and the line (a UserError: exit 2 before anything is touched).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from driveferry.errors import UserError

EXAMPLE = "configs/sharing-map.example.csv"


def _is_address(text: str) -> bool:
    local, at, domain = text.partition("@")
    return bool(local) and at == "@" and "." in domain and " " not in text and "*" not in text and "," not in text


def _is_domain(text: str) -> bool:
    return "." in text and "@" not in text and " " not in text and "*" not in text and not text.startswith(".")


@dataclass(frozen=True)
class SharingMap:
    """The parsed map. `rows`: exact address -> address; `domains`: source domain -> target domain."""

    rows: dict[str, str] = field(default_factory=dict)
    domains: dict[str, str] = field(default_factory=dict)
    organization: str | None = None  # an explicit `organization,<domain>` row
    source: str = ""  # the file it came from, for messages

    def target(self, address: str) -> tuple[str | None, str]:
        """(the Google address for a source address or None, how it was found or why not)."""
        key = address.strip().lower()
        if not self.source:
            return None, f"no sharing map given for {address} (--sharing-map FILE)"
        if key in self.rows:
            return self.rows[key], "mapped"
        local, _, domain = key.partition("@")
        if domain in self.domains:
            return f"{local}@{self.domains[domain]}", f"domain rule *@{domain}"
        return None, f"no row for {address} and no domain rule for @{domain or '?'} in the sharing map"

    def organization_domain(self) -> tuple[str | None, str]:
        """(the domain an organization link becomes or None, why not)."""
        if self.organization:
            return self.organization, "organization row"
        targets = set(self.domains.values())
        if len(targets) == 1:
            return next(iter(targets)), "the domain rules' target"
        if not targets:
            return None, "the sharing map has no domain rule and no 'organization,<domain>' row"
        return None, (f"the domain rules name several domains ({', '.join(sorted(targets))}); add an "
                      "'organization,<domain>' row")


def parse_map(text: str, source: str) -> SharingMap:
    """The map in `text`; UserError "<source> line N: ..." at the first bad line."""
    rows: dict[str, str] = {}
    domains: dict[str, str] = {}
    organization: str | None = None
    hint = f"expected 'source,target' (see {EXAMPLE})"
    for number, cells in enumerate(csv.reader(io.StringIO(text)), start=1):
        cells = [c.strip() for c in cells]
        if not cells or not any(cells) or cells[0].startswith("#"):
            continue
        where = f"sharing map {source} line {number}"
        if len(cells) != 2:
            raise UserError(f"{where}: {len(cells)} columns; {hint}")
        src, dst = cells[0].lower(), cells[1].lower()
        if number == 1 and (src, dst) == ("source", "target"):
            continue
        if src == "organization":
            if not _is_domain(dst):
                raise UserError(f"{where}: 'organization' needs a domain name (like example.com), got {cells[1]!r}")
            if organization is not None:
                raise UserError(f"{where}: a second 'organization' row")
            organization = dst
        elif src.startswith("*@"):
            if not (dst.startswith("*@") and _is_domain(src[2:]) and _is_domain(dst[2:])):
                raise UserError(f"{where}: a domain rule maps '*@<domain>' to '*@<domain>', got "
                                f"{cells[0]!r} -> {cells[1]!r}")
            if src[2:] in domains:
                raise UserError(f"{where}: a second rule for {cells[0]}")
            domains[src[2:]] = dst[2:]
        else:
            if not _is_address(src):
                raise UserError(f"{where}: {cells[0]!r} is not an e-mail address, '*@<domain>' or 'organization'; "
                                f"{hint}")
            if not _is_address(dst):
                raise UserError(f"{where}: {cells[1]!r} is not an e-mail address; {hint}")
            if src in rows:
                raise UserError(f"{where}: a second row for {cells[0]}")
            rows[src] = dst
    return SharingMap(rows, domains, organization, source)


def load_map(path: str) -> SharingMap:
    """The map in the file at `path`; UserError (one line) when it is missing, unreadable or malformed."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")  # a BOM from spreadsheet exports is fine
    except FileNotFoundError:
        raise UserError(f"sharing map {path} not found; copy {EXAMPLE} and edit it") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"sharing map {path} cannot be read ({type(exc).__name__}); give a UTF-8 CSV file") from None
    return parse_map(text, path)
