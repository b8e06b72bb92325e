"""Graph control routes under `/_emulator/graph/` (no authentication; loopback only, like the rest).

    POST /_emulator/graph/corrupt       <- {"item_id": "01…", "offset": 123?}  -> {"item_id", "offset"}
         flip one stored byte of a file; size and quickXorHash metadata stay, so a download no longer
         matches the hash Graph reports (silent corruption for verify tests)
    POST /_emulator/graph/drop-hash     <- {"item_id": "01…"}: the file reports no quickXorHash from now on
    POST /_emulator/graph/quota         <- {"total": bytes}                    -> the drive's quota
    POST /_emulator/graph/delta/expire  -> {} ; every delta token issued so far answers 410 resyncRequired
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from driveferry.emulator.graph.errors import GraphError, graph_errors, to_response
from driveferry.emulator.http import Request, Response, Router, WireError
from driveferry.typedconfig import shown

if TYPE_CHECKING:
    from driveferry.emulator.graph.routes import GraphApi


def _integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _item_id(body: dict[str, Any]) -> str:
    """The body's `item_id`; a 400 GraphError unless it is a non-empty string."""
    item_id = body.get("item_id")
    if not isinstance(item_id, str) or not item_id:
        raise GraphError(f"item_id: expected an item id (a string), got {shown(item_id)}.")
    return item_id


def register_graph_control(router: Router, api: GraphApi) -> None:
    from driveferry.emulator.graph.routes import json_body

    def corrupt(req: Request) -> Response:
        try:
            body = json_body(req)
            item_id, offset = _item_id(body), body.get("offset")
            if offset is not None and not _integer(offset):
                raise GraphError(f"offset: expected a byte offset (an integer), got {shown(offset)}.")
            pos = api.model.corrupt(item_id, offset)
        except GraphError as err:
            raise WireError(to_response(err)) from err
        return Response.json({"item_id": item_id, "offset": pos})

    def drop_hash(req: Request) -> Response:
        try:
            item_id = _item_id(json_body(req))
            api.model.drop_hash(item_id)
        except GraphError as err:
            raise WireError(to_response(err)) from err
        return Response.json({"item_id": item_id})

    def quota(req: Request) -> Response:
        try:
            body = json_body(req)
            total = body.get("total")
            if isinstance(total, bool) or not isinstance(total, int) or total < 0:
                raise GraphError("total must be a non-negative integer (bytes).")
        except GraphError as err:
            raise WireError(to_response(err)) from err
        api.model.set_quota(total)
        return Response.json(api.model.quota())

    def expire_delta(req: Request) -> Response:
        api.model.expire_delta_tokens()
        return Response.json({})

    p = "/_emulator/graph"
    router.add("control.graph.corrupt", "POST", p + "/corrupt", corrupt, graph_errors, auth=False)
    router.add("control.graph.drop_hash", "POST", p + "/drop-hash", drop_hash, graph_errors, auth=False)
    router.add("control.graph.quota", "POST", p + "/quota", quota, graph_errors, auth=False)
    router.add("control.graph.delta.expire", "POST", p + "/delta/expire", expire_delta, graph_errors, auth=False)
