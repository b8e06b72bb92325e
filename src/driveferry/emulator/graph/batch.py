"""Graph JSON batching: `POST /v1.0/$batch` with up to 20 sub-requests, each answered on its own.

Shape (learn.microsoft.com/en-us/graph/json-batching): the body is `{"requests": [{"id", "method",
"url", "headers"?, "body"?}, ...]}`; `url` is relative to the version (`/me/drive/...`, no `/v1.0`);
`id` is required and unique within the batch (a duplicate fails the whole batch with 400); at most 20
requests. The answer is 200 `{"responses": [{"id", "status", "headers", "body"}, ...]}` whatever the
sub-requests' statuses, and "the responses may appear in a different order than the requests": this
emulator answers in reverse order, so a client that pairs by position fails here as it would there.

Each sub-request goes through the same routing as a request on the wire: the batch's Authorization
(its own `headers` may add more), the token check, the realism hook, the route's handler and error
shape. Sub-requests are throttled individually: one can be 429 with a Retry-After while its siblings
answer 200 (json-batching, "Throttling and batching"; learn.microsoft.com/en-us/answers/questions/
5529013: "each sub-request is processed independently"). The envelope itself is therefore not charged
against the rate limits (realism/hook.py skips route `graph.batch`); its sub-requests are.

Counters: the batch is one request under route `graph.batch`; each sub-request is also counted under its
own route (so `requests["graph.permissions.list"]` counts permission reads however they were sent) and
its status under `statuses`, and under `realism["graph.batch_subrequests"]`. Injected faults apply to the envelope only. `dependsOn` is
not modelled (sub-requests run in order, which any dependency order allows). A nested `$batch` and a
body that is not JSON are 400. The error wording for more than 20 requests is unconfirmed (status and
code `BadRequest` are what SDKs match on; microsoftgraph/microsoft-graph-docs#2886 discusses the limit).
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from driveferry.emulator.graph.errors import graph_errors, graph_response
from driveferry.emulator.http import Headers, Request, Response, WireError, parse_query

if TYPE_CHECKING:
    from driveferry.emulator.server import Emulator

MAX_REQUESTS = 20  # learn.microsoft.com/en-us/graph/json-batching: "up to 20 requests"
ROUTE = "graph.batch"
PATTERN = r"/v1\.0/\$batch"
# response headers a client may need from a sub-response (throttling, redirects, paging)
_KEPT_HEADERS = ("content-type", "retry-after", "location", "etag", "ratelimit-limit", "ratelimit-remaining")


def _bad(message: str) -> WireError:
    return WireError(graph_response(400, "BadRequest", message))


class GraphBatch:
    """The `$batch` handler over an emulator's router (register with `add(ROUTE, "POST", PATTERN, ...)`)."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu

    def handle(self, req: Request) -> Response:
        try:
            data = json.loads(req.body() or b"null")
        except (ValueError, UnicodeDecodeError) as exc:
            raise _bad("Invalid batch payload format.") from exc
        subs = data.get("requests") if isinstance(data, dict) else None
        if not isinstance(subs, list):
            raise _bad("Invalid batch payload format: a 'requests' array is required.")
        if len(subs) > MAX_REQUESTS:
            raise _bad(f"Number of included requests in the body can't exceed {MAX_REQUESTS}.")
        seen: set[str] = set()
        for sub in subs:
            if not isinstance(sub, dict) or not all(isinstance(sub.get(k), str) and sub.get(k)
                                                    for k in ("id", "method", "url")):
                raise _bad("Each request of a batch needs a string id, method and url.")
            if sub["id"].lower() in seen:  # ids are case-insensitive (json-batching)
                raise _bad(f"Request id {sub['id']!r} is used more than once in the batch.")
            seen.add(sub["id"].lower())
        answers = [self._one(req, sub) for sub in subs]
        return Response.json({"responses": list(reversed(answers))})

    def _one(self, outer: Request, sub: dict[str, Any]) -> dict[str, Any]:
        """The sub-response of one sub-request, dispatched as a request on the wire would be."""
        emu = self.emu
        method = str(sub["method"]).upper()
        split = urlsplit(str(sub["url"]))
        if split.scheme or split.netloc:
            return self._answer(sub, graph_response(400, "BadRequest", "The url of a batch request must be "
                                                    "relative (no host, no version)."))
        raw_path = "/v1.0/" + split.path.lstrip("/")
        given = sub.get("headers")
        own: dict[str, Any] = given if isinstance(given, dict) else {}
        auth = outer.headers.get("authorization")
        headers = Headers([*((str(k), str(v)) for k, v in own.items()), *([("Authorization", auth)] if auth else [])])
        body = sub.get("body")
        raw = b"" if body is None else json.dumps(body).encode() if isinstance(body, dict | list) else \
            base64.b64decode(str(body))
        query = parse_query(split.query)
        req = Request(method=method, path=unquote(raw_path), raw_path=raw_path, query=query, headers=headers,
                      body_stream=io.BytesIO(raw), content_length=len(raw), base_url=outer.base_url,
                      in_batch=True)
        route, params, known = emu.router.match(method, req.path, query)
        name = route.name if route else "unknown"
        req.params, req.route = params, name
        emu.state.counters.add("requests", name)
        emu.realism.count("graph.batch_subrequests")
        try:
            if route is None or name == ROUTE or not name.startswith("graph."):
                status = 405 if known and route is None else 404
                raise WireError(graph_errors(status, "notFound" if status == 404 else "methodNotAllowed",
                                             f"No such endpoint in a batch: {method} {raw_path}"))
            if route.auth and not emu.authorized(req, name):
                raise WireError(graph_errors(401, "unauthenticated", "Invalid Credentials"))
            answer = emu.realism.before(req)
            resp = answer if answer is not None else route.handler(req)
        except WireError as exc:
            resp = exc.response
        except Exception:  # never a traceback: a 500 in Graph's shape, as on the wire
            resp = graph_errors(500, "backendError", "Backend Error")
        emu.state.counters.add("statuses", str(resp.status))
        return self._answer(sub, resp)

    @staticmethod
    def _answer(sub: dict[str, Any], resp: Response) -> dict[str, Any]:
        headers = {k: v for k, v in resp.headers if k.lower() in _KEPT_HEADERS}
        raw = _bytes(resp.body)
        out: dict[str, Any] = {"id": sub["id"], "status": resp.status, "headers": headers}
        if raw:
            kind = (resp.header("content-type") or "").lower()
            # a JSON body is embedded as JSON; anything else base64-encoded (json-batching, "body")
            out["body"] = json.loads(raw) if "json" in kind else base64.b64encode(raw).decode()
        return out


def _bytes(body: bytes | Iterable[bytes]) -> bytes:
    if isinstance(body, bytes | bytearray):
        return bytes(body)
    try:
        return b"".join(body)
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()
