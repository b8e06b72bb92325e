"""errors.translate: Graph statuses and (nested) error codes -> the taxonomy; no secrets in messages."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import requests

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
from driveferry.providers.onedrive.errors import (
    FragmentRejectedError,
    ResyncRequiredError,
    error_codes,
    parse_retry_after,
    translate,
)

SECRET_URL = "https://host/_graphdl/abc?tempauth=SECRET"


def response(status: int, body: object = None, headers: dict[str, str] | None = None,
             url: str = "https://graph.example/v1.0/drives/d/items/x?tempauth=SECRET") -> requests.Response:
    resp = requests.Response()
    resp.status_code = status
    resp._content = json.dumps(body).encode() if body is not None else b""
    resp.headers.update(headers or {})
    req = requests.Request("GET", url).prepare()
    resp.request = req
    resp.url = url
    return resp


def graph_error(code: str, *inner: str) -> dict[str, object]:
    node: dict[str, object] = {"code": code, "message": "words we must not match on"}
    top = node
    for i, c in enumerate(inner):
        child: dict[str, object] = {"code": c}
        node["innerError" if i % 2 == 0 else "innererror"] = child
        node = child
    return {"error": top}


def test_error_codes_walks_both_spellings() -> None:
    assert error_codes(graph_error("activityLimitReached", "throttledRequest", "quota")) == [
        "activityLimitReached", "throttledRequest", "quota"]
    assert error_codes({"nope": 1}) == [] and error_codes(None) == []


@pytest.mark.parametrize("value, expected", [("2.128", 2.128), ("41", 41.0), ("0", 0.0), (None, None), ("soon", None)])
def test_retry_after_seconds(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_retry_after_http_date() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    when = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(when, now=now.timestamp()) == pytest.approx(30.0)


@pytest.mark.parametrize("status, body, headers, cls", [
    (429, graph_error("activityLimitReached", "throttledRequest"), {"Retry-After": "0.2"}, ThrottledError),
    (503, graph_error("serviceNotAvailable"), {"Retry-After": "3"}, ThrottledError),
    (503, None, {}, TransientError),
    (500, graph_error("generalException"), {}, TransientError),
    (502, None, {}, TransientError),
    (504, None, {}, TransientError),
    (509, None, {}, TransientError),
    (401, graph_error("InvalidAuthenticationToken"), {}, PermissionDeniedError),
    (403, graph_error("accessDenied"), {}, PermissionDeniedError),
    (404, graph_error("itemNotFound"), {}, NotFoundError),
    (409, graph_error("nameAlreadyExists"), {}, AlreadyExistsError),
    (507, graph_error("quotaLimitReached"), {}, QuotaExceededError),
    (416, graph_error("invalidRange", "fragmentOverlap"), {}, FragmentRejectedError),
    (400, graph_error("invalidRequest", "fragmentOutOfOrder"), {}, FragmentRejectedError),
    (400, graph_error("invalidRequest", "fragmentLengthMismatch"), {}, PermanentError),
    (406, graph_error("notSupported"), {}, UnsupportedError),
    (410, graph_error("resyncRequired", "resyncChangesApplyDifferences"), {"Location": "https://x/delta"},
     ResyncRequiredError),
    (400, graph_error("invalidRequest", "pathIsTooLong"), {}, PermanentError),
])
def test_statuses(status: int, body: object, headers: dict[str, str], cls: type[Exception]) -> None:
    err = translate(response(status, body, headers))
    assert type(err) is cls
    assert "SECRET" not in str(err)


def test_throttle_carries_fractional_retry_after() -> None:
    err = translate(response(429, graph_error("TooManyRequests", "429"), {"Retry-After": "2.128"}))
    assert isinstance(err, ThrottledError) and err.retry_after_s == pytest.approx(2.128)
    assert err.code == "TooManyRequests"


def test_quota_is_storage_and_resync_keeps_location() -> None:
    q = translate(response(507, graph_error("quotaLimitReached")))
    assert isinstance(q, QuotaExceededError) and q.kind == "storage" and q.resets_at is None
    r = translate(response(410, graph_error("resyncRequired"), {"Location": "https://x/delta?token=1"}))
    assert isinstance(r, ResyncRequiredError) and r.location == "https://x/delta?token=1"


def test_upload_session_404_is_session_lost() -> None:
    assert isinstance(translate(response(404, graph_error("itemNotFound"), url=SECRET_URL), what="upload",
                                upload_session=True), UploadSessionLostError)


def test_exceptions_are_transient_and_leak_no_url() -> None:
    exc = requests.ConnectionError(f"HTTPSConnectionPool: Max retries exceeded with url: {SECRET_URL}")
    err = translate(exc, what="GET download URL")
    assert isinstance(err, TransientError) and "SECRET" not in str(err)
    assert isinstance(translate(requests.ReadTimeout("x")), TransientError)
    done = NotFoundError("already translated")
    assert translate(done) is done


def test_urllib3_request_lines_lose_their_query() -> None:
    import driveferry.providers.onedrive.api  # noqa: F401  (installs the filter)
    logger = logging.getLogger("urllib3.connectionpool")
    record = logger.makeRecord(logger.name, logging.DEBUG, __file__, 1, '%s://%s:%s "%s %s %s" %s %s',
                               ("https", "h", 443, "PUT", "/x/uploadSession?guid=1&tempauth=SECRET", "HTTP/1.1",
                                202, 0), None)
    for f in logger.filters:
        f.filter(record)
    assert "SECRET" not in record.getMessage() and "/x/uploadSession" in record.getMessage()
