"""Drive's wire errors: one exception type the model raises, and the JSON body Google sends.

Every Drive error leaves the emulator in Google's shape (api-notes 5.1):

    {"error": {"code": 404, "message": "File not found: X.",
               "errors": [{"domain": "global", "reason": "notFound", "message": "File not found: X.",
                           "locationType": "parameter", "location": "fileId"}]}}

googleapiclient reads `errors[0].reason` to decide on retries (403 is retried only for
userRateLimitExceeded / rateLimitExceeded), so the reason codes here are the real ones.
"""

from __future__ import annotations

from driveferry.emulator.http import Response, WireError

# Reasons Google files under "usageLimits" rather than "global" (api-notes 5.2).
_USAGE_LIMIT_REASONS = frozenset({"userRateLimitExceeded", "rateLimitExceeded", "dailyLimitExceeded",
                                  "quotaExceeded"})

# The server's generic codes, mapped to Drive's reason names.
_CODE_ALIASES = {"unauthenticated": "authError", "methodNotAllowed": "badRequest"}

DAILY_CAP_MESSAGE = "User rate limit exceeded."  # exact string rclone keys on (api-notes 5.2)
STORAGE_QUOTA_MESSAGE = "The user's Drive storage quota has been exceeded."


class DriveError(Exception):
    """A Drive API error: raised by the model and the routes, turned into a response at the edge."""

    def __init__(self, status: int, reason: str, message: str, *, location: str | None = None,
                 location_type: str | None = None, domain: str | None = None,
                 headers: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.location = location
        self.location_type = location_type
        self.domain = domain or ("usageLimits" if reason in _USAGE_LIMIT_REASONS else "global")
        self.headers = headers or []

    def response(self) -> Response:
        item: dict[str, str] = {"domain": self.domain, "reason": self.reason, "message": self.message}
        if self.location is not None:
            item["locationType"] = self.location_type or "parameter"
            item["location"] = self.location
        body = {"error": {"code": self.status, "message": self.message, "errors": [item]}}
        return Response.json(body, self.status, self.headers)

    def wire(self) -> WireError:
        return WireError(self.response())


def drive_errors(status: int, code: str, message: str) -> Response:
    """The error factory the server uses for faults, auth failures and unknown paths.

    `code` becomes the reason (e.g. an injected fault with code "backendError"); a 401 gets the
    Authorization location real Drive reports.
    """
    reason = _CODE_ALIASES.get(code, code)
    if status == 401:
        return DriveError(401, "authError", message, location="Authorization", location_type="header").response()
    return DriveError(status, reason, message).response()


# --- the errors the model and routes raise, named for what went wrong -------------------------------------

def not_found(file_id: str) -> DriveError:
    return DriveError(404, "notFound", f"File not found: {file_id}.", location="fileId")


def bad_request(message: str, location: str | None = None) -> DriveError:
    return DriveError(400, "badRequest", message, location=location)


def invalid_value(location: str, message: str = "Invalid Value") -> DriveError:
    """400 `invalid` on a parameter (the shape real Drive uses for a bad q)."""
    return DriveError(400, "invalid", message, location=location)


def invalid_fields(selector: str) -> DriveError:
    return DriveError(400, "invalidParameter", f"Invalid field selection {selector}", location="fields")


def daily_cap_exceeded() -> DriveError:
    # Same text as top-level and item message; not transient for up to 24 h (api-notes 5.2).
    return DriveError(403, "userRateLimitExceeded", DAILY_CAP_MESSAGE)


def storage_quota_exceeded() -> DriveError:
    return DriveError(403, "storageQuotaExceeded", STORAGE_QUOTA_MESSAGE)


def field_not_writable(field: str) -> DriveError:
    return DriveError(403, "fieldNotWritable", "The resource body includes fields which are not directly writable.",
                      location=field)


def not_downloadable() -> DriveError:
    return DriveError(403, "fileNotDownloadable", "Only files with binary content can be downloaded. "
                      "Use Export with Docs Editors files.", location="alt")


def range_not_satisfiable(size: int) -> DriveError:
    # googleapiclient reads content-range unguarded on a 416, so it must be present (api-notes 4.1).
    return DriveError(416, "requestedRangeNotSatisfiable", "Request range not satisfiable",
                      location="Range", location_type="header",
                      headers=[("Content-Range", f"bytes */{size}")])


def session_not_found() -> DriveError:
    return DriveError(404, "notFound", "Upload session not found or expired. Restart the upload.",
                      location="upload_id")
