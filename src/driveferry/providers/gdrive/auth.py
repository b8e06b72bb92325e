"""Google credentials from a remote's config section.

Exactly one source is used, chosen by `auth` or, when absent, by which keys are present:

- `auth = "oauth"`: an installed-app (Desktop) OAuth client and a user's refresh token:
  `client_id`, `client_secret`, `refresh_token`, optional `token_uri`
  (default https://oauth2.googleapis.com/token). Or `token_file`: an authorized-user JSON file
  (`{"client_id","client_secret","refresh_token",...}`, as google-auth-oauthlib's `creds.to_json()`
  and `gcloud auth application-default login` write).
- `auth = "service_account"`: `service_account_file` (the JSON key) or `service_account_info` (the
  key as a table or JSON text), optional `subject` to impersonate a Workspace user through
  domain-wide delegation (needed to write into a user's My Drive: service accounts have no storage).
- `auth = "adc"`: application default credentials, e.g. after Colab's `auth.authenticate_user()`.
- `auth = "access_token"`: a fixed bearer `access_token` that is never refreshed (tests, emulator).

`scopes` (list or space-separated text) defaults to the full Drive scope.

Obtaining a refresh token (needs a browser, once, on any machine): create an OAuth client of type
"Desktop app" in the Google Cloud console (APIs & Services > Credentials), enable the Drive API, then
run `pip install google-auth-oauthlib` and

    from google_auth_oauthlib.flow import InstalledAppFlow
    flow = InstalledAppFlow.from_client_secrets_file("client_secret.json",
                                                     ["https://www.googleapis.com/auth/drive"])
    print(flow.run_local_server(port=0).refresh_token)

and put client_id, client_secret and the printed refresh_token in the remote's section (or secrets
env). Google may rotate refresh tokens; the current one is kept in a token file under the state
directory, written with mode 0600.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import google.auth
from google.auth import credentials as ga_credentials
from google.auth.transport import Request
from google.oauth2 import credentials as user_credentials
from google.oauth2 import service_account

from driveferry.errors import UserError

log = logging.getLogger(__name__)

DRIVE_SCOPE = "https://www.googleapis.com/auth/drive"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
_MODES = ("oauth", "service_account", "adc", "access_token")


def load_credentials(section: Mapping[str, Any], *, name: str, state_dir: Path | None) -> ga_credentials.Credentials:
    """Credentials for remote `name` from its config `section`. Raises UserError naming a missing key."""
    mode = str(section.get("auth") or _infer_mode(section))
    scopes = _scopes(section.get("scopes"))
    if mode == "access_token":
        return user_credentials.Credentials(token=_req(section, "access_token", name))  # type: ignore[no-untyped-call]
    if mode == "oauth":
        return _oauth(section, name=name, scopes=scopes, state_dir=state_dir)
    if mode == "service_account":
        if section.get("service_account_file"):
            sa = service_account.Credentials.from_service_account_file(  # type: ignore[no-untyped-call]
                str(section["service_account_file"]), scopes=scopes)
        else:
            info = section.get("service_account_info")
            if isinstance(info, str):
                info = json.loads(info)
            if not isinstance(info, Mapping):
                raise UserError(f"remote {name!r}: set service_account_file or service_account_info")
            sa = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
                dict(info), scopes=scopes)
        subject = section.get("subject")
        return sa.with_subject(str(subject)) if subject else sa  # type: ignore[no-any-return]
    if mode == "adc":
        creds, _project = google.auth.default(scopes=scopes)
        return creds
    raise UserError(f"remote {name!r}: auth must be one of {', '.join(_MODES)}, not {mode!r}")


def _infer_mode(section: Mapping[str, Any]) -> str:
    if section.get("refresh_token") or section.get("token_file"):
        return "oauth"
    if section.get("service_account_file") or section.get("service_account_info"):
        return "service_account"
    if section.get("access_token"):
        return "access_token"
    return "adc"


def _scopes(value: object) -> list[str]:
    if value is None:
        return [DRIVE_SCOPE]
    if isinstance(value, str):
        return value.split()
    if isinstance(value, Sequence):
        return [str(v) for v in value]
    raise UserError("scopes must be a list or space-separated text")


def _req(section: Mapping[str, Any], key: str, name: str) -> str:
    value = section.get(key)
    if not value:
        raise UserError(f"remote {name!r}: missing {key!r} (see the gdrive auth docs)")
    return str(value)


def _oauth(section: Mapping[str, Any], *, name: str, scopes: list[str],
           state_dir: Path | None) -> ga_credentials.Credentials:
    if section.get("token_file") and not section.get("refresh_token"):
        info = json.loads(Path(str(section["token_file"])).read_text())
    else:
        info = {"client_id": _req(section, "client_id", name),
                "client_secret": _req(section, "client_secret", name),
                "refresh_token": _req(section, "refresh_token", name),
                "token_uri": section.get("token_uri") or GOOGLE_TOKEN_URI}
    # The cache is keyed by the configured client and refresh token, so re-authorising (a new
    # refresh_token in the config) supersedes whatever rotated token the cache holds.
    fingerprint = hashlib.sha256(f"{info['client_id']}\0{info['refresh_token']}".encode()).hexdigest()[:16]
    cache = state_dir / f"gdrive-{name}.token.json" if state_dir else None
    token, expiry = None, None
    if cache and cache.exists():
        try:
            saved = json.loads(cache.read_text())
            if saved.get("fingerprint") == fingerprint:
                info["refresh_token"] = saved["refresh_token"]
                token = saved.get("access_token")
                expiry = datetime.fromisoformat(saved["expiry"]).replace(tzinfo=None) if saved.get("expiry") else None
        except (ValueError, KeyError, OSError) as exc:
            log.warning("ignoring unreadable token file %s (%s)", cache, type(exc).__name__)
    return _PersistingCredentials(token=token, expiry=expiry, refresh_token=info["refresh_token"],
                                  token_uri=info.get("token_uri") or GOOGLE_TOKEN_URI,
                                  client_id=info["client_id"], client_secret=info["client_secret"],
                                  scopes=scopes, cache=cache, fingerprint=fingerprint)


class _PersistingCredentials(user_credentials.Credentials):
    """User credentials that save the access token and the (possibly rotated) refresh token on refresh."""

    def __init__(self, *args: Any, cache: Path | None, fingerprint: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
        self._cache = cache
        self._fingerprint = fingerprint

    def refresh(self, request: Request) -> None:
        super().refresh(request)  # type: ignore[no-untyped-call]
        if self._cache is not None:
            expiry = self.expiry.replace(tzinfo=UTC).isoformat() if self.expiry else None
            try:
                write_private(self._cache, json.dumps({"fingerprint": self._fingerprint, "access_token": self.token,
                                                       "expiry": expiry, "refresh_token": self.refresh_token}))
            except OSError as exc:  # the transfer can go on; the next process just refreshes again
                log.warning("could not save the Google token file %s (%s)", self._cache, exc.strerror)


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path` atomically, readable by the owner only (0600), whatever the umask."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # unique per writer: threads sharing one credentials object may refresh at the same moment
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)
