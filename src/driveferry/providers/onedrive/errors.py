"""Microsoft Graph failures -> the driveferry error taxonomy, in one place.

`translate()` is the only code in the OneDrive adapter that reads HTTP status codes or Graph error JSON.
Graph nests specific codes under `innerError` / `innererror` (both spellings occur); we walk that chain
and match on codes, never on the human-readable messages, which Microsoft rewords freely.

Messages never carry secrets: callers pass a `what` label, and for requests that have none we show only
the method and the URL path. Download and upload URLs carry bearer capabilities (`tempauth`) in their
query, and sometimes in the path, so those callers always pass a label such as "download URL".
"""

from __future__ import annotations

import email.utils
import json
import ssl
import time
from typing import Any
from urllib.parse import urlsplit

import requests

from driveferry.errors import (
    AlreadyExistsError,
    DriveferryError,
    NotFoundError,
    PermanentError,
    PermissionDeniedError,
    ProviderError,
    QuotaExceededError,
    ThrottledError,
    TransientError,
    UnsupportedError,
    UploadSessionLostError,
    UserError,
)

DEFAULT_THROTTLE_S = 5.0  # a 429 without Retry-After (rare) still deserves a real pause

_FRAGMENT_CODES = frozenset({"invalidRange", "fragmentOverlap", "fragmentOutOfOrder"})
_TRANSIENT_STATUSES = frozenset({500, 502, 504})
# Graph throttles with 429 (activityLimitReached), 503 (serviceNotAvailable) and, on SharePoint, 509
# (bandwidthLimitExceeded), each with Retry-After (learn.microsoft.com/graph/throttling; SharePoint
# "avoid getting throttled or blocked"; api-notes Part C §18).
_THROTTLE_STATUSES = frozenset({429, 503, 509})
_THROTTLE_CODES = frozenset({"activityLimitReached", "throttledRequest", "tooManyRequests"})


class FragmentRejectedError(PermanentError):
    """A fragment did not fit the server's view of the session (416, or 400 with a fragment code).

    Handled inside upload.py by asking the server for `nextExpectedRanges` and re-basing; it escapes only
    if re-basing itself fails, and then retrying the same bytes blindly would not help.
    """


class UploadOutOfSyncError(TransientError):
    """The server expects bytes from `committed_offset`, before the chunk we hold: re-read from there."""

    def __init__(self, message: str, *, committed_offset: int) -> None:
        super().__init__(message)
        self.committed_offset = committed_offset


class ResyncRequiredError(ProviderError):
    """A delta token is too old (410 resyncRequired): enumerate again from `location`, if given."""

    def __init__(self, message: str, *, location: str | None, status: int | None = None,
                 code: str | None = None) -> None:
        super().__init__(message, status=status, code=code)
        self.location = location


def error_codes(body: Any) -> list[str]:
    """The Graph error codes of a JSON error body, outermost first (empty if it is not one)."""
    codes: list[str] = []
    node = body.get("error") if isinstance(body, dict) else None
    while isinstance(node, dict):
        code = node.get("code")
        if isinstance(code, str) and code:
            codes.append(code)
        node = node.get("innerError", node.get("innererror"))
    return codes


