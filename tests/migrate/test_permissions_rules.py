"""The sharing decisions that the end-to-end test does not reach: never wider than the source (expiring
links and grants, link types without a narrow Drive role, a users link without recipients), the
organization domain when the map names several, a Drive source's own roles, and the map's format."""

from __future__ import annotations

import pytest

from driveferry.errors import UserError
from driveferry.migrate.sharing.decide import Grant, covers, decide
from driveferry.migrate.sharing.mapping import load_map, parse_map
from driveferry.providers.base import Permission

MAP = parse_map("source,target\nann@contoso.com,ann@example.com\n*@contoso.com,*@example.com\n", "t.csv")


def _one(p: Permission, allow_anyone: bool = False) -> Grant | str:
    d = decide(p, MAP, allow_anyone=allow_anyone)
    assert len(d.grants) + len(d.refused) == 1, d
    return d.grants[0] if d.grants else d.refused[0]


def test_roles_never_widen() -> None:
    assert _one(Permission("user", "read", "ann@contoso.com")) == Grant("user", "reader", "ann@example.com")
    assert _one(Permission("group", "write", "team@contoso.com")) == Grant("group", "writer", "team@example.com")
    owner = _one(Permission("user", "owner", "ann@contoso.com"))
    assert isinstance(owner, Grant) and owner.role == "writer" and "owner" in owner.note
    assert "no Drive equivalent" in str(_one(Permission("user", "sp.full control", "ann@contoso.com")))
    # a link's type gives its role; a type with no narrow Drive role is reported
    assert _one(Permission("link", "read", link_scope="organization", link_type="embed")) == \
        Grant("domain", "reader", "example.com")
    assert _one(Permission("link", "read", link_scope="organization", link_type="review")) == \
        Grant("domain", "commenter", "example.com")
    assert "blocksDownload link" in str(_one(Permission("link", "read", link_scope="organization",
                                                        link_type="blocksDownload")))


def test_expiry_and_passwords_are_reported_not_dropped() -> None:
    ends = "2030-01-01T00:00:00Z"
    assert _one(Permission("user", "read", "ann@contoso.com", expires=ends)) == \
        Grant("user", "reader", "ann@example.com", ends)
    assert "reader and commenter only" in str(_one(Permission("user", "write", "ann@contoso.com", expires=ends)))
    assert "cannot end" in str(_one(Permission("link", "read", link_scope="anonymous", link_type="view",
                                               expires=ends), allow_anyone=True))
    assert "password" in str(_one(Permission("link", "read", link_scope="organization", link_type="view",
                                             has_password=True)))
    assert "recipients" in str(_one(Permission("link", "write", link_scope="users", link_type="edit")))
    assert _one(Permission("link", "read", link_scope="anonymous", link_type="view"), allow_anyone=True) == \
        Grant("anyone", "reader")


def test_organization_domain_needs_one_target() -> None:
    two = parse_map("*@contoso.com,*@example.com\n*@fabrikam.com,*@example.org\n", "two.csv")
    link = Permission("link", "read", link_scope="organization", link_type="view")
    assert "several domains" in decide(link, two, allow_anyone=False).refused[0]
    named = parse_map("*@contoso.com,*@example.com\n*@fabrikam.com,*@example.org\norganization,example.org\n", "x")
    assert decide(link, named, allow_anyone=False).grants == (Grant("domain", "reader", "example.org"),)
    assert "no domain rule" in decide(link, parse_map("", "empty.csv"), allow_anyone=False).refused[0]


def test_a_drive_source_keeps_its_roles_and_domain() -> None:
    assert _one(Permission("user", "commenter", "ann@contoso.com")) == Grant("user", "commenter", "ann@example.com")
    assert _one(Permission("domain", "reader", "contoso.com")) == Grant("domain", "reader", "example.com")
    assert covers("owner", "writer") and covers("writer", "writer") and not covers("reader", "writer")


@pytest.mark.parametrize("text, says", [
    ("a@b.com,c@d.com,extra\n", "line 1: 3 columns"),
    ("organization,not a domain\n", "line 1: 'organization' needs a domain"),
    ("*@contoso.com,*@example.com\n*@CONTOSO.com,*@other.com\n", "line 2: a second rule"),
    ("a@b.com,*@d.com\n", "line 1: '*@d.com' is not an e-mail address"),
])
def test_map_errors_name_the_line(text: str, says: str) -> None:
    with pytest.raises(UserError) as err:
        parse_map(text, "m.csv")
    assert str(err.value).startswith("sharing map m.csv ") and says in str(err.value)


def test_map_file_problems_are_one_line() -> None:
    with pytest.raises(UserError, match="not found; copy configs/sharing-map.example.csv"):
        load_map("/nonexistent/map.csv")


def test_the_example_map_parses() -> None:
    from pathlib import Path
    example = Path(__file__).resolve().parents[2] / "configs" / "sharing-map.example.csv"
    m = load_map(str(example))
    assert m.rows and m.domains and m.organization_domain()[0]


def test_without_a_map_everyone_is_reported_as_unmapped() -> None:
    from driveferry.migrate.sharing.mapping import SharingMap
    d = decide(Permission("user", "read", "ann@contoso.com"), SharingMap(), allow_anyone=False)
    assert d.grants == () and "no sharing map given" in d.refused[0]
