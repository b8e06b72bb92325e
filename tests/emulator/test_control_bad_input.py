"""Every `/_emulator/...` control endpoint answers bad JSON or wrongly typed values with a 4xx JSON error
(never a 500), and the emulator keeps working afterwards: the same endpoints accept a good request."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from driveferry.emulator.seed import seed_emulator
from driveferry.emulator.server import Emulator

NOT_JSON = b"{not json"
NOT_UTF8 = b'{"a": "\xff"}'
ARRAY = b"[1, 2]"

# (method, path, bad bodies); each body is sent raw with Content-Type: application/json
ENDPOINTS: list[tuple[str, str, list[bytes]]] = [
    ("PUT", "/faults", [NOT_JSON, NOT_UTF8, ARRAY, b'{"rules": 3}', b'{"rules": [{"kind": "melt"}]}',
                        b'{"rules": [{"kind": "status", "rate": "often"}]}', b'{"seed": "x"}',
                        b'{"rules": [{"kind": "status", "status": "503"}]}', b'{"rules": [3]}',
                        b'{"rules": [{"kind": "latency", "latency_ms": -5}]}', b'{"bandwidth_bps": [1]}']),
    ("POST", "/clock", [NOT_JSON, NOT_UTF8, ARRAY, b'{"advance_s": "soon"}', b'{"advance_s": [1]}',
                        b'{"advance_s": 1e999}', b'{"advance_s": true}']),
    ("PUT", "/realism", [NOT_JSON, NOT_UTF8, ARRAY, b'{"clock_scale": "fast"}', b'{"drive": 3}']),
    ("POST", "/realism/storm", [NOT_JSON, NOT_UTF8, ARRAY, b'{"api": 3, "duration_s": 1}',
                                b'{"api": "drive", "duration_s": "long"}']),
    ("POST", "/graph/corrupt", [NOT_JSON, NOT_UTF8, ARRAY, b'{"item_id": 5}', b'{"item_id": "x", "offset": "mid"}',
                                b'{"item_id": "x", "offset": [1]}']),
    ("POST", "/graph/drop-hash", [NOT_JSON, NOT_UTF8, ARRAY, b'{"item_id": 5}', b'{"item_id": ["a"]}']),
    ("POST", "/graph/quota", [NOT_JSON, NOT_UTF8, ARRAY, b'{"total": "lots"}', b'{"total": -1}', b'{"total": true}']),
    ("POST", "/drive/corrupt", [NOT_JSON, NOT_UTF8, ARRAY, b'{"file_id": 5}', b'{"file_id": "x", "offset": "mid"}']),
    ("PUT", "/drive/limits", [NOT_JSON, NOT_UTF8, ARRAY, b'{"daily_upload_bytes": "many"}',
                              b'{"storage_limit_bytes": -3}', b'{"daily_upload_bytes": true}']),
    ("POST", "/identity/approve", [NOT_JSON, NOT_UTF8, ARRAY, b'{"user_code": 5}', b'{"user_code": ["x"]}']),
    ("POST", "/identity/google/clients", [NOT_JSON, NOT_UTF8, ARRAY, b'{"client_id": 5}', b'{"client_id": ""}']),
]
CASES = [(m, p, b) for m, p, bodies in ENDPOINTS for b in bodies]


class Ctl:
    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.http = requests.Session()
        self.http.trust_env = False

    def send(self, method: str, path: str, body: bytes | None = None, **kw: Any) -> requests.Response:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        return self.http.request(method, self.emu.base_url + "/_emulator" + path, data=body, headers=headers,
                                 timeout=30, **kw)


@pytest.fixture(scope="module")
def ctl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ctl]:
    d: Path = tmp_path_factory.mktemp("ctl")
    with Emulator(d / "emu") as emu:
        seed_emulator(emu, {"seed": 1, "onedrive": {"files": [{"path": "a.bin", "size": "4K"}]},
                            "gdrive": {"files": [{"path": "a.bin", "size": "4K"}]}})
        yield Ctl(emu)


@pytest.mark.parametrize("method,path,body", CASES, ids=[f"{m} {p} {b[:30]!r}" for m, p, b in CASES])
def test_bad_body_is_a_json_4xx(ctl: Ctl, method: str, path: str, body: bytes) -> None:
    before = ctl.send("GET", "/faults").json()
    r = ctl.send(method, path, body)
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    assert r.headers["Content-Type"].startswith("application/json")
    error = r.json()["error"]
    message = error["message"] if isinstance(error, dict) else r.json().get("error_description", error)
    assert isinstance(message, str) and message
    assert ctl.send("GET", "/faults").json() == before  # a refused plan replaced nothing


def test_good_calls_still_work_after_the_bad_ones(ctl: Ctl) -> None:
    for method, path, body in CASES:  # run the whole table again, then the endpoints with good bodies
        ctl.send(method, path, body)
    assert ctl.send("PUT", "/faults", b'{"seed": 3, "rules": [{"kind": "latency", "route": "x", "latency_ms": 1}]}'
                    ).json()["rules"][0]["latency_ms"] == 1
    clock = ctl.send("POST", "/clock", b'{"advance_s": 60}')
    assert clock.status_code == 200 and clock.json()["offset_s"] >= 59
    assert ctl.send("POST", "/graph/quota", b'{"total": 1000000000}').status_code == 200
    storm = ctl.send("POST", "/realism/storm", b'{"api": "drive", "duration_s": 0}')
    assert storm.status_code == 200
    assert ctl.send("PUT", "/drive/limits", b'{"daily_upload_bytes": 1000000}').json()["daily_upload_bytes"] == 1000000
    assert ctl.send("GET", "/counters").status_code == 200
