"""Signing in to Microsoft Graph with msal: device code (people) or client credentials (tenant-wide app).

Facts that shape this module (api-notes section 15):
- msal accepts only https authorities, and for any host it does not know it first asks
  login.microsoftonline.com for "instance discovery"; offline that fails, so `instance_discovery=False`
  whenever the authority is not Microsoft's own.
- msal's own requests.Session honours REQUESTS_CA_BUNDLE over `verify=`; we give it a session with
  `trust_env=False` and `verify=ca_file` so the emulator's CA is really used.
- The token cache (refresh tokens!) is a secret: it is written with mode 0600, atomically, under the
  state directory.

Remote section keys read here: `tenant`, `client_id`, `client_secret`, `auth` ("device_code" or
"client_credentials"; default: client credentials when a secret is given), `endpoint` (emulator base URL:
authority = endpoint + "/" + tenant), `authority` (explicit override), `ca_file`, `access_token` (a fixed
token for tests; no refresh).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import msal
import requests

from driveferry import __version__
from driveferry.errors import PermissionDeniedError, UserError
from driveferry.providers.onedrive.errors import translate

log = logging.getLogger(__name__)

MICROSOFT_LOGIN = "https://login.microsoftonline.com"
APP_SCOPES = ["https://graph.microsoft.com/.default"]
DELEGATED_SCOPES = ["https://graph.microsoft.com/Files.ReadWrite.All"]

Prompt = Callable[[Mapping[str, Any]], None]


class TokenSource(Protocol):
    """Hands out bearer tokens; thread-safe."""

    def get_token(self) -> str:
        """A currently valid access token. Raises PermissionDeniedError when sign-in is needed."""
        ...

    def invalidate(self, token: str) -> None:
        """`token` was rejected (401): the next get_token() must fetch a fresh one."""
        ...


@dataclass(frozen=True)
class AuthSettings:
    name: str  # the remote's name, for the `driveferry auth login NAME` hint
    tenant: str
    client_id: str
    client_secret: str | None
    device_code: bool
    authority: str
    ca_file: str | None
    cache_path: Path

    def __repr__(self) -> str:  # never show the secret
        return f"AuthSettings(name={self.name!r}, tenant={self.tenant!r}, client_id={self.client_id!r})"

    @property
    def hint(self) -> str:
        return f"run `driveferry auth login {self.name}`"

    @classmethod
    def from_section(cls, section: Mapping[str, Any], *, name: str, state_dir: Path) -> AuthSettings:
        tenant = str(section.get("tenant") or section.get("tenant_id") or "")
        client_id = str(section.get("client_id") or "")
        if not tenant or not client_id:
            raise UserError(f"remote {name!r}: `tenant` and `client_id` are required for OneDrive")
        secret = section.get("client_secret")
        mode = str(section.get("auth") or ("client_credentials" if secret else "device_code"))
        if mode not in ("device_code", "client_credentials"):
            raise UserError(f"remote {name!r}: auth must be device_code or client_credentials, not {mode!r}")
        if mode == "client_credentials" and not secret:
            raise UserError(f"remote {name!r}: client_credentials needs `client_secret`")
        endpoint = str(section.get("endpoint") or MICROSOFT_LOGIN).rstrip("/")
        authority = str(section.get("authority") or f"{endpoint}/{tenant}")
        if not authority.startswith("https://"):
            raise UserError(f"remote {name!r}: the sign-in authority must be https (msal refuses {authority})")
        ca = section.get("ca_file")
        return cls(name=name, tenant=tenant, client_id=client_id, client_secret=str(secret) if secret else None,
                   device_code=mode == "device_code", authority=authority, ca_file=str(ca) if ca else None,
                   cache_path=Path(state_dir) / f"msal-cache-{name}.json")


class StaticToken:
    """A fixed access token from the configuration (tests, short jobs); cannot refresh."""

    def __init__(self, token: str, name: str) -> None:
        self._token = token
        self._name = name

    def get_token(self) -> str:
        return self._token

    def invalidate(self, token: str) -> None:
        raise PermissionDeniedError(f"the configured access_token was rejected; remove it and "
                                    f"run `driveferry auth login {self._name}`", status=401)


def _write_private(path: Path, text: str) -> None:
    """Write `text` to `path` with mode 0600 from the first byte (then rename over the old file)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + f".{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # O_CREAT's mode is filtered by the umask; be explicit
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fd = -1
            fh.write(text)
    finally:
        if fd >= 0:
            os.close(fd)
    os.replace(tmp, path)


