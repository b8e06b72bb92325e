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
from collections.abc import Callable, Mapping
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


class _Misfit(Exception):
    """Raised by a kind's checker: the value does not fit (check_value words the message)."""


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _in_range(number: float, spec: Field) -> bool:
    return ((spec.minimum is None or number >= spec.minimum)
            and (spec.maximum is None or number <= spec.maximum))


def _fits(ok: bool) -> None:
    if not ok:
        raise _Misfit


def _string(value: object, spec: Field) -> str:
    _fits(isinstance(value, str) and (spec.empty or bool(value.strip()))
          and (not spec.choices or value in spec.choices))
    return str(value)


def _path(value: object, spec: Field) -> str:
    text = _string(value, spec)
    parts = text.replace("\\", "/").split("/")
    _fits(bool(text.strip("/")) and not text.startswith("/") and ".." not in parts)
    return text


def _integer(value: object, spec: Field) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Misfit
    _fits(_in_range(value, spec))
    return value


def _float(value: object, spec: Field) -> float:
    _fits(_number(value) and math.isfinite(float(value)) and _in_range(float(value), spec))  # type: ignore[arg-type]
    return float(value)  # type: ignore[arg-type]


def _numeric(value: object, spec: Field) -> object:
    """A number, or its text: environment overrides and generated files are text."""
    try:
        number = float(value) if _number(value) or isinstance(value, str) else math.nan  # type: ignore[arg-type]
    except ValueError:
        number = math.nan
    _fits(math.isfinite(number) and _in_range(number, spec))
    return value


def _size(value: object, spec: Field) -> int:
    _fits(isinstance(value, int | str) and not isinstance(value, bool))
    try:
        return parse_size(value)  # type: ignore[arg-type]
    except ValueError:
        raise _Misfit from None


def _duration(value: object, spec: Field) -> float:
    _fits(isinstance(value, int | float | str) and not isinstance(value, bool))
    try:
        seconds = parse_duration(value)  # type: ignore[arg-type]
    except ValueError:
        raise _Misfit from None
    _fits(0 <= seconds < math.inf)
    return seconds


def _strings(value: object, spec: Field) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    _fits(isinstance(items, list) and all(isinstance(v, str) and v for v in items))
    return tuple(items)  # type: ignore[arg-type]


def _of(*types: type) -> Callable[[object, Field], object]:
    def check(value: object, spec: Field) -> object:
        _fits(isinstance(value, types) and (bool in types or not isinstance(value, bool)))  # True is an int
        return value
    return check


def _flag(value: object, spec: Field) -> object:
    _fits(isinstance(value, bool) or (isinstance(value, str) and value.strip().lower() in _FLAGS))
    return value


_CHECKS: dict[str, Callable[[object, Field], object]] = {
    "string": _string, "path": _path, "integer": _integer, "number": _float, "numeric": _numeric,
    "size": _size, "duration": _duration, "strings": _strings, "flag": _flag, "boolean": _of(bool),
    "scalar": _of(str, int, float), "table": _of(dict), "list": _of(list), "any": lambda value, spec: value,
}


def check_value(file: str | Path, key: str, value: object, spec: Field) -> Any:
    """`value` converted for its kind (sizes to bytes, durations to seconds, strings to a tuple);
    FileValueError naming `key` when it does not fit."""
    try:
        return _CHECKS[spec.kind](value, spec)
    except _Misfit:
        raise FileValueError(file, key, spec.describe(), shown(value)) from None


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
