"""Sign-in services for both clouds: the entry point the server loads, shared helpers and control routes.

`modules()` returns the Google token endpoint (identity_google.GoogleIdentity) and the Entra ID (Azure
AD v2.0) endpoints msal talks to (identity_microsoft.MicrosoftIdentity). Their routes need no bearer
token. Every token they issue is a row in State's token table, so the API routes check it with
`State.check_token(token, audience)` (-> TokenInfo: subject and OAuth client id); audiences are "google"
(Drive) and "microsoft" (Graph).

`Emulator.credentials()` gathers, from these modules:

    {"google":    {"access_token", "token_uri", "client_id", "client_secret", "refresh_token",
                   "service_account_info": {type, project_id, private_key_id, private_key, client_email,
                                            client_id, token_uri}},
     "microsoft": {"access_token", "authority", "tenant_id", "client_id", "client_secret",
                   "public_client_id", "username"}}

The long-lived access tokens (ten years) and the refresh token are stored in emu_meta and stay the same
across restarts of one data directory; after a revoke, `credentials()` mints new ones (a fresh sign-in).

Control routes (no authentication, like all of `/_emulator`):

    POST /_emulator/identity/revoke   revoke every access and refresh token of both clouds: API calls
                                      with them get 401 and refreshing gives 400 invalid_grant
    POST /_emulator/identity/deny     the next Microsoft device-code flow is declined
                                      (authorization_declined) instead of approved
    POST /_emulator/identity/approve  <- {"user_code": "..."}: approve a pending device code by hand
                                      (needed only when auto-approval is switched off)
    POST /_emulator/identity/google/clients  <- {"client_id": "..."}: another Google OAuth client (a second
                                      app) -> {"client_id", "client_secret", "refresh_token", "token_uri"}
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any

from driveferry.emulator.http import Request, Response, Router, WireError
from driveferry.emulator.state import State

if TYPE_CHECKING:
    from driveferry.emulator.server import ApiModule, Emulator

LONG_LIVED_S = 10 * 365 * 24 * 3600
ACCESS_TOKEN_S = 3600


def modules() -> list[ApiModule]:
    """The identity modules, Google first (the server registers them in this order)."""
    from driveferry.emulator.identity_google import GoogleIdentity
    from driveferry.emulator.identity_microsoft import MicrosoftIdentity
    return [GoogleIdentity(), MicrosoftIdentity()]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64url_json(obj: Any) -> str:
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


def stable_token(state: State, meta_key: str, audience: str, subject: str, prefix: str = "emu",
                 client_id: str = "") -> str:
    """A long-lived token kept in emu_meta: the same across restarts until it is revoked."""
    token = state.get_meta(meta_key, "")
    info = state.check_token(token, audience) if token else None
    if info is not None and info.client_id == client_id:
        return token
    token = state.issue_token(audience, subject, LONG_LIVED_S, prefix=prefix, client_id=client_id)
    state.set_meta(meta_key, token)
    return token


def meta_value(state: State, key: str, make: Any) -> str:
    """A value generated once per data directory (ids, secrets) and kept in emu_meta."""
    value = state.get_meta(key, "")
    if not value:
        value = str(make())
        state.set_meta(key, value)
    return value


def form(req: Request) -> dict[str, str]:
    """The x-www-form-urlencoded body (first value of each field), with client_id/client_secret taken from
    an `Authorization: Basic` header when the body lacks them: both token endpoints accept
    client_secret_basic (RFC 6749 §2.3.1; Entra's openid-configuration lists it), and Go's oauth2 (rclone)
    tries that style first."""
    from urllib.parse import parse_qs, unquote_plus
    try:
        data = parse_qs(req.body().decode(), keep_blank_values=True)
    except UnicodeDecodeError:
        return {}
    out = {k: v[0] for k, v in data.items()}
    auth = req.headers.get("authorization") or ""
    if auth[:6].lower() == "basic " and "client_id" not in out:
        try:
            cid, _, secret = base64.b64decode(auth[6:].strip(), validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return out
        out["client_id"] = unquote_plus(cid)  # §2.3.1: each part form-urlencoded before base64
        if secret:
            out["client_secret"] = unquote_plus(secret)
    return out


def oauth_error(status: int, code: str, message: str) -> Response:
    """RFC 6749 error body ({"error", "error_description"}), Google's token-endpoint shape."""
    return Response.json({"error": code, "error_description": message}, status,
                         [("Cache-Control", "no-store")])


def register_identity_control(router: Router, emu: Emulator, ms: Any) -> None:
    """The /_emulator/identity/... routes (registered by MicrosoftIdentity, which owns device codes)."""
    def revoke(req: Request) -> Response:
        n = emu.state.revoke_tokens()
        ms.revoke_device_codes()
        return Response.json({"revoked": n})

    def deny(req: Request) -> Response:
        emu.state.set_meta("identity.ms.deny_next", "1")
        return Response.json({"deny_next": True})

    def approve(req: Request) -> Response:
        try:
            code = str(json.loads(req.body() or b"{}").get("user_code", ""))
        except (ValueError, AttributeError) as exc:
            raise WireError(oauth_error(400, "invalid_request", "expected {\"user_code\": ...}")) from exc
        if not ms.approve(code):
            raise WireError(oauth_error(404, "not_found", f"no pending device code {code!r}"))
        return Response.json({"approved": code})

    p = "/_emulator/identity"
    router.add("control.identity.revoke", "POST", p + "/revoke", revoke, oauth_error, auth=False)
    router.add("control.identity.deny", "POST", p + "/deny", deny, oauth_error, auth=False)
    router.add("control.identity.approve", "POST", p + "/approve", approve, oauth_error, auth=False)
