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

A section that sets no `auth` and no credential keys uses the sign-in `driveferry auth login NAME`
stored under the state directory (`gdrive-NAME.login.json`, mode 0600: an authorized-user JSON, a
service-account key, or `{"type": "adc"}`); without one it falls back to application default
credentials.

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
import google.auth.exceptions
from google.auth import credentials as ga_credentials
from google.auth.transport import Request
from google.oauth2 import credentials as user_credentials
from google.oauth2 import service_account

from driveferry.errors import UserError

log = logging.getLogger(__name__)

DRIVE_SCOPE = "https://www.googleapis.com/auth/drive"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
_MODES = ("oauth", "service_account", "adc", "access_token")


CREDENTIAL_KEYS = ("refresh_token", "token_file", "service_account_file", "service_account_info", "access_token")


def login_path(state_dir: Path, name: str) -> Path:
    """Where `driveferry auth login NAME` keeps a Drive sign-in (a secret: mode 0600)."""
    return Path(state_dir) / f"gdrive-{name}.login.json"


def stored_login(state_dir: Path | None, name: str) -> dict[str, Any] | None:
    """The sign-in `auth login` stored for remote `name`, or None. Raises UserError if it is unreadable."""
    if state_dir is None or not login_path(state_dir, name).is_file():
        return None
    path = login_path(state_dir, name)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"remote {name!r}: stored sign-in {path} is unreadable ({type(exc).__name__}); "
                        f"run `driveferry auth login {name}` again") from None
    if not isinstance(data, dict):
        raise UserError(f"remote {name!r}: stored sign-in {path} is not a JSON object")
    return data


def section_with_login(section: Mapping[str, Any], *, name: str, state_dir: Path | None) -> Mapping[str, Any]:
    """`section`, plus the stored `auth login` sign-in when the section names no credentials itself."""
    if names_credentials(section):
        return section
    login = stored_login(state_dir, name)
    return section if login is None else apply_login(section, login)


def names_credentials(section: Mapping[str, Any]) -> list[str]:
    """The keys by which `section` chooses its own credentials (a stored sign-in is then not used)."""
    return [k for k in ("auth", *CREDENTIAL_KEYS) if section.get(k)]


def apply_login(section: Mapping[str, Any], login: Mapping[str, Any]) -> dict[str, Any]:
    """`section` with a sign-in (authorized_user JSON, service-account key or {"type": "adc"}) applied."""
    kind = login.get("type")
    if kind == "service_account":
        return {**section, "auth": "service_account", "service_account_info": dict(login)}
    if kind == "authorized_user":
        return {**section, "auth": "oauth", **{k: login.get(k) for k in ("client_id", "client_secret",
                                                                        "refresh_token")},
                "token_uri": login.get("token_uri") or section.get("token_uri") or GOOGLE_TOKEN_URI}
    return {**section, "auth": "adc"}


def auth_mode(section: Mapping[str, Any]) -> str:
    """The auth mode a section uses: its `auth`, else inferred from the keys present."""
    return str(section.get("auth") or _infer_mode(section))


def load_credentials(section: Mapping[str, Any], *, name: str, state_dir: Path | None) -> ga_credentials.Credentials:
    """Credentials for remote `name` from its config `section` (or the sign-in `auth login` stored).

    Raises UserError naming a missing key, or an unreadable/invalid key or token file.
    """
    section = section_with_login(section, name=name, state_dir=state_dir)
    mode = str(section.get("auth") or _infer_mode(section))
    scopes = _scopes(section.get("scopes"))
    if mode == "access_token":
        return user_credentials.Credentials(token=_req(section, "access_token", name))  # type: ignore[no-untyped-call]
    if mode == "oauth":
        return _oauth(section, name=name, scopes=scopes, state_dir=state_dir)
    if mode == "service_account":
        info: Any
        if section.get("service_account_file"):
            info = read_json_file(str(section["service_account_file"]), "service_account_file", name)
        else:
            info = section.get("service_account_info")
            if isinstance(info, str):
                try:
                    info = json.loads(info)
                except ValueError:
                    raise UserError(f"remote {name!r}: service_account_info is not JSON") from None
        if not isinstance(info, Mapping):
            raise UserError(f"remote {name!r}: set service_account_file or service_account_info")
        try:
            sa = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
                dict(info), scopes=scopes)
        except (ValueError, TypeError, KeyError) as exc:
            # the message names a missing field or a bad key format, never the key itself
            raise UserError(f"remote {name!r}: not a valid service account key ({_why(exc)})") from None
        subject = section.get("subject")
        return sa.with_subject(str(subject)) if subject else sa  # type: ignore[no-any-return]
    if mode == "adc":
        # "No project ID could be determined" is noise here: Drive calls need no project
        logging.getLogger("google.auth._default").setLevel(logging.ERROR)
        try:
            creds, _project = google.auth.default(scopes=scopes)
        except google.auth.exceptions.DefaultCredentialsError:
            raise UserError(f"remote {name!r}: no application default credentials here; on Colab run "
                            "`from google.colab import auth; auth.authenticate_user()`, else configure "
                            f"another auth (see `driveferry auth login {name} --help`)") from None
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


def _why(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text if len(text) < 120 and "PRIVATE KEY" not in text else type(exc).__name__


def read_json_file(path: str, key: str, name: str) -> dict[str, Any]:
    """A JSON object from a credentials file. Raises UserError (missing, unreadable, not a JSON object);
    the message names the file, never its content."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"remote {name!r}: {key} {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"remote {name!r}: {key} {path} cannot be read ({type(exc).__name__})") from None
    except ValueError:
        raise UserError(f"remote {name!r}: {key} {path} is not JSON") from None
    if not isinstance(data, dict):
        raise UserError(f"remote {name!r}: {key} {path} is not a JSON object")
    return data


def _req(section: Mapping[str, Any], key: str, name: str) -> str:
    value = section.get(key)
    if not value:
        raise UserError(f"remote {name!r}: missing {key!r} (see the gdrive auth docs)")
    return str(value)


def _oauth(section: Mapping[str, Any], *, name: str, scopes: list[str],
           state_dir: Path | None) -> ga_credentials.Credentials:
    if section.get("token_file") and not section.get("refresh_token"):
        info = read_json_file(str(section["token_file"]), "token_file", name)
        missing = [k for k in ("client_id", "client_secret", "refresh_token") if not info.get(k)]
        if missing:
            raise UserError(f"remote {name!r}: token_file {section['token_file']} lacks {', '.join(missing)} "
                            "(expected an authorized_user JSON)")
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
