"""Parsing and printing sizes and durations the way users type them (`10M`, `1.5GiB`, `750G`, `90s`)."""

from __future__ import annotations

import re

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?)(b?)\s*$", re.IGNORECASE)
_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5}


def parse_size(text: str | int) -> int:
    """Bytes from `123`, `10M`/`10MiB` (binary), `10MB` (decimal), `1.5G`. Raises ValueError.

    Like rclone, a bare suffix (`10M`) is binary (MiB); `MB` with a B and no i is decimal.
    """
    if isinstance(text, int):
        if text < 0:
            raise ValueError(f"size must not be negative: {text}")
        return text
    m = _SIZE.match(text)
    if not m:
        raise ValueError(f"not a size: {text!r} (examples: 1048576, 10M, 10MiB, 750GB)")
    number, unit, binary, b = m.groups()
    power = _POWERS[unit.lower()]
    base = 1000 if (b and not binary and unit) else 1024
    return int(float(number) * base**power)


def format_size(n: float) -> str:
    """Human-readable binary size (`1.5 GiB`)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def parse_duration(text: str | int | float) -> float:
    """Seconds from `90`, `90s`, `15m`, `2h`, `1d`. Raises ValueError."""
    if isinstance(text, int | float):
        return float(text)
    m = re.match(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$", text, re.IGNORECASE)
    if not m:
        raise ValueError(f"not a duration: {text!r} (examples: 90s, 15m, 2h)")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2).lower()]
