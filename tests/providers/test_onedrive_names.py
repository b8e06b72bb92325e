"""names.py: every plain name survives encode -> decode, and encoded names are legal on Business."""

from __future__ import annotations

import random
import re

import pytest

from driveferry.providers.onedrive.names import QUOTE, decode, decode_path, encode, encode_path, is_reserved

_ILLEGAL = re.compile(r'[/\\*<>?:|#%"]')
_SPECIAL = list('/\\*<>?:|#%"~. _$') + ["vti", "CON", "lock", "desktop.ini", QUOTE, "＊", "～", "．",
                                          "\u2420", "Ｃ", "ｄ", "＿", "é", "日本"]


def assert_legal(remote: str) -> None:
    assert not _ILLEGAL.search(remote), remote
    assert not remote.startswith(("~", " ")), remote
    assert not remote.endswith((".", " ")), remote
    assert not is_reserved(remote), remote
    assert "_vti_" not in remote.lower(), remote


@pytest.mark.parametrize("plain, remote", [
    ("a*b", "a＊b"), ("what?.txt", "what？.txt"), ("x:y|z", "x：y｜z"), ("50%#1", "50％＃1"),
    ("~$budget.xlsx", "～$budget.xlsx"), ("name.", "name．"), (" lead", "\u2420lead"), ("trail ", "trail\u2420"),
    ("CON", "ＣON"), ("lpt1.txt", "ｌpt1.txt"), (".lock", "．lock"), ("desktop.ini", "ｄesktop.ini"),
    ("a_vti_b", "a＿vti_b"), ("plain name.txt", "plain name.txt"), ("日本語.doc", "日本語.doc"),
])
def test_examples(plain: str, remote: str) -> None:
    assert encode(plain) == remote
    assert decode(remote) == plain
    assert_legal(remote)


@pytest.mark.parametrize("plain", ["a＊b", "～x", "x．", "ＣON", "‛", "‛＊", "\u2420x", "＿vti_", "report：2024"])
def test_literal_twins_are_quoted_and_round_trip(plain: str) -> None:
    remote = encode(plain)
    assert remote != plain or QUOTE not in plain
    assert decode(remote) == plain


@pytest.mark.parametrize("native", ["x～y", "a．b", "ＣＰＵ.txt", "Ｃ", "a‛b", "ｄata.ini"])
def test_native_names_decode_conservatively(native: str) -> None:
    # a twin where its ASCII character would have been legal is left alone
    assert decode(native) == native


def test_round_trip_and_legal_random() -> None:
    rng = random.Random(20261123)
    alphabet = _SPECIAL + list("abcXYZ019-")
    for _ in range(5000):
        plain = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 8)))
        remote = encode(plain)
        assert decode(remote) == plain, (plain, remote)
        assert_legal(remote)


def test_paths_encode_per_segment() -> None:
    assert encode_path("a:b/c*") == "a：b/c＊"
    assert decode_path("a：b/c＊") == "a:b/c*"
    assert encode_path("") == decode_path("") == ""
