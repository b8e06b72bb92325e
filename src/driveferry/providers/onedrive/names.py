"""Reversible mapping between arbitrary file names and names OneDrive for Business accepts.

Source: Microsoft, "Restrictions and limitations in OneDrive and SharePoint" (support.microsoft.com,
article 64883a5d-228e-48f5-b3d2-eb39e07630fa): invalid characters `" * : < > ? / \\ |`, "Leading and
trailing spaces in file or folder names aren't allowed", invalid names `.lock, CON, PRN, AUX, NUL,
COM0-COM9, LPT0-LPT9, _vti_, desktop.ini` and names starting with `~$`, and "The entire decoded file
path, including the file name, can't contain more than 400 characters" (MAX_PATH_CHARS). `#` and `%`
are refused by libraries without that setting (api-notes 8.1), so they are mapped too.

OneDrive for Business rejects the characters `/ \\ * < > ? : | # % "`, a leading `~`, a leading or
trailing space, a trailing `.`, the device names (CON, PRN, AUX, NUL, COM0-9, LPT0-9, also with an
extension), `.lock`, `desktop.ini`, and `_vti_` anywhere in a name. Like rclone's encoder we replace an
offending ASCII character with its fullwidth twin (U+FF01..U+FF5E, e.g. `*` -> `＊`; a space becomes
`␠` U+2420), so names still read naturally in the OneDrive web UI.

To make the mapping reversible, a *literal* character that decoding would turn back into ASCII is
prefixed with the quote rune `‛` (U+201B), and a literal quote rune is doubled. Encoding maps each
character to exactly one unit (a character, or quote + character), so positional rules ("first",
"last") mean the same thing on both sides.

Decoding is conservative for names created natively on OneDrive: a fullwidth `～` or `．` is decoded
only where its ASCII twin would have been illegal (first, last), and a fullwidth first letter only
when the result is a reserved name. The always-illegal characters' twins (`＊`, `：`, ...) are decoded
anywhere, as rclone does; a native `report：2024.txt` therefore arrives as `report:2024.txt`.
"""

from __future__ import annotations

QUOTE = "\u201b"
MAX_PATH_CHARS = 400
SPACE_TWIN = "\u2420"
ALWAYS_ILLEGAL = frozenset('/\\*<>?:|#%"')
_FW_OFFSET = 0xFEE0  # fullwidth form = ASCII + 0xFEE0, for ASCII 0x21..0x7E

_DEVICES = frozenset({"con", "prn", "aux", "nul"} | {f"com{i}" for i in range(10)}
                     | {f"lpt{i}" for i in range(10)})
_RESERVED_WHOLE = frozenset({".lock", "desktop.ini"})
_VTI = "_vti_"


def _twin(c: str) -> str:
    return SPACE_TWIN if c == " " else chr(ord(c) + _FW_OFFSET)


def _untwin(c: str) -> str | None:
    """The ASCII character whose twin `c` is, or None."""
    if c == SPACE_TWIN:
        return " "
    if 0xFF01 <= ord(c) <= 0xFF5E:
        return chr(ord(c) - _FW_OFFSET)
    return None


def is_reserved(name: str) -> bool:
    """Whether OneDrive for Business refuses `name` as a whole (device names, .lock, desktop.ini)."""
    low = name.lower()
    return low in _RESERVED_WHOLE or low.split(".", 1)[0] in _DEVICES


def _encoded_at(name: str, i: int) -> bool:
    """Whether character `i` of the plain `name` must be replaced by its twin on OneDrive."""
    c, last = name[i], len(name) - 1
    return (c in ALWAYS_ILLEGAL
            or (i == 0 and c in "~ ")
            or (i == last and c in ". ")
            or (i == 0 and is_reserved(name))
            or (c == "_" and name[i:i + len(_VTI)].lower() == _VTI))


def encode(name: str) -> str:
    """The OneDrive form of a plain name. Inverse of `decode`."""
    out: list[str] = []
    for i, c in enumerate(name):
        if _encoded_at(name, i):
            out.append(_twin(c))
            continue
        plain = _untwin(c)
        # Would decode() read this literal twin as an encoding? Then protect it with the quote rune.
        if c == QUOTE or (plain is not None and _encoded_at(name[:i] + plain + name[i + 1:], i)):
            out.append(QUOTE)
        out.append(c)
    return "".join(out)


def decode(remote: str) -> str:
    """The plain name for a name as OneDrive stores it. Inverse of `encode`."""
    units: list[tuple[str, bool]] = []  # (character, quoted)
    i = 0
    while i < len(remote):
        c = remote[i]
        if c == QUOTE and i + 1 < len(remote) and (remote[i + 1] == QUOTE or _untwin(remote[i + 1])):
            units.append((remote[i + 1], True))
            i += 2
        else:
            units.append((c, False))
            i += 1
    # Right to left: the reserved-name and _vti_ rules look at the already-decoded rest of the name.
    plain = [c for c, _ in units]
    for j in range(len(units) - 1, -1, -1):
        c, quoted = units[j]
        ascii_ = None if quoted else _untwin(c)
        if ascii_ is not None:
            candidate = "".join(plain[:j]) + ascii_ + "".join(plain[j + 1:])
            if _encoded_at(candidate, j):
                plain[j] = ascii_
    return "".join(plain)


def max_path_chars(root: str) -> int:
    """The longest path below the provider's `root` folder (a path in the drive): the drive's limit
    less the root's own characters and its separator."""
    root = root.strip("/")
    return MAX_PATH_CHARS - (len(root) + 1 if root else 0)


def encode_path(path: str) -> str:
    """Encode each segment of a `/`-separated plain path."""
    return "/".join(encode(p) for p in path.split("/")) if path else ""


def decode_path(path: str) -> str:
    """Decode each segment of a `/`-separated OneDrive path."""
    return "/".join(decode(p) for p in path.split("/")) if path else ""
