"""Google's OAuth 2.0 token endpoint (`POST /token`) for google-auth, offline (api-notes 1.4).

Grants:
- `refresh_token`: client_id and client_secret must be the emulator's (else 401 invalid_client); an
  unknown, revoked or expired refresh token is 400 invalid_grant "Token has been expired or revoked.";
- `urn:ietf:params:oauth:grant-type:jwt-bearer` (service accounts): the RS256 assertion is verified
  against the service account's public key (`kid` must be its private_key_id when present, `iss` its
  client_email). `aud` is not compared with this token URI: google-auth always sends Google's constant
  (api-notes 1.4). `exp`/`iat` are checked against real time with 5 minutes' leeway, not the emulator
  clock, because the client signs with real time. An optional `sub` claim (domain-wide delegation)
  becomes the token's subject.

Both answer `{"access_token", "expires_in": 3599, "token_type": "Bearer"[, "scope"]}`; access tokens have
audience "google" and carry the OAuth client id they were issued to (a service account's own numeric
client id for the JWT grant), because Drive keeps `appProperties` private to that client (api-notes
§20). A refresh token works only with the client it was issued to (Google answers 400
unauthorized_client otherwise). The service-account RSA key is generated once per data directory and
stored, mode 0600, under DATA/identity/.

Control: `POST /_emulator/identity/google/clients` <- {"client_id": "..."} registers another OAuth client
(a second app: Colab's, a desktop client) and answers {"client_id", "client_secret", "refresh_token"} for
the same user, so tests can act as two apps.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from driveferry.emulator.http import Request, Response, Router, WireError
from driveferry.emulator.identity import (
    ACCESS_TOKEN_S,
    LONG_LIVED_S,
    b64url_decode,
    form,
    meta_value,
    oauth_error,
    stable_token,
)

if TYPE_CHECKING:
    from driveferry.emulator.server import Emulator

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
USER_EMAIL = "alex@example.com"
PROJECT_ID = "driveferry-emulator"
SA_EMAIL = f"relay@{PROJECT_ID}.iam.gserviceaccount.com"
SA_CLIENT_ID = "100000000000000000001"
CLIENT_ID = "123456789012-driveferryemulator.apps.googleusercontent.com"
_CLIENTS_META = "identity.google.clients"
REFRESH_AUDIENCE = "google-refresh"
LEEWAY_S = 300


def google_errors(status: int, code: str, message: str) -> Response:
    """Error factory for faults on the token endpoint: 5xx/429 use codes google-auth retries."""
    if status >= 500 or status == 429:
        code = "temporarily_unavailable" if status in (429, 503) else "server_error"
    return oauth_error(status, code, message)


class GoogleIdentity:
    audience = "google-identity"
    route_prefix = "identity.google."

    def register(self, router: Router, emulator: Emulator) -> None:
        self.emu = emulator
        self.state = emulator.state
        self.client_secret = meta_value(self.state, "identity.google.client_secret",
                                        lambda: "GOCSPX-" + secrets.token_urlsafe(21))
        self.key_id = meta_value(self.state, "identity.google.private_key_id", lambda: secrets.token_hex(20))
        self._key = self._load_key(emulator.data_dir / "identity")
        router.add("identity.google.token", "POST", "/token", self.token, google_errors, auth=False)
        router.add("control.identity.google.clients", "POST", "/_emulator/identity/google/clients",
                   self.add_client, oauth_error, auth=False)

    def _clients(self) -> dict[str, str]:
        """Registered OAuth clients (id -> secret): the emulator's own plus those added by tests."""
        extra = json.loads(self.state.get_meta(_CLIENTS_META, "{}"))
        return {**extra, CLIENT_ID: self.client_secret}

    def add_client(self, req: Request) -> Response:
        """Register (or look up) another OAuth client and sign the user in through it."""
        try:
            client_id = json.loads(req.body() or b"{}").get("client_id")
        except (ValueError, AttributeError) as exc:
            raise WireError(oauth_error(400, "invalid_request", "expected {\"client_id\": ...}")) from exc
        if not isinstance(client_id, str) or not client_id.strip():
            raise WireError(oauth_error(400, "invalid_request", "client_id must be a non-empty string"))
        with self.state.lock:
            clients = self._clients()
            secret = clients.get(client_id) or "GOCSPX-" + secrets.token_urlsafe(21)
            clients[client_id] = secret
            clients.pop(CLIENT_ID)
            self.state.set_meta(_CLIENTS_META, json.dumps(clients))
        refresh = self.state.issue_token(REFRESH_AUDIENCE, USER_EMAIL, LONG_LIVED_S, "1//emu", client_id=client_id)
        return Response.json({"client_id": client_id, "client_secret": secret, "refresh_token": refresh,
                              "token_uri": req.base_url + "/token"})

    @staticmethod
    def _load_key(key_dir: Any) -> rsa.RSAPrivateKey:
        path = key_dir / "google_service_account.pem"
        if not path.exists():
            key_dir.mkdir(parents=True, exist_ok=True)
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(pem)
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
        assert isinstance(loaded, rsa.RSAPrivateKey)
        return loaded

    def credentials(self, base_url: str) -> dict[str, Any]:
        token_uri = base_url + "/token"
        pem = self._key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()).decode()
        return {"google": {
            "access_token": stable_token(self.state, "identity.google.access_token", "google", USER_EMAIL,
                                         client_id=CLIENT_ID),
            "token_uri": token_uri, "client_id": CLIENT_ID, "client_secret": self.client_secret,
            "refresh_token": stable_token(self.state, "identity.google.refresh_token", REFRESH_AUDIENCE,
                                          USER_EMAIL, prefix="1//emu", client_id=CLIENT_ID),
            "service_account_info": {
                "type": "service_account", "project_id": PROJECT_ID, "private_key_id": self.key_id,
                "private_key": pem, "client_email": SA_EMAIL, "client_id": SA_CLIENT_ID,
                "token_uri": token_uri},
            **self.emu.realism.time_scale(),  # expires_in is in emulated seconds
        }}

    def token(self, req: Request) -> Response:
        f = form(req)
        grant = f.get("grant_type", "")
        if grant == "refresh_token":
            client_id = f.get("client_id", "")
            secret = self._clients().get(client_id)
            if secret is None or f.get("client_secret") != secret:
                raise WireError(oauth_error(401, "invalid_client", "The OAuth client was not found."))
            info = self.state.check_token(f.get("refresh_token", ""), REFRESH_AUDIENCE)
            if info is None:
                raise WireError(oauth_error(400, "invalid_grant", "Token has been expired or revoked."))
            if (info.client_id or CLIENT_ID) != client_id:  # refresh tokens are bound to their client
                raise WireError(oauth_error(400, "unauthorized_client", "Unauthorized"))
            return self._issue(info.subject, f.get("scope"), client_id)
        if grant == JWT_BEARER:
            claims = self._verify(f.get("assertion", ""))
            return self._issue(str(claims.get("sub") or claims["iss"]), claims.get("scope"), SA_CLIENT_ID)
        raise WireError(oauth_error(400, "unsupported_grant_type", f"Invalid grant_type: {grant}"))

    def _issue(self, subject: str, scope: object, client_id: str) -> Response:
        token = self.state.issue_token("google", subject, ACCESS_TOKEN_S, "ya29.emu", client_id=client_id)
        body: dict[str, Any] = {"access_token": token,
                                "expires_in": ACCESS_TOKEN_S - 1, "token_type": "Bearer"}
        if isinstance(scope, str) and scope:
            body["scope"] = scope
        return Response.json(body, headers=[("Cache-Control", "no-store")])

    def _verify(self, assertion: str) -> dict[str, Any]:
        """The claims of a valid service-account assertion; 400 invalid_grant otherwise."""
        def bad(why: str) -> WireError:
            return WireError(oauth_error(400, "invalid_grant", f"Invalid JWT: {why}"))
        parts = assertion.split(".")
        if len(parts) != 3:
            raise bad("not a JWT")
        try:
            header = json.loads(b64url_decode(parts[0]))
            claims = json.loads(b64url_decode(parts[1]))
            sig = b64url_decode(parts[2])
        except (ValueError, TypeError) as exc:
            raise bad("undecodable") from exc
        if not isinstance(header, dict) or not isinstance(claims, dict) or header.get("alg") != "RS256":
            raise bad("alg must be RS256")
        if header.get("kid") not in (None, self.key_id):
            raise bad("unknown key id")
        try:
            self._key.public_key().verify(sig, f"{parts[0]}.{parts[1]}".encode(), padding.PKCS1v15(),
                                          hashes.SHA256())
        except InvalidSignature as exc:
            raise bad("signature does not verify") from exc
        if claims.get("iss") != SA_EMAIL:
            raise bad("unknown issuer")
        now = time.time()
        try:
            exp, iat = float(claims["exp"]), float(claims.get("iat", now))
        except (KeyError, TypeError, ValueError) as exc:
            raise bad("exp missing") from exc
        if exp < now - LEEWAY_S or iat > now + LEEWAY_S or exp - iat > 3600 + LEEWAY_S:
            raise bad("Token must be a short-lived token (60 minutes) and in a reasonable timeframe.")
        return claims

