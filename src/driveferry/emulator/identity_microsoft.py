"""Entra ID (Azure AD v2.0) endpoints for msal, offline (api-notes 15).

    GET  /{tenant}/v2.0/.well-known/openid-configuration   https URLs built from the request's base URL
    POST /{tenant}/oauth2/v2.0/devicecode
    POST /{tenant}/oauth2/v2.0/token     client_credentials | device_code | refresh_token
    GET  /{tenant}/discovery/v2.0/keys   an empty key set (id_tokens are unsigned)

The tenant segment may be the emulator's tenant id, its domain, `common` or `organizations`; anything
else is 400 invalid_tenant (AADSTS90002). msal needs https (api-notes 15.1): run the emulator with TLS.

Device flow without a human: by default a device code is *approved automatically after its first
poll* (the first poll answers authorization_pending, as a real sign-in would, the second succeeds).
`POST /_emulator/identity/deny` makes the next device flow answer authorization_declined;
`MicrosoftIdentity(device_auto_approve=False)` waits for `POST /_emulator/identity/approve`. The poll
interval the emulator announces is `device_interval_s` (default 1 s; real Entra says 5).

Tokens: access tokens have audience "microsoft" (Graph checks it); an app-only token's subject is
`app:<client_id>` so Graph can refuse `/me` for it. User responses carry `scope` as a string (msal
splits it; null crashed msal), an unsigned (`alg: none`) id_token with aud, iss, iat, exp, oid, tid,
preferred_username and name, and `client_info` = base64url JSON {uid, utid}. Errors follow Entra's
shape {"error", "error_description": "AADSTSnnnn: ...", "error_codes", "timestamp", "trace_id",
"correlation_id"}; msal returns them as a dict.
"""

from __future__ import annotations

import secrets
import string
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from driveferry.emulator.http import Request, Response, Router, WireError
from driveferry.emulator.identity import (
    ACCESS_TOKEN_S,
    LONG_LIVED_S,
    b64url_json,
    form,
    meta_value,
    register_identity_control,
    stable_token,
)

if TYPE_CHECKING:
    from driveferry.emulator.server import Emulator

USERNAME = "alex@contoso.onmicrosoft.com"
DISPLAY_NAME = "Alex Wilber"
DOMAIN = "contoso.onmicrosoft.com"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
REFRESH_AUDIENCE = "microsoft-refresh"
DEVICE_CODE_S = 900

_SCHEMA = """
CREATE TABLE IF NOT EXISTS identity_ms_device (
    device_code TEXT PRIMARY KEY, user_code TEXT NOT NULL, client_id TEXT NOT NULL, scope TEXT NOT NULL,
    polls INTEGER NOT NULL DEFAULT 0, status TEXT NOT NULL, expires REAL NOT NULL
);
"""


def aad_error(status: int, code: str, message: str, aadsts: int = 0, correlation_id: str | None = None) -> Response:
    trace = str(uuid.uuid4())
    number = aadsts or {"invalid_client": 7000215, "invalid_grant": 70000, "authorization_pending": 70016,
                        "authorization_declined": 70000, "expired_token": 70020,
                        "invalid_tenant": 90002}.get(code, 90000)
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return Response.json({
        "error": code, "error_description": f"AADSTS{number}: {message}\r\nTrace ID: {trace}\r\nTimestamp: {now}",
        "error_codes": [number], "timestamp": now, "trace_id": trace,
        "correlation_id": correlation_id or str(uuid.uuid4())}, status)


def ms_errors(status: int, code: str, message: str) -> Response:
    """Error factory for faults on these routes (5xx make msal raise, as with real Entra)."""
    if status >= 500 or status == 429:
        code = "temporarily_unavailable"
    return aad_error(status, code, message)


