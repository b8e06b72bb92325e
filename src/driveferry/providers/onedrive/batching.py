"""Graph JSON batching, shared by the batched reads (permissions.py, prefetch.py).

Up to 20 sub-requests per `POST /$batch` (learn.microsoft.com/en-us/graph/json-batching). Each
sub-request is throttled on its own and answers with its own status; the batch answers 200 even when
some were throttled (429 with their own Retry-After: json-batching, "Throttling and batching").
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import requests
from requests.structures import CaseInsensitiveDict

from driveferry.errors import ThrottledError, TransientError

BATCH_MAX = 20  # json-batching: "up to 20 requests" per POST /$batch


def wait_s(err: TransientError) -> float:
    return err.retry_after_s if isinstance(err, ThrottledError) else 0.0


def sub_response(answer: Mapping[str, Any], batch: requests.Response) -> requests.Response:
    """A sub-response as a requests.Response, for the one translation of Graph failures (errors.translate);
    the batch's Date goes with it, so an HTTP-date Retry-After is read against the server's clock."""
    resp = requests.Response()
    resp.status_code = int(answer.get("status") or 0)
    headers = answer.get("headers")
    resp.headers = CaseInsensitiveDict({str(k): str(v) for k, v in headers.items()} if isinstance(headers, Mapping)
                                       else {})
    if "Date" not in resp.headers and batch.headers.get("Date"):
        resp.headers["Date"] = batch.headers["Date"]
    body = answer.get("body")
    resp._content = json.dumps(body).encode() if isinstance(body, Mapping) else b""
    resp.url = batch.url
    return resp
