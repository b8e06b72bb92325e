"""Drive errors -> the driveferry taxonomy. The only code that reads Drive status codes and error JSON.

`translate()` accepts what the HTTP layer can throw or return: a googleapiclient `HttpError`, a raw
`(httplib2.Response, content)` pair from the authorized http, a google-auth refresh/transport error, or
a socket / httplib2 / http.client error. Messages carry the operation, status, reason and Drive's own
message; never a token, and never an upload session URI (it is a bearer capability).
"""

from __future__ import annotations

import email.utils
import http.client
import json
import socket
import ssl
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httplib2
from google.auth import exceptions as auth_exceptions
from googleapiclient.errors import HttpError

from driveferry.errors import (
    AlreadyExistsError,
    DriveferryError,
    NotFoundError,
    PermanentError,
    PermissionDeniedError,
    QuotaExceededError,
    ThrottledError,
    TransientError,
    UnsupportedError,
    UploadSessionLostError,
)

# The daily upload cap (~750 GB/day) is a 403 userRateLimitExceeded whose message is exactly this
# (api-notes 5.2; rclone --drive-stop-on-upload-limit keys on the same string); it has also appeared
# with reason rateLimitExceeded (rclone backend/drive/drive.go accepts both: api-notes Part C §19).
# Everything else with those reasons is the per-minute rate limit, which is transient.
DAILY_CAP_MESSAGE = "User rate limit exceeded."
_CAP_REASONS = frozenset({"userRateLimitExceeded", "rateLimitExceeded"})

# Drive promises no Retry-After on rate limits (api-notes 5.2, Part C §18): 0 tells the retry policy
# "no hint", so it backs off exponentially (developers.google.com/drive/api/guides/limits).
THROTTLE_HINT_S = 0.0

# sharingRateLimitExceeded: too many sharing requests; Drive's error guide says to back off the same way
_THROTTLE_REASONS = frozenset({"userRateLimitExceeded", "rateLimitExceeded", "sharingRateLimitExceeded"})
_UNSUPPORTED_REASONS = frozenset({"fileNotDownloadable", "cannotDownloadAbusiveFile",
                                  "exportSizeLimitExceeded"})
# storage full: 403 quotaExceeded "The user has exceeded their Drive storage quota" (api-notes Part C §19)
_STORAGE_REASONS = frozenset({"storageQuotaExceeded", "quotaExceeded", "teamDriveFileLimitExceeded"})
_PERMISSION_REASONS = frozenset({"insufficientPermissions", "insufficientFilePermissions", "forbidden",
                                 "appNotAuthorizedToFile", "domainPolicy", "authError"})


def translate(source: BaseException | httplib2.Response, content: bytes = b"", *,
              what: str = "drive request", upload_session: bool = False) -> DriveferryError:
    """Map one failure to the error that names the caller's next action.

    `source` is an exception, or a non-2xx `httplib2.Response` whose body is `content`. `what` names
    the operation (e.g. "list folder 1AbC") for the message. With `upload_session` (a PUT to a session
    URI), 404 and 410 mean the session expired: UploadSessionLostError. Translated errors pass through.
    """
    if isinstance(source, DriveferryError):
        return source
    status = int(source.resp.status if isinstance(source, HttpError) else getattr(source, "status", 0))
    if upload_session and status in (404, 410):
        # Drive documents 404 for an expired session; GCS uses 410 for the same (api-notes 4.3)
        return UploadSessionLostError(f"{what}: upload session expired or unknown (HTTP {status}); "
                                      "restart the file", status=status)
    if isinstance(source, HttpError):
        return _from_status(status, source.resp, source.content or b"", what)
    if isinstance(source, httplib2.Response):
        return _from_status(status, source, content, what)
    if isinstance(source, auth_exceptions.RefreshError):
        # google-auth already retried the retryable refresh failures (5xx, 429, temporarily_unavailable);
        # what is left means the refresh token or key was rejected: revoked, expired or wrong.
        if getattr(source, "retryable", False):
            return TransientError(f"{what}: token refresh failed temporarily ({type(source).__name__})")
        return PermissionDeniedError(f"{what}: credentials rejected while refreshing the access token "
                                     "(revoked or expired; re-authorise the remote)", status=401)
    if isinstance(source, auth_exceptions.TransportError):
        return TransientError(f"{what}: token endpoint unreachable ({type(source).__name__})")
    if isinstance(source, (httplib2.HttpLib2Error, http.client.HTTPException, socket.timeout,
                           ssl.SSLError, ConnectionError, TimeoutError, OSError)):
        return TransientError(f"{what}: network error ({type(source).__name__}: {_short(source)})")
    return PermanentError(f"{what}: unexpected {type(source).__name__}: {_short(source)}")


