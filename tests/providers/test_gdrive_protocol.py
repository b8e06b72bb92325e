"""Drive adapter pieces that need no server: error translation and the sans-I/O upload protocol."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import httplib2
import pytest
from google.auth.exceptions import RefreshError
from googleapiclient.errors import HttpError

from driveferry.errors import (
    AlreadyExistsError,
    NotFoundError,
    PermanentError,
    PermissionDeniedError,
    QuotaExceededError,
    ThrottledError,
    TransientError,
    UnsupportedError,
    UploadSessionLostError,
)
from driveferry.providers.base import Entry, Kind
from driveferry.providers.gdrive import auth
from driveferry.providers.gdrive.errors import THROTTLE_HINT_S, translate
from driveferry.providers.gdrive.upload import (
    CHUNK_MULTIPLE,
    GDriveUploadSession,
    SessionToken,
    chunk_call,
    parse_reply,
    status_call,
)


def _resp(status: int, **headers: str) -> httplib2.Response:
    return httplib2.Response({"status": str(status), **{k.replace("_", "-"): v for k, v in headers.items()}})


def _body(reason: str, message: str, code: int = 403) -> bytes:
    return json.dumps({"error": {"code": code, "message": message,
                                 "errors": [{"domain": "usageLimits", "reason": reason, "message": message}]}}).encode()


def test_daily_cap_is_quota_not_throttle() -> None:
    err = translate(_resp(403), _body("userRateLimitExceeded", "User rate limit exceeded."))
    assert isinstance(err, QuotaExceededError) and not isinstance(err, TransientError)
    assert err.kind == "daily_upload" and err.resets_at is None and err.code == "userRateLimitExceeded"


def test_daily_cap_with_retry_after_estimates_reset() -> None:
    err = translate(_resp(403, retry_after="3600"), _body("userRateLimitExceeded", "User rate limit exceeded."))
    assert isinstance(err, QuotaExceededError) and err.resets_at is not None
    assert 3500 < (err.resets_at - datetime.now(UTC)).total_seconds() <= 3600


@pytest.mark.parametrize(("status", "reason", "message"), [
    (403, "userRateLimitExceeded", "User Rate Limit Exceeded"),
    (403, "rateLimitExceeded", "Rate Limit Exceeded"),
    (429, "rateLimitExceeded", "Rate Limit Exceeded"),
])
def test_rate_limits_throttle(status: int, reason: str, message: str) -> None:
    err = translate(_resp(status), _body(reason, message, status))
    assert isinstance(err, ThrottledError) and err.retry_after_s == THROTTLE_HINT_S
    assert translate(_resp(status, retry_after="7"), _body(reason, message, status)).retry_after_s == 7  # type: ignore[attr-defined]


@pytest.mark.parametrize(("status", "reason", "kind"), [
    (401, "authError", PermissionDeniedError),
    (403, "storageQuotaExceeded", QuotaExceededError),
    (403, "fileNotDownloadable", UnsupportedError),
    (403, "insufficientFilePermissions", PermissionDeniedError),
    (404, "notFound", NotFoundError),
    (409, "duplicate", AlreadyExistsError),
    (500, "backendError", TransientError),
    (503, "backendError", TransientError),
    (400, "badRequest", PermanentError),
])
def test_status_and_reason_mapping(status: int, reason: str, kind: type[Exception]) -> None:
    err = translate(_resp(status), _body(reason, "x", status))
    assert type(err) is kind
    assert err.status == status  # type: ignore[attr-defined]


def test_storage_quota_kind_and_http_error_input() -> None:
    exc = HttpError(_resp(403), _body("storageQuotaExceeded", "The user's Drive storage quota has been exceeded."))
    err = translate(exc, what="upload a")
    assert isinstance(err, QuotaExceededError) and err.kind == "storage" and str(err).startswith("upload a:")


def test_transport_failures_are_transient_and_refresh_failure_is_permission() -> None:
    for exc in (TimeoutError("t"), ConnectionResetError(), httplib2.ServerNotFoundError("x")):
        assert type(translate(exc)) is TransientError
    assert isinstance(translate(RefreshError("invalid_grant: Token has been expired or revoked.")),
                      PermissionDeniedError)


def test_non_json_error_body() -> None:
    err = translate(_resp(503), b"Invalid request.  According to the Content-Range header ...")
    assert type(err) is TransientError and "Content-Range" in str(err)


def test_chunk_calls_validate_alignment() -> None:
    size = 3 * CHUNK_MULTIPLE + 10
    call = chunk_call(size, CHUNK_MULTIPLE, b"x" * CHUNK_MULTIPLE, False)
    assert call.headers["content-range"] == f"bytes {CHUNK_MULTIPLE}-{2 * CHUNK_MULTIPLE - 1}/{size}"
    with pytest.raises(ValueError):
        chunk_call(size, 0, b"x" * 1000, False)  # not a 256 KiB multiple
    with pytest.raises(ValueError):
        chunk_call(size, 0, b"x" * CHUNK_MULTIPLE, True)  # "last" but ends early
    last = chunk_call(size, 3 * CHUNK_MULTIPLE, b"x" * 10, True)
    assert last.headers["content-range"] == f"bytes {3 * CHUNK_MULTIPLE}-{size - 1}/{size}"
    empty = chunk_call(0, 0, b"", True)
    assert "content-range" not in empty.headers and empty.body == b""
    assert status_call(size).headers["content-range"] == f"bytes */{size}"


def test_parse_reply() -> None:
    assert parse_reply(100, 308, {}, b"", "u").committed == 0  # no Range: nothing stored
    assert parse_reply(100, 308, {"range": "bytes=0-41"}, b"", "u").committed == 42
    done = parse_reply(100, 200, {}, b'{"id": "f1"}', "u")
    assert done.committed == 100 and done.done == {"id": "f1"}
    for status in (404, 410):
        with pytest.raises(UploadSessionLostError):
            parse_reply(100, status, {}, b"", "u")
    with pytest.raises(QuotaExceededError):
        parse_reply(100, 403, {}, _body("userRateLimitExceeded", "User rate limit exceeded."), "u")


def test_token_round_trip_and_garbage() -> None:
    tok = SessionToken(uri="https://h/upload?upload_id=1", size=5, parent="p", name="n", parent_path="a/b")
    assert SessionToken.loads(tok.dumps()) == tok
    with pytest.raises(UploadSessionLostError):
        SessionToken.loads("{not json")


def test_token_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "state" / "t.json"
    auth.write_private(path, "{}")
    assert path.stat().st_mode & 0o777 == 0o600


def test_credentials_from_section(tmp_path: Path) -> None:
    creds = auth.load_credentials({"client_id": "c", "client_secret": "s", "refresh_token": "r",
                                   "token_uri": "https://emu/token"}, name="g", state_dir=tmp_path)
    assert creds.refresh_token == "r" and creds.token_uri == "https://emu/token"  # type: ignore[attr-defined]
    static = auth.load_credentials({"access_token": "tok"}, name="g", state_dir=None)
    assert static.token == "tok"


class _ScriptedApi:
    """Stands in for DriveApi.raw with scripted replies, recording each request (sans-I/O test)."""

    def __init__(self, replies: list[tuple[int, dict[str, str], bytes] | Exception]) -> None:
        self.replies = replies
        self.calls: list[tuple[str, dict[str, str], int]] = []

    def raw(self, method: str, uri: str, *, body: bytes = b"", headers: dict[str, str] | None = None,
            what: str) -> tuple[httplib2.Response, bytes]:
        self.calls.append((method, dict(headers or {}), len(body)))
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        status, hdrs, content = reply
        return _resp(status, **hdrs), content


def _session(api: _ScriptedApi, size: int) -> GDriveUploadSession:
    tok = SessionToken(uri="https://h/u?upload_id=1", size=size, parent="p", name="n", parent_path="d")
    return GDriveUploadSession(api, tok, lambda raw, parent: Entry(id=raw["id"], path=f"{parent}/n", name="n",
                                                                     kind=Kind.FILE))  # type: ignore[arg-type]


def test_send_resends_the_tail_the_server_did_not_keep() -> None:
    size = 4 * CHUNK_MULTIPLE
    api = _ScriptedApi([(308, {"range": f"bytes=0-{CHUNK_MULTIPLE - 1}"}, b""),  # kept 1 of 3 units
                        (308, {"range": f"bytes=0-{3 * CHUNK_MULTIPLE - 1}"}, b""),
                        (200, {}, b'{"id": "f"}')])
    s = _session(api, size)
    assert s.send(0, b"x" * 3 * CHUNK_MULTIPLE, False) is None
    assert s.committed_offset == 3 * CHUNK_MULTIPLE
    assert api.calls[1][1]["content-range"] == f"bytes {CHUNK_MULTIPLE}-{3 * CHUNK_MULTIPLE - 1}/{size}"
    done = s.send(3 * CHUNK_MULTIPLE, b"y" * CHUNK_MULTIPLE, True)
    assert done is not None and done.path == "d/n" and s.result() is done


def test_send_after_a_failure_asks_the_server_first() -> None:
    size = 2 * CHUNK_MULTIPLE
    api = _ScriptedApi([TransientError("connection reset"),
                        (308, {"range": f"bytes=0-{CHUNK_MULTIPLE - 1}"}, b""),  # the status query
                        (201, {}, b'{"id": "f"}')])
    s = _session(api, size)
    with pytest.raises(TransientError):
        s.send(0, b"x" * CHUNK_MULTIPLE, False)
    assert s.send(0, b"x" * CHUNK_MULTIPLE, False) is None  # the retry finds the bytes already there
    assert api.calls[1][1]["content-range"] == f"bytes */{size}" and len(api.calls) == 2
    assert s.send(CHUNK_MULTIPLE, b"y" * CHUNK_MULTIPLE, True) is not None


def test_send_behind_the_server_is_transient_and_a_lost_session_is_reported() -> None:
    size = 3 * CHUNK_MULTIPLE
    api = _ScriptedApi([(308, {}, b""), (404, {}, b"")])
    s = _session(api, size)
    with pytest.raises(TransientError, match="fewer than the offset"):
        s.send(CHUNK_MULTIPLE, b"x" * CHUNK_MULTIPLE, False)
    with pytest.raises(UploadSessionLostError):
        s.committed()


def test_service_urls_for_google_and_for_an_emulator() -> None:
    from google.auth.credentials import AnonymousCredentials

    from driveferry.providers.gdrive.api import DriveApi
    real = DriveApi(AnonymousCredentials())  # type: ignore[no-untyped-call]
    assert real.service().files().list(q="x").uri.startswith("https://www.googleapis.com/drive/v3/files?")
    assert real.upload_url == "https://www.googleapis.com/upload/drive/v3/files"
    emu = DriveApi(AnonymousCredentials(), endpoint="https://127.0.0.1:8443/", ca_file="/ca.pem")  # type: ignore[no-untyped-call]
    assert emu.service().files().get(fileId="a").uri.startswith("https://127.0.0.1:8443/drive/v3/files/a?")
    assert emu.upload_url == "https://127.0.0.1:8443/upload/drive/v3/files"
    assert emu.http().http.ca_certs == "/ca.pem"