class MicrosoftIdentity:
    audience = "microsoft-identity"
    route_prefix = "identity.ms."

    def __init__(self, device_auto_approve: bool = True, device_interval_s: int = 1) -> None:
        self.device_auto_approve = device_auto_approve
        self.device_interval_s = device_interval_s

    def register(self, router: Router, emulator: Emulator) -> None:
        self.emu = emulator
        st = self.state = emulator.state
        with st.lock:
            st.db.executescript(_SCHEMA)
        self.tenant_id = meta_value(st, "identity.ms.tenant_id", uuid.uuid4)
        self.client_id = meta_value(st, "identity.ms.client_id", uuid.uuid4)
        self.public_client_id = meta_value(st, "identity.ms.public_client_id", uuid.uuid4)
        self.client_secret = meta_value(st, "identity.ms.client_secret", lambda: secrets.token_urlsafe(30))
        self.user_oid = meta_value(st, "identity.ms.user_oid", uuid.uuid4)
        t = r"/(?P<tenant>[^/_][^/]*)"
        router.add("identity.ms.openid", "GET", t + r"/v2\.0/\.well-known/openid-configuration", self.openid,
                   ms_errors, auth=False)
        router.add("identity.ms.token", "POST", t + r"/oauth2/v2\.0/token", self.token, ms_errors, auth=False)
        router.add("identity.ms.devicecode", "POST", t + r"/oauth2/v2\.0/devicecode", self.devicecode, ms_errors,
                   auth=False)
        router.add("identity.ms.keys", "GET", t + r"/discovery/v2\.0/keys",
                   lambda req: Response.json({"keys": []}), ms_errors, auth=False)
        register_identity_control(router, emulator, self)

    def credentials(self, base_url: str) -> dict[str, Any]:
        return {"microsoft": {
            "access_token": stable_token(self.state, "identity.ms.access_token", "microsoft", USERNAME,
                                         client_id=self.public_client_id),
            "authority": f"{base_url}/{self.tenant_id}", "tenant_id": self.tenant_id,
            "client_id": self.client_id, "client_secret": self.client_secret,
            "public_client_id": self.public_client_id, "username": USERNAME,
            **self.emu.realism.time_scale()}}  # expires_in is in emulated seconds

    # --- endpoints -------------------------------------------------------------------------------------

    def _tenant(self, req: Request) -> str:
        tenant = req.params["tenant"]
        if tenant not in (self.tenant_id, DOMAIN, "common", "organizations"):
            raise WireError(aad_error(400, "invalid_tenant", f"Tenant '{tenant}' not found."))
        return tenant

    def openid(self, req: Request) -> Response:
        t, b = self._tenant(req), req.base_url
        return Response.json({
            "issuer": f"{b}/{self.tenant_id}/v2.0", "authorization_endpoint": f"{b}/{t}/oauth2/v2.0/authorize",
            "token_endpoint": f"{b}/{t}/oauth2/v2.0/token",
            "device_authorization_endpoint": f"{b}/{t}/oauth2/v2.0/devicecode",
            "jwks_uri": f"{b}/{t}/discovery/v2.0/keys", "tenant_region_scope": "EU",
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "subject_types_supported": ["pairwise"], "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"]})

    def devicecode(self, req: Request) -> Response:
        self._tenant(req)
        f = form(req)
        if f.get("client_id") not in (self.public_client_id, self.client_id):
            raise WireError(aad_error(400, "unauthorized_client", "Application not found in the directory.",
                                      700016))
        deny = self.state.get_meta("identity.ms.deny_next", "") == "1"
        if deny:
            self.state.set_meta("identity.ms.deny_next", "")
        device_code = secrets.token_urlsafe(48)
        user_code = "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(9))
        with self.state.tx() as db:
            db.execute("INSERT INTO identity_ms_device(device_code, user_code, client_id, scope, status, expires)"
                       " VALUES(?,?,?,?,?,?)", (device_code, user_code, f["client_id"], f.get("scope", ""),
                                               "denied" if deny else "pending",
                                               self.state.clock.timestamp() + DEVICE_CODE_S))
        uri = "https://microsoft.com/devicelogin"
        return Response.json({
            "user_code": user_code, "device_code": device_code, "verification_uri": uri,
            "expires_in": DEVICE_CODE_S, "interval": self.device_interval_s,
            "message": f"To sign in, use a web browser to open the page {uri} and enter the code {user_code} to"
                       " authenticate. (driveferry emulator: approved automatically after the first poll.)"})

    def token(self, req: Request) -> Response:
        self._tenant(req)
        f = form(req)
        grant = f.get("grant_type", "")
        cid = req.headers.get("client-request-id")
        if grant == "client_credentials":
            if f.get("client_id") != self.client_id or f.get("client_secret") != self.client_secret:
                raise WireError(aad_error(401, "invalid_client", "Invalid client secret provided.", 0, cid))
            if not f.get("scope", "").endswith("/.default"):
                raise WireError(aad_error(400, "invalid_scope", "The provided value for scope is not valid:"
                                          " client credential flows must have a scope with /.default suffixed"
                                          " to the resource identifier.", 1002012, cid))
            token = self.state.issue_token("microsoft", f"app:{self.client_id}", ACCESS_TOKEN_S,
                                           client_id=self.client_id)
            return Response.json({"token_type": "Bearer", "expires_in": ACCESS_TOKEN_S - 1,
                                  "ext_expires_in": ACCESS_TOKEN_S - 1, "access_token": token})
        if grant in (DEVICE_GRANT, "refresh_token") and f.get("client_id") not in (self.public_client_id,
                                                                                  self.client_id):
            raise WireError(aad_error(400, "unauthorized_client", f"Application with identifier"
                                      f" '{f.get('client_id')}' was not found in the directory.", 700016, cid))
        if grant == DEVICE_GRANT:
            return self._device_grant(req, f, cid)
        if grant == "refresh_token":
            if self.state.check_token(f.get("refresh_token", ""), REFRESH_AUDIENCE) is None:
                raise WireError(aad_error(400, "invalid_grant", "The refresh token has expired or been revoked.",
                                          50173, cid))
            return self._user_tokens(req, f["client_id"], f.get("scope", ""))
        raise WireError(aad_error(400, "unsupported_grant_type", f"The grant type {grant!r} is not supported.",
                                  70003, cid))

    def _device_grant(self, req: Request, f: dict[str, str], cid: str | None) -> Response:
        code = f.get("device_code") or f.get("code") or ""
        with self.state.lock:
            rows = self.state.query("SELECT * FROM identity_ms_device WHERE device_code=?", (code,))
            if not rows:
                raise WireError(aad_error(400, "bad_verification_code", "Device code not recognised.", 70019, cid))
            row = rows[0]
            if row["client_id"] != f.get("client_id"):
                raise WireError(aad_error(400, "invalid_grant", "The device code was issued to another client.",
                                          70000, cid))
            if row["expires"] < self.state.clock.timestamp() or row["status"] == "revoked":
                raise WireError(aad_error(400, "expired_token", "The device code has expired.", 70020, cid))
            if row["status"] == "denied":
                raise WireError(aad_error(400, "authorization_declined", "The user declined the sign-in.",
                                          0, cid))
            if row["status"] != "approved":
                polls = row["polls"] + 1
                status = "approved" if self.device_auto_approve and polls >= 1 else "pending"
                with self.state.tx() as db:
                    db.execute("UPDATE identity_ms_device SET polls=?, status=? WHERE device_code=?",
                               (polls, status, code))
                raise WireError(aad_error(400, "authorization_pending", "The user has not yet finished"
                                          " authenticating.", 0, cid))
            with self.state.tx() as db:
                db.execute("DELETE FROM identity_ms_device WHERE device_code=?", (code,))
        return self._user_tokens(req, str(row["client_id"]), str(row["scope"]))

    def _user_tokens(self, req: Request, client_id: str, scope: str) -> Response:
        now = int(time.time())
        claims = {"aud": client_id, "iss": f"{req.base_url}/{self.tenant_id}/v2.0", "iat": now, "nbf": now,
                  "exp": now + ACCESS_TOKEN_S, "oid": self.user_oid, "sub": self.user_oid, "tid": self.tenant_id,
                  "preferred_username": USERNAME, "name": DISPLAY_NAME, "ver": "2.0"}
        id_token = b64url_json({"alg": "none", "typ": "JWT"}) + "." + b64url_json(claims) + "."
        scopes = scope.split() or ["https://graph.microsoft.com/.default"]
        for extra in ("openid", "profile", "offline_access"):
            if extra not in scopes:
                scopes.append(extra)
        return Response.json({
            "token_type": "Bearer", "scope": " ".join(scopes), "expires_in": ACCESS_TOKEN_S - 1,
            "ext_expires_in": ACCESS_TOKEN_S - 1,
            "access_token": self.state.issue_token("microsoft", USERNAME, ACCESS_TOKEN_S, client_id=client_id),
            "refresh_token": self.state.issue_token(REFRESH_AUDIENCE, USERNAME, LONG_LIVED_S, prefix="0.emu",
                                                    client_id=client_id),
            "id_token": id_token,
            "client_info": b64url_json({"uid": self.user_oid, "utid": self.tenant_id})})

    # --- control hooks ---------------------------------------------------------------------------------

    def revoke_device_codes(self) -> None:
        with self.state.tx() as db:
            db.execute("UPDATE identity_ms_device SET status='revoked'")

    def approve(self, user_code: str) -> bool:
        with self.state.tx() as db:
            cur = db.execute("UPDATE identity_ms_device SET status='approved' WHERE user_code=? AND status='pending'",
                             (user_code,))
            return cur.rowcount > 0