def parse_retry_after(value: str | None, *, now: float | None = None, date: str | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: seconds (Graph sends fractions like "2.128") or an
    HTTP-date, relative to `now` (epoch seconds), else to the response's `date` header, else our clock
    (RFC 9110 §10.2.3; a server's Date keeps us in its own time, scaled emulator clocks included)."""
    if not value:
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if now is None and date:
        try:
            now = email.utils.parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError):
            now = None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def describe(response: requests.Response) -> str:
    """`METHOD /path` of the request behind `response`, without the query (which may hold tempauth)."""
    req = response.request
    path = urlsplit(req.url or "").path if req is not None else ""
    return f"{req.method if req is not None else 'request'} {path}"


def translate(failure: requests.Response | BaseException, *, what: str | None = None,
              upload_session: bool = False) -> DriveferryError:
    """The DriveferryError for a failed Graph response or a transport exception.

    `what` names the operation in the message (always pass one for capability URLs). `upload_session`
    marks requests to an upload URL, where 404 means the session is gone. A DriveferryError passes
    through unchanged.
    """
    if isinstance(failure, DriveferryError):
        return failure
    if isinstance(failure, BaseException):
        return _translate_exception(failure, what or "request")
    return _translate_response(failure, what or describe(failure), upload_session)


def _cert_rejected(exc: BaseException) -> bool:
    """Whether a TLS certificate check failed somewhere in the exception chain (wrong or missing ca_file)."""
    seen: set[int] = set()
    stack: list[object] = [exc]
    while stack:
        e = stack.pop()
        if not isinstance(e, BaseException) or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, ssl.SSLCertVerificationError):
            return True
        stack.extend([e.__cause__, e.__context__, *e.args, getattr(e, "reason", None)])
    return False


def _translate_exception(exc: BaseException, what: str) -> DriveferryError:
    # str(exc) of a requests error embeds the URL (with tempauth): report the type only.
    kind = type(exc).__name__
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return _translate_response(exc.response, what, False)
    if _cert_rejected(exc):  # retrying cannot help; the configuration must change
        return UserError(f"{what}: the server's TLS certificate is not trusted; check the remote's ca_file")
    if isinstance(exc, requests.Timeout | requests.ConnectionError | requests.exceptions.ChunkedEncodingError
                  | ConnectionError | TimeoutError):
        return TransientError(f"{what}: connection failed ({kind})")
    if isinstance(exc, requests.RequestException):
        return TransientError(f"{what}: HTTP transport error ({kind})")
    return PermanentError(f"{what}: unexpected {kind}")


def _translate_response(resp: requests.Response, what: str, upload_session: bool) -> DriveferryError:
    status = resp.status_code
    try:
        body = json.loads(resp.content) if resp.content else None
    except ValueError:
        body = None
    codes = error_codes(body)
    code = codes[0] if codes else None
    msg = f"{what}: HTTP {status}" + (f" ({'/'.join(codes)})" if codes else "")
    kw: dict[str, Any] = {"status": status, "code": code}

    if status in _THROTTLE_STATUSES or _THROTTLE_CODES.intersection(codes):
        delay = parse_retry_after(resp.headers.get("Retry-After"), date=resp.headers.get("Date"))
        if delay is not None or status == 429 or _THROTTLE_CODES.intersection(codes):
            return ThrottledError(msg, retry_after_s=DEFAULT_THROTTLE_S if delay is None else delay, **kw)
        return TransientError(msg, **kw)  # 503/509 without Retry-After: back off exponentially
    if status in _TRANSIENT_STATUSES:
        return TransientError(msg, **kw)
    if status == 401:
        return PermissionDeniedError(msg + "; the access token was rejected", **kw)
    if status == 507 or "quotaLimitReached" in codes:
        return QuotaExceededError(msg + "; OneDrive storage is full", kind="storage", **kw)
    if status == 416 or (status == 400 and _FRAGMENT_CODES.intersection(codes)):
        return FragmentRejectedError(msg, **kw)
    if status == 410 and "resyncRequired" in codes:
        return ResyncRequiredError(msg, location=resp.headers.get("Location"), **kw)
    if "notSupported" in codes or "packageNotDownloadable" in codes:
        return UnsupportedError(msg, **kw)
    if status == 403:
        return PermissionDeniedError(msg, **kw)
    if status == 404:
        # On an upload URL a 404 means the session expired or never existed (Graph docs: "start the
        # entire upload over").
        if upload_session:
            return UploadSessionLostError(msg + "; the upload session is gone", **kw)
        return NotFoundError(msg, **kw)
    if status == 409 and "nameAlreadyExists" in codes:
        return AlreadyExistsError(msg, **kw)
    if status == 423:
        # SharePoint locks files that are open for co-authoring; the lock clears on its own.
        return TransientError(msg + "; the item is locked", **kw)
    return PermanentError(msg, **kw)
