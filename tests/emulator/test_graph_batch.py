"""Graph JSON batching in the emulator, over HTTP as clients send it (learn.microsoft.com/en-us/graph/
json-batching): 20 sub-requests answered by id (in any order, here reversed), 21 refused with 400, a body
that is not JSON refused, found and missing items side by side, each sub-request authorised with the
batch's token, and under a throttling profile a sub-request refused with 429 + Retry-After while its
siblings answer 200 (the envelope itself is 200). Counters: one `graph.batch` request plus each
sub-request under its own route."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from realism_env import RealismEnv
from test_permissions_emulator import SPEC

from driveferry.emulator.seed import seed_emulator


class Env(RealismEnv):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        seed_emulator(self.emu, SPEC)
        self.graph = self.session(self.creds["microsoft"]["access_token"])
        self.api = self.creds["graph"]["api_root"]

    def item_id(self, path: str) -> str:
        r = self.graph.get(f"{self.api}/me/drive/root:/{path}")
        assert r.status_code == 200, r.text
        return str(r.json()["id"])

    def batch(self, requests_: list[dict[str, Any]], session: requests.Session | None = None) -> requests.Response:
        return (session or self.graph).post(f"{self.api}/$batch", json={"requests": requests_})

    def requests_by_route(self) -> dict[str, int]:
        r = self.ctl.get(self.base + "/_emulator/counters")
        assert r.status_code == 200, r.text
        out: dict[str, int] = r.json()["requests"]
        return out


@pytest.fixture()
def env(tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path / "emu")
    yield e
    e.emu.stop()


def _perm_reads(ids: list[str]) -> list[dict[str, Any]]:
    return [{"id": f"r{n}", "method": "GET", "url": f"/me/drive/items/{i}/permissions"} for n, i in enumerate(ids)]


def test_twenty_reads_answer_by_id_with_the_single_reads_bodies(env: Env) -> None:
    plan = env.item_id("Team/Shared/plan.txt")
    single = env.graph.get(f"{env.api}/me/drive/items/{plan}/permissions").json()["value"]
    before = env.requests_by_route()
    r = env.batch(_perm_reads([plan] * 20))
    assert r.status_code == 200, r.text
    answers = r.json()["responses"]
    assert [a["id"] for a in answers] != [f"r{n}" for n in range(20)]  # any order: pair by id
    assert sorted(a["id"] for a in answers) == sorted(f"r{n}" for n in range(20))
    assert all(a["status"] == 200 and a["body"]["value"] == single for a in answers)
    assert {_who(p) for p in single} >= {"link:organization", "link:users", "link:anonymous"}
    after = env.requests_by_route()
    assert after["graph.batch"] - before.get("graph.batch", 0) == 1
    assert after["graph.permissions.list"] - before["graph.permissions.list"] == 20  # sub-requests, by route


def test_more_than_twenty_or_not_json_is_400_and_nothing_runs(env: Env) -> None:
    plan = env.item_id("Team/Shared/plan.txt")
    before = env.requests_by_route()
    r = env.batch(_perm_reads([plan] * 21))
    assert r.status_code == 400 and r.json()["error"]["code"] == "BadRequest"
    bad = env.graph.post(f"{env.api}/$batch", data=b"{not json", headers={"Content-Type": "application/json"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "BadRequest"
    dup = env.batch([{"id": "1", "method": "GET", "url": "/me/drive/root"}] * 2)
    assert dup.status_code == 400  # ids must be unique in a batch
    assert env.requests_by_route().get("graph.permissions.list", 0) == before.get("graph.permissions.list", 0) == 0


def test_found_and_missing_items_and_other_routes_in_one_batch(env: Env) -> None:
    folder = env.item_id("Team/Shared")
    r = env.batch([*_perm_reads([folder, "NOPE123"]),
                   {"id": "item", "method": "GET", "url": f"/me/drive/items/{folder}?$select=id,name"},
                   {"id": "kids", "method": "GET", "url": f"/me/drive/items/{folder}/children"},
                   {"id": "abs", "method": "GET", "url": "https://graph.microsoft.com/v1.0/me/drive/root"}])
    assert r.status_code == 200
    by_id = {a["id"]: a for a in r.json()["responses"]}
    assert by_id["r0"]["status"] == 200
    assert {_who(p) for p in by_id["r0"]["body"]["value"]} >= {"user:bob@contoso.com", "group:sales@contoso.com"}
    assert by_id["r1"]["status"] == 404 and by_id["r1"]["body"]["error"]["code"] == "itemNotFound"
    assert by_id["item"]["status"] == 200 and by_id["item"]["body"]["name"] == "Shared"
    assert {c["name"] for c in by_id["kids"]["body"]["value"]} == {"plan.txt", "deep", "alone.txt"}
    assert by_id["abs"]["status"] == 400  # sub-request URLs are relative


def test_each_sub_request_is_authorised_with_the_batch_token(env: Env) -> None:
    r = env.batch(_perm_reads(["x"]), session=env.session("not-a-token"))
    assert r.status_code == 401  # the envelope itself needs a valid token
    folder = env.item_id("Team/Shared")
    ok = env.batch([{"id": "1", "method": "GET", "url": f"/me/drive/items/{folder}/permissions",
                     "headers": {"Accept": "application/json"}}])
    assert ok.json()["responses"][0]["status"] == 200


def test_a_throttled_sub_request_gets_429_with_retry_after_while_its_siblings_answer(env: Env) -> None:
    # every 3rd Graph call of the user starts a throttle episode; calls in it are refused too
    env.realism({"graph": {"throttle": {"retry_after_s": [30], "every_requests": 3}}})
    plan = env.item_id("Team/Shared/plan.txt")  # the user's call 1
    r = env.batch(_perm_reads([plan] * 4))  # calls 2 to 5 (the envelope is not charged): 3 starts the episode
    assert r.status_code == 200  # the batch answers 200 whatever its sub-requests got
    by_id = {a["id"]: a for a in r.json()["responses"]}
    assert [by_id[f"r{n}"]["status"] for n in range(4)] == [200, 429, 429, 429]
    refused = by_id["r1"]
    assert refused["headers"]["Retry-After"] == "30"
    assert refused["body"]["error"]["code"] == "activityLimitReached"
    counters = env.counters()
    assert counters["graph.batch_subrequests"] == 4 and counters["graph.throttled"] == 3
    env.advance(30)
    again = env.batch(_perm_reads([plan]))
    assert again.json()["responses"][0]["status"] == 200


def _who(p: dict[str, Any]) -> str:
    g = p.get("grantedToV2") or {}
    for k in ("user", "group", "siteUser"):
        if k in g:
            return f"{k}:{g[k]['email']}"
    return f"link:{p['link']['scope']}" if "link" in p else "other"


def test_a_batch_is_one_round_trip_of_latency_not_one_per_sub_request(env: Env) -> None:
    """`latency_ms` stands for a WAN round trip: a `$batch` of 20 pays one, as one HTTP call does
    (learn.microsoft.com/en-us/graph/json-batching: combining requests saves network latency)."""
    plan = env.item_id("Team/Shared/plan.txt")
    env.realism({"latency_ms": 1})
    before = env.counters().get("latency.round_trips", 0)
    assert env.batch(_perm_reads([plan] * 20)).status_code == 200
    assert env.counters()["latency.round_trips"] - before == 1
    assert env.graph.get(f"{env.api}/me/drive/items/{plan}/permissions").status_code == 200
    assert env.counters()["latency.round_trips"] - before == 2