class MsalTokens:
    """Tokens from msal with a persisted cache; refreshes silently, and after a 401 forces a new token."""

    def __init__(self, settings: AuthSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._cache = msal.SerializableTokenCache()
        if settings.cache_path.exists():
            try:
                self._cache.deserialize(settings.cache_path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:  # a damaged cache means "signed out", not a crash
                log.info("ignoring unreadable token cache %s (%s); sign in again with "
                            "`driveferry auth login %s`", settings.cache_path, type(exc).__name__, settings.name)
        _keep_own(self._cache, settings.client_id)
        self._app: msal.ClientApplication = self._guarded(self._build_app)
        self._current: str | None = None
        self._valid_until = 0.0  # monotonic time until which _current is used without asking msal
        self._force = False

    def _build_app(self) -> msal.ClientApplication:
        s = self.settings
        http = requests.Session()
        # Microsoft's sign-in requests name driveferry too, in the decoration format Microsoft asks for
        # (learn.microsoft.com/sharepoint/dev/general-development/how-to-avoid-getting-throttled-or-blocked-in-sharepoint-online)
        http.headers["User-Agent"] = f"ISV|driveferry|driveferry/{__version__}"
        if s.ca_file:
            http.verify = s.ca_file
            http.trust_env = False  # else REQUESTS_CA_BUNDLE would override verify (api-notes 15.2)
        kwargs: dict[str, Any] = {
            "authority": s.authority, "token_cache": self._cache, "http_client": http,
            "instance_discovery": s.authority.startswith(MICROSOFT_LOGIN + "/"),
        }
        if s.device_code:
            return msal.PublicClientApplication(s.client_id, **kwargs)
        return msal.ConfidentialClientApplication(s.client_id, client_credential=s.client_secret, **kwargs)

    def _save(self) -> None:
        if self._cache.has_state_changed:
            _write_private(self.settings.cache_path, self._cache.serialize())
            self._cache.has_state_changed = False

    def _guarded(self, fn: Callable[[], Any]) -> Any:
        """Run an msal call (network inside), its failures translated."""
        try:
            return fn()
        except requests.RequestException as exc:  # msal raises for 5xx from the token endpoint, too
            raise translate(exc, what="OneDrive sign-in") from exc
        except ValueError as exc:  # authority discovery failed: wrong tenant or endpoint
            raise UserError(f"remote {self.settings.name!r}: cannot use authority "
                            f"{self.settings.authority}: {exc}") from exc

    def _call(self, fn: Callable[[], Any]) -> dict[str, Any] | None:
        result = self._guarded(fn)
        self._save()
        return result if isinstance(result, dict) else None

    def _acquire(self) -> dict[str, Any] | None:
        app, force = self._app, self._force
        if isinstance(app, msal.ConfidentialClientApplication):
            if force:  # acquire_token_for_client refuses force_refresh: drop the cached token instead
                app.remove_tokens_for_client()
            return self._call(lambda: app.acquire_token_for_client(APP_SCOPES))
        accounts = app.get_accounts()
        if not accounts:
            return None
        return self._call(lambda: app.acquire_token_silent_with_error(
            DELEGATED_SCOPES, accounts[0], force_refresh=force))

    def get_token(self) -> str:
        with self._lock:
            # msal's cache lookup costs a telemetry id, cache scans and file checks per call; a token
            # with minutes left is reused as is (a 401 invalidates it and forces a new one)
            if self._current and not self._force and time.monotonic() < self._valid_until:
                return self._current
            result = self._acquire()
            if not result or "access_token" not in result:
                err = (result or {}).get("error", "not signed in")
                raise PermissionDeniedError(f"OneDrive sign-in failed ({err}); {self.settings.hint}",
                                            status=401, code=str(err))
            self._force = False
            self._current = str(result["access_token"])
            lifetime = float(result.get("expires_in") or 0)
            self._valid_until = time.monotonic() + max(0.0, lifetime - 300)
            return self._current

    def invalidate(self, token: str) -> None:
        with self._lock:
            if token == self._current:  # another thread may already have replaced it
                self._force = True

    def login_device_code(self, prompt: Prompt | None = None) -> str:
        """Interactive device-code sign-in; `prompt(flow)` shows flow["message"] (default: stderr).

        Returns the signed-in account's user name. Raises PermissionDeniedError if declined or expired.
        """
        app = self._app
        if not isinstance(app, msal.PublicClientApplication):
            raise UserError(f"remote {self.settings.name!r} uses client credentials; nothing to sign in")
        flow = self._call(lambda: app.initiate_device_flow(scopes=DELEGATED_SCOPES)) or {}
        if "user_code" not in flow:
            raise PermissionDeniedError(f"device sign-in could not start ({flow.get('error', 'no code')})")
        (prompt or _stderr_prompt)(flow)
        result = self._call(lambda: app.acquire_token_by_device_flow(flow)) or {}
        if "access_token" not in result:
            raise PermissionDeniedError(f"device sign-in failed ({result.get('error', 'unknown')})",
                                        code=str(result.get("error")))
        with self._lock:
            self._current, self._force = str(result["access_token"]), False
        claims = result.get("id_token_claims") or {}
        return str(claims.get("preferred_username") or claims.get("name") or "")


_PER_CLIENT = (msal.TokenCache.CredentialType.ACCESS_TOKEN, msal.TokenCache.CredentialType.REFRESH_TOKEN,
               msal.TokenCache.CredentialType.ID_TOKEN, msal.TokenCache.CredentialType.APP_METADATA)


def _keep_own(cache: msal.SerializableTokenCache, client_id: str) -> None:
    """Drop what the cache holds for other client ids: one cache file serves one remote, which signs
    in as one client. msal itself never removes app metadata, and removes an expired access token
    only when a search passes it, so entries of a remote's earlier client ids would stay for good:
    every emulator has its own, and one remote name reused across emulators grew its cache to
    500 KB (2,300 entries), parsed and rewritten at each sign-in (~0.15 s of every run's start-up)."""
    for kind in _PER_CLIENT:
        stale = [e for e in cache.search(kind) if e.get("client_id") not in (None, client_id)]
        for entry in stale:
            cache.modify(kind, entry)  # no new values: removes it (and marks the cache changed)


def _stderr_prompt(flow: Mapping[str, Any]) -> None:
    print(flow.get("message") or f"Open {flow.get('verification_uri')} and enter {flow.get('user_code')}",
          file=sys.stderr, flush=True)


def login(section: Mapping[str, Any], *, name: str, state_dir: Path, prompt: Prompt | None = None) -> str:
    """`driveferry auth login NAME`: device-code sign-in (or, for an app, one token to prove the secret).

    Returns who is signed in (user name, or "app <client_id>"). Raises PermissionDeniedError, UserError.
    """
    tokens = MsalTokens(AuthSettings.from_section(section, name=name, state_dir=state_dir))
    if tokens.settings.device_code:
        return tokens.login_device_code(prompt)
    tokens.get_token()
    return f"app {tokens.settings.client_id}"


def token_source(section: Mapping[str, Any], *, name: str, state_dir: Path) -> TokenSource:
    """The TokenSource a remote section describes (a fixed `access_token`, else msal)."""
    if section.get("access_token"):
        return StaticToken(str(section["access_token"]), name)
    return MsalTokens(AuthSettings.from_section(section, name=name, state_dir=state_dir))
