"""The `q` search language of files.list (the subset in api-notes 3.1), compiled to a predicate.

    query  := conj ("or" conj)*          conj := unary ("and" unary)*      (and binds tighter than or)
    unary  := "not" unary | "(" query ")" | term
    term   := field op value | 'value' in collection | (app)properties has {key='k' and value='v'} | bareBool

Strings are single-quoted with `\\'` and `\\\\` escapes; keywords are case-insensitive (Google accepts
`AND`; api-notes 3.1 marks this [UNC] and we accept it). The predicate runs over a file resource dict
(the full `*` rendering), so the query sees exactly what a client would: `appProperties has` sees only
the caller's own appProperties when they are private. Search is eventually consistent (api-notes §20):
a resource the model marked `search_hidden` (created or renamed within its search lag) matches no query;
the hidden match is reported through the mark. Any error is the 400 that real Drive sends: reason
`invalid`, location `q`, message "Invalid Value".
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from driveferry.emulator.drive.errors import DriveError, invalid_value

Predicate = Callable[[dict[str, Any]], bool]

_TOKEN = re.compile(r"\s*(?:(?P<str>')|(?P<op><=|>=|!=|=|<|>)|(?P<punct>[(){}])|(?P<word>[A-Za-z_][A-Za-z0-9_.]*))")
_BOOL_FIELDS = {"trashed", "starred", "sharedwithme", "hidden"}
_TIME_FIELDS = {"modifiedtime": "modifiedTime", "createdtime": "createdTime", "viewedbymetime": "viewedByMeTime"}
_PEOPLE = {"owners", "writers", "readers"}


@dataclass(frozen=True)
class _Tok:
    kind: str  # str, op, punct, word
    text: str


def _err() -> DriveError:
    return invalid_value("q")


def tokenize(q: str) -> list[_Tok]:
    toks: list[_Tok] = []
    pos = 0
    while pos < len(q):
        if q[pos:].strip() == "":
            break
        m = _TOKEN.match(q, pos)
        if not m:
            raise _err()
        if m.group("str"):
            out: list[str] = []
            i = m.end()
            while True:
                if i >= len(q):
                    raise _err()  # unterminated string
                c = q[i]
                if c == "\\" and i + 1 < len(q):
                    out.append(q[i + 1])
                    i += 2
                    continue
                if c == "'":
                    break
                out.append(c)
                i += 1
            toks.append(_Tok("str", "".join(out)))
            pos = i + 1
            continue
        kind = m.lastgroup or ""
        toks.append(_Tok(kind, m.group(kind)))
        pos = m.end()
    return toks


def _word_prefix(name: str, value: str) -> bool:
    """`name contains 'x'`: prefix match on word starts ('HelloWorld' matches 'Hello', not 'World')."""
    n, v = name.lower(), value.lower()
    if not v:
        return True
    starts = [0] + [i for i in range(1, len(n)) if not n[i - 1].isalnum() and n[i].isalnum()]
    return any(n.startswith(v, i) for i in starts)


def _time(text: str) -> datetime:
    try:
        t = datetime.fromisoformat(text)
    except ValueError as exc:
        raise _err() from exc
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).astimezone(UTC)


_CMP: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: bool(a == b), "!=": lambda a, b: bool(a != b), "<": lambda a, b: bool(a < b),
    "<=": lambda a, b: bool(a <= b), ">": lambda a, b: bool(a > b), ">=": lambda a, b: bool(a >= b),
}


class _Parser:
    def __init__(self, toks: list[_Tok], resolve: Callable[[str], str]) -> None:
        self.toks = toks
        self.i = 0
        self.resolve = resolve  # maps the 'root' alias to the real id
        self.parent_ids: set[str] = set()  # ids in top-level `'X' in parents` conjuncts
        self.depth = 0  # > 0 inside not/parentheses, where a term no longer narrows the result
        self.top_or = False

    def peek(self) -> _Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def next(self) -> _Tok:
        tok = self.peek()
        if tok is None:
            raise _err()
        self.i += 1
        return tok

    def keyword(self, word: str) -> bool:
        tok = self.peek()
        if tok is not None and tok.kind == "word" and tok.text.lower() == word:
            self.i += 1
            return True
        return False

    def expect(self, kind: str, text: str | None = None) -> _Tok:
        tok = self.next()
        if tok.kind != kind or (text is not None and tok.text.lower() != text):
            raise _err()
        return tok

    def query(self) -> Predicate:
        parts = [self.conj()]
        while self.keyword("or"):
            self.top_or = self.top_or or self.depth == 0
            parts.append(self.conj())
        return parts[0] if len(parts) == 1 else (lambda f: any(p(f) for p in parts))

    def conj(self) -> Predicate:
        parts = [self.unary()]
        while self.keyword("and"):
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else (lambda f: all(p(f) for p in parts))

    def unary(self) -> Predicate:
        if self.keyword("not"):
            self.depth += 1
            inner = self.unary()
            self.depth -= 1
            return lambda f: not inner(f)
        tok = self.peek()
        if tok is not None and tok.kind == "punct" and tok.text == "(":
            self.i += 1
            self.depth += 1
            inner = self.query()
            self.depth -= 1
            self.expect("punct", ")")
            return inner
        return self.term()

    def term(self) -> Predicate:
        tok = self.next()
        if tok.kind == "str":  # 'value' in collection
            self.expect("word", "in")
            coll = self.expect("word").text.lower()
            if coll == "parents":
                pid = self.resolve(tok.text)
                if self.depth == 0:
                    self.parent_ids.add(pid)
                return lambda f: pid in f.get("parents", ())
            if coll in _PEOPLE:
                who = tok.text.lower()
                return lambda f: who == "me" or any(o.get("emailAddress", "").lower() == who
                                                    for o in f.get("owners", ()))
            raise _err()
        if tok.kind != "word":
            raise _err()
        field = tok.text.lower()
        if field in ("properties", "appproperties"):
            return self.has(tok.text)
        nxt = self.peek()
        if field in _BOOL_FIELDS and (nxt is None or nxt.kind != "op"):  # bare `starred`
            key = "sharedWithMe" if field == "sharedwithme" else field
            return lambda f: bool(f.get(key, False))
        op = self.expect("op").text
        value = self.next()
        if field in _BOOL_FIELDS:
            if value.kind != "word" or value.text.lower() not in ("true", "false") or op not in ("=", "!="):
                raise _err()
            want = value.text.lower() == "true"
            key = "sharedWithMe" if field == "sharedwithme" else field
            return lambda f: _CMP[op](bool(f.get(key, False)), want)
        if value.kind != "str":
            raise _err()
        v = value.text
        if field in _TIME_FIELDS:
            key, when = _TIME_FIELDS[field], _time(v)
            return lambda f: key in f and _CMP[op](_time(f[key]), when)
        if field in ("name", "mimetype", "fulltext", "shortcutdetails.targetid", "visibility"):
            return self.text_term(field, op, v)
        raise _err()

    def text_term(self, field: str, op: str, v: str) -> Predicate:
        getters: dict[str, Callable[[dict[str, Any]], str]] = {
            "name": lambda f: str(f.get("name", "")),
            "mimetype": lambda f: str(f.get("mimeType", "")),
            "fulltext": lambda f: str(f.get("name", "")),
            "shortcutdetails.targetid": lambda f: str(f.get("shortcutDetails", {}).get("targetId", "")),
            "visibility": lambda f: "limited",
        }
        get = getters[field]
        if op in ("=", "!="):
            return lambda f: _CMP[op](get(f), v)
        if op != "contains":
            raise _err()
        if field == "name":
            return lambda f: _word_prefix(get(f), v)
        if field in ("fulltext", "mimetype"):
            return lambda f: v.lower() in get(f).lower()
        raise _err()

    def has(self, coll: str) -> Predicate:
        self.expect("word", "has")
        self.expect("punct", "{")
        self.expect("word", "key")
        self.expect("op", "=")
        key = self.expect("str").text
        self.expect("word", "and")
        self.expect("word", "value")
        self.expect("op", "=")
        value = self.expect("str").text
        self.expect("punct", "}")
        attr = "properties" if coll.lower() == "properties" else "appProperties"
        return lambda f: f.get(attr, {}).get(key) == value


def _rewrite_contains(toks: list[_Tok]) -> list[_Tok]:
    """`contains` is a word token; turn `field contains 'x'` into a pseudo-operator the parser knows."""
    return [_Tok("op", "contains") if t.kind == "word" and t.text.lower() == "contains" else t for t in toks]


@dataclass(frozen=True)
class Compiled:
    predicate: Predicate
    parent_hint: str | None  # every match has this parent (lets the model scan one folder, not all)


def compile_query(q: str, resolve: Callable[[str], str]) -> Compiled:
    """Compile `q`; raises DriveError(400 invalid, location q) if it is not in the supported grammar."""
    toks = _rewrite_contains(tokenize(q))
    if not toks:
        raise _err()
    p = _Parser(toks, resolve)
    pred = p.query()
    if p.i != len(p.toks):
        raise _err()
    hint = next(iter(p.parent_ids)) if len(p.parent_ids) == 1 and not p.top_or else None
    return Compiled(_searchable(pred), hint)


def _searchable(pred: Predicate) -> Predicate:
    """`pred`, false for resources search cannot see yet (the hidden match is reported)."""
    def visible(f: dict[str, Any]) -> bool:
        if not pred(f):
            return False
        hidden = getattr(f, "search_hidden", None)
        if hidden is None:
            return True
        hidden()
        return False
    return visible