def _from_status(status: int, headers: Mapping[str, str], content: bytes, what: str) -> DriveferryError:
    reason, message = parse_error_body(content)
    text = f"{what}: HTTP {status}" + (f" {reason}" if reason else "") + (f": {message}" if message else "")
    kw: dict[str, Any] = {"status": status, "code": reason}
    retry_after = _retry_after_s(headers)
    if status == 401:
        return PermissionDeniedError(text + " (credentials expired or revoked)", **kw)
    if reason in _CAP_REASONS and message == DAILY_CAP_MESSAGE:
        resets = datetime.now(UTC) + timedelta(seconds=retry_after) if retry_after is not None else None
        return QuotaExceededError(text + " (daily upload cap)", kind="daily_upload", resets_at=resets, **kw)
    if reason in _THROTTLE_REASONS or status == 429:
        return ThrottledError(text, retry_after_s=THROTTLE_HINT_S if retry_after is None else retry_after,
                              **kw)
    if reason in _STORAGE_REASONS:
        return QuotaExceededError(text, kind="storage", **kw)
    if reason == "downloadQuotaExceeded":
        return QuotaExceededError(text, kind="daily_download", **kw)
    if reason in _UNSUPPORTED_REASONS:
        return UnsupportedError(text, **kw)
    if status == 404:
        return NotFoundError(text, **kw)
    if status == 409:
        return AlreadyExistsError(text, **kw)
    if status >= 500 or status == 408:
        return TransientError(text, **kw)
    if reason in _PERMISSION_REASONS:
        return PermissionDeniedError(text, **kw)
    return PermanentError(text, **kw)


def parse_error_body(content: bytes) -> tuple[str | None, str | None]:
    """(reason, message) from a Drive error body; (None, None) when it is not Drive's JSON shape.

    The reason comes from error.errors[0].reason: HttpError.reason is the *message* (api-notes 5.1).
    """
    try:
        err = json.loads(content.decode("utf-8", "replace"))["error"]
    except (ValueError, KeyError, TypeError):
        text = content.decode("utf-8", "replace").strip()
        return None, text[:200] or None
    if not isinstance(err, dict):
        return None, str(err)[:200]
    reason = None
    items = err.get("errors")
    if isinstance(items, list) and items and isinstance(items[0], dict):
        reason = items[0].get("reason")
    if reason is None and isinstance(err.get("status"), str):
        reason = err["status"]
    message = err.get("message")
    if message is None and isinstance(items, list) and items and isinstance(items[0], dict):
        message = items[0].get("message")
    return (str(reason) if reason else None), (str(message) if message is not None else None)


def _retry_after_s(headers: Mapping[str, str]) -> float | None:
    """Seconds from a Retry-After header, else None. Both forms of RFC 9110 §10.2.3: delta-seconds, or
    an HTTP-date, taken relative to the response's own Date header when it has one (so a server whose
    clock differs from ours, or an emulator with a scaled clock, is read in its own time)."""
    value = headers.get("retry-after") or headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    date = headers.get("date") or headers.get("Date")
    try:
        now = email.utils.parsedate_to_datetime(date) if date else datetime.now(UTC)
    except (TypeError, ValueError):
        now = datetime.now(UTC)
    return max(0.0, (when - now).total_seconds())


def _short(exc: BaseException) -> str:
    return str(exc)[:200] or "no detail"
