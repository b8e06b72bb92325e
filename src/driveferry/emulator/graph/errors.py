"""Graph wire errors: the exceptions the model raises and the JSON body Graph sends for them.

Graph's error body (api-notes 12.1):

    {"error": {"code": "itemNotFound", "message": "...",
               "innerError": {"code": "<specific>", "date": "...", "request-id": "...",
                              "client-request-id": "..."}}}

Clients match on `code` and the chain of inner codes, never on messages, so every error the model raises
names both. The model (models.py, sessions.py) raises `GraphError` subclasses; routes.py turns them into
responses with `to_response`. `graph_errors` is the factory the server uses for faults, 401s and unknown
paths: it maps the server's generic codes to Graph's (429/503 -> activityLimitReached/throttledRequest,
as real OneDrive for Business sends them, api-notes 12.2).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from driveferry.emulator.http import Response


class GraphError(Exception):
    """A Graph error: HTTP status, top-level code, optional inner code, human message."""

    status = 400
    code = "invalidRequest"

    def __init__(self, message: str, inner: str | None = None, status: int | None = None,
                 code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.inner = inner
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code


class InvalidRequest(GraphError):
    status, code = 400, "invalidRequest"


class ItemNotFound(GraphError):
    status, code = 404, "itemNotFound"


class NameAlreadyExists(GraphError):
    status, code = 409, "nameAlreadyExists"


class ResourceModified(GraphError):
    """If-Match did not match (exact real combination unconfirmed, api-notes 17.4)."""

    status, code = 412, "resourceModified"


class InvalidRange(GraphError):
    status, code = 416, "invalidRange"


class QuotaLimitReached(GraphError):
    status, code = 507, "quotaLimitReached"


class AccessDenied(GraphError):
    status, code = 403, "accessDenied"


class NotSupported(GraphError):
    status, code = 406, "notSupported"


class Unauthenticated(GraphError):
    status, code = 401, "unauthenticated"


# The server's generic codes (faults, auth, routing) -> Graph's codes and inner codes.
_GENERIC: dict[str, tuple[str, str | None]] = {
    "unauthenticated": ("InvalidAuthenticationToken", None),
    "notFound": ("invalidRequest", "invalidResourcePath"),
    "methodNotAllowed": ("invalidRequest", "methodNotAllowed"),
}


def error_body(status: int, code: str, message: str, inner: str | None = None,
               client_request_id: str | None = None) -> dict[str, object]:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    rid = str(uuid.uuid4())
    inner_err: dict[str, object] = {"date": now, "request-id": rid, "client-request-id": client_request_id or rid}
    if inner:
        inner_err = {"code": inner, **inner_err}
    return {"error": {"code": code, "message": message, "innerError": inner_err}}


def graph_response(status: int, code: str, message: str, inner: str | None = None,
                   client_request_id: str | None = None) -> Response:
    """A Graph error response (the one place that builds the body)."""
    headers: list[tuple[str, str]] = []
    if status == 429:
        # SharePoint's rate-limit headers accompany its 429s (api-notes 12.2).
        headers += [("RateLimit-Limit", "1200"), ("RateLimit-Remaining", "0")]
    return Response.json(error_body(status, code, message, inner, client_request_id), status, headers)


def to_response(err: GraphError, client_request_id: str | None = None) -> Response:
    return graph_response(err.status, err.code, err.message, err.inner, client_request_id)


def graph_errors(status: int, code: str, message: str) -> Response:
    """The server's error factory for Graph routes (faults, 401, unknown paths, unexpected 500)."""
    inner: str | None = None
    if status in (429, 503) and code in ("backendError", "activityLimitReached", "throttledRequest"):
        code, inner = "activityLimitReached", "throttledRequest"
        if message == "Injected fault":
            message = "The request has been throttled"
    elif code in _GENERIC:
        code, inner = _GENERIC[code]
        if code == "InvalidAuthenticationToken":
            message = "Access token is empty or invalid." if message == "Invalid Credentials" else message
    elif code == "backendError":
        code = "generalException" if status >= 500 else "invalidRequest"
    return graph_response(status, code, message, inner)
