"""The destination namer (migrate/names.py): what each source path becomes, from declared Features only."""

from __future__ import annotations

from driveferry.migrate.names import Namer, case_twin_name, twin
from driveferry.providers.base import Features

ONEDRIVE_LIKE = Features(case_insensitive=True, illegal_name_chars="/", max_path_chars=40)


def paths(namer: Namer, *rel: str) -> list[str]:
    return [namer.name(r).path for r in rel]


def test_case_twins_get_numbered_names_also_when_a_subfolder_comes_between() -> None:
    namer = Namer(ONEDRIVE_LIKE)
    # depth-first order: the folder's later file arrives after its subfolder's contents
    got = paths(namer, "A/Report.txt", "A/sub/x.txt", "A/report.txt", "A/REPORT.TXT", "A/other.txt")
    assert got == ["A/Report.txt", "A/sub/x.txt", "A/report (case 2).txt", "A/REPORT (case 3).TXT", "A/other.txt"]


def test_a_real_name_equal_to_a_twin_name_is_itself_renamed() -> None:
    namer = Namer(ONEDRIVE_LIKE)
    got = paths(namer, "a.txt", "A.txt", "a (case 2).txt")
    assert got == ["a.txt", "A (case 2).txt", "a (case 2) (case 2).txt"]
    assert namer.name("b.txt").renamed == ""


def test_folder_twins_and_a_file_named_like_a_folder() -> None:
    namer = Namer(ONEDRIVE_LIKE)
    first = namer.name("Docs/a.bin")
    second = namer.name("docs/b.bin")
    third = namer.name("DOCS")  # a file with a folder's name, folded
    assert (first.path, second.path, third.path) == ("Docs/a.bin", "docs (case 2)/b.bin", "DOCS (case 3)")
    assert "folder 'docs'" in second.renamed
    assert namer.name("docs/c.bin").path == "docs (case 2)/c.bin"  # the same source folder, same mapping


def test_illegal_characters_become_fullwidth_twins() -> None:
    namer = Namer(ONEDRIVE_LIKE)
    named = namer.name("dir/a/b.txt", src_name="a/b.txt")  # Drive allows "/" in a name
    assert named.path == "dir/a\uff0fb.txt" and "refuses" in named.renamed
    assert twin("\0") == "\u2400" and twin("*") == "\uff0a"


def test_path_limit_counts_the_destination_folder() -> None:
    namer = Namer(ONEDRIVE_LIKE, dest_root="/Dest/")  # 4 + 1 characters before the relative path
    ok = "x" * 35
    assert namer.name(ok).refused == ""
    over = namer.name("y" * 36)
    assert "41 characters" in over.refused and "at most 40" in over.refused


def test_case_sensitive_destination_keeps_every_name() -> None:
    namer = Namer(Features())
    assert paths(namer, "a.txt", "A.txt", "x/y:z") == ["a.txt", "A.txt", "x/y:z"]
    assert case_twin_name(".profile", 2) == ".profile (case 2)"
