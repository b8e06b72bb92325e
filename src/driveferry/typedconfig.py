"""Typed reading of the TOML files users write (remotes, job, seed, fault and realism files).

Every problem is one line in one format, so a user can find it in the file:

    <file>: <key>: expected <type>, got <value>

`read_toml` turns an unreadable file (a folder, not UTF-8, bad TOML) into that line; `check_table`
checks each key of one table against a schema of `Field`s, names unknown keys and converts sizes and
durations. The error is a `FileValueError`: a UserError (the CLI exits 2) and a ValueError (the
emulator's loaders catch ValueError). This module imports only errors and units, so the emulator,
the config and the migrate layer can all use it.
"""

from __future__ import annotations

import difflib
import json
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from driveferry.errors import UserError
from driveferry.units import parse_duration, parse_size

__all__ = ["Field", "FileValueError", "check_table", "check_value", "read_toml", "shown"]


class FileValueError(UserError, ValueError):
    """A file, or one key in it, that cannot be used: `<file>: <key>: expected <type>, got <value>`."""

    def __init__(self, file: str | Path, key: str, expected: str, got: str) -> None:
        where = ": ".join(str(p) for p in (file, key) if str(p))
        super().__init__(f"{where}: expected {expected}, got {got}")
        self.file, self.key, self.expected, self.got = str(file), key, expected, got


def shown(value: object) -> str:
    """`value` as the user wrote it in TOML (strings quoted), cut to one short line."""
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, bool):
        return "true" if value else "false"
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except ValueError:
        text = repr(value)
    text = " ".join(text.split())
    return text if len(text) <= 60 else text[:57] + "..."


def read_toml(path: str | Path) -> dict[str, Any]:
    """The parsed TOML file. FileNotFoundError passes through (callers say where to start from);
    a folder, another unreadable file, non-UTF-8 bytes or bad TOML raise FileValueError."""
    p = Path(path)
    if p.is_dir():
        raise FileValueError(path, "", "a TOML file", "a folder")
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise FileValueError(path, "", "a readable TOML file", exc.strerror or type(exc).__name__) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise FileValueError(path, f"line {line}", "UTF-8 text",
                             f"byte 0x{raw[exc.start]:02x}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise FileValueError(path, "", "valid TOML", " ".join(str(exc).split())) from None


@dataclass(frozen=True)
class Field:
    """One key's type. Kinds: string, integer, number, boolean, size (bytes or "64K"), duration
    (seconds or "15m", not negative), strings (a list of strings, or one string), path (relative, no '..'), table,
    list, scalar (a string or a number), any; numeric and flag also take their text ("2.5", "true": environment overrides are text). `minimum` and `maximum` bound integers and numbers; `choices` lists the allowed strings; `empty`
    allows an empty string."""

    kind: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    empty: bool = True

    def describe(self) -> str:
        if self.choices:
            return "one of " + ", ".join(f'"{c}"' for c in self.choices)
        base = {"string": "a string", "integer": "an integer", "number": "a number", "boolean": "true or false",
                "size": 'a size (bytes, or "64K", "4M")', "duration": 'a duration (seconds, or "90s", "15m")',
                "strings": "a list of strings", "path": "a relative path without '..'", "table": "a table",
                "list": "a list", "any": "a value", "numeric": "a number",
                "flag": "true or false", "scalar": "a string or a number"}[self.kind]
        if self.kind in ("integer", "number", "numeric"):
            low, high = (None if v is None else int(v) if float(v).is_integer() else v
                         for v in (self.minimum, self.maximum))
            if low is not None and high is not None:
                base += f" in {low}..{high}"
            elif low is not None:
                base += f" >= {low}"
        if self.kind == "string" and not self.empty:
            base = "a non-empty string"
        return base


_FLAGS = ("true", "false", "yes", "no", "1", "0")


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_value(file: str | Path, key: str, value: object, spec: Field) -> Any:
    """`value` converted for its kind (sizes to bytes, durations to seconds, strings to a tuple);
    FileValueError naming `key` when it does not fit."""
    def bad() -> FileValueError:
        return FileValueError(file, key, spec.describe(), shown(value))
    kind = spec.kind
    if kind in ("string", "path"):
        if not isinstance(value, str) or (not spec.empty and not value.strip()):
            raise bad()
        if spec.choices and value not in spec.choices:
            raise bad()
        if kind == "path":
            parts = value.replace("\\", "/").split("/")
            if not value.strip("/") or value.startswith("/") or ".." in parts:
                raise bad()
        return value
    if kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad()
    elif kind == "number":
        if not _number(value) or not math.isfinite(float(value)):  # type: ignore[arg-type]
            raise bad()
    elif kind == "numeric":  # a number, or its text (environment overrides and generated files are text)
        try:
            number = float(value) if _number(value) or isinstance(value, str) else math.nan  # type: ignore[arg-type]
        except ValueError:
            number = math.nan
        if not math.isfinite(number) or not _in_range(number, spec):
            raise bad()
        return value
    elif kind == "scalar":
        if not (isinstance(value, str) or _number(value)):
            raise bad()
        return value
    elif kind == "flag":
        if not (isinstance(value, bool) or (isinstance(value, str) and value.strip().lower() in _FLAGS)):
            raise bad()
        return value
    elif kind == "boolean":
        if not isinstance(value, bool):
            raise bad()
        return value
    elif kind == "size":
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise bad()
        try:
            return parse_size(value)
        except ValueError:
            raise bad() from None
    elif kind == "duration":
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise bad()
        try:
            seconds = parse_duration(value)
        except ValueError:
            raise bad() from None
        if seconds < 0 or not math.isfinite(seconds):
            raise bad()
        return seconds
    elif kind == "strings":
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(v, str) and v for v in items):
            raise bad()
        return tuple(items)
    elif kind == "table":
        if not isinstance(value, dict):
            raise bad()
        return value
    elif kind == "list":
        if not isinstance(value, list):
            raise bad()
        return value
    if not _in_range(float(value), spec):  # type: ignore[arg-type]
        raise bad()
    return value


def _in_range(number: float, spec: Field) -> bool:
    return ((spec.minimum is None or number >= spec.minimum)
            and (spec.maximum is None or number <= spec.maximum))


def _known(key: str, schema: Mapping[str, Field]) -> str:
    close = difflib.get_close_matches(key, list(schema), n=1)
    if close:
        return f'a known key (did you mean "{close[0]}"?)'
    if len(schema) <= 12:
        return "one of the keys " + ", ".join(sorted(schema))
    return f"one of its {len(schema)} known keys (see the example file)"


def check_table(file: str | Path, where: str, table: object, schema: Mapping[str, Field], *,
                required: tuple[str, ...] = (), unknown_ok: bool = False) -> dict[str, Any]:
    """Each key of `table` checked (and converted) against `schema`; `where` prefixes the key names
    ("" at the top, "remotes.work" for a section). Unknown keys are refused, naming the known ones,
    unless `unknown_ok`; then they are returned unchanged."""
    prefix = f"{where}." if where else ""
    if not isinstance(table, dict):
        raise FileValueError(file, where or "(top level)", "a table", shown(table))
    out: dict[str, Any] = {}
    for key, value in table.items():
        spec = schema.get(key)
        if spec is None:
            if unknown_ok:
                out[key] = value
                continue
            raise FileValueError(file, f"{prefix}{key}", _known(key, schema), "an unknown key")
        out[key] = check_value(file, f"{prefix}{key}", value, spec)
    for key in required:
        if key not in table:
            raise FileValueError(file, f"{prefix}{key}", schema[key].describe(), "nothing (the key is missing)")
    return out
