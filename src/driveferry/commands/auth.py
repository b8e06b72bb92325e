"""`driveferry auth login|status`: sign a remote in once on a headless relay, and show who is signed in.

OneDrive (`auth = "device_code"`): prints Microsoft's message (a URL and a code to enter on any device),
waits for the sign-in and caches the tokens, mode 0600, under the state directory. A client-credentials
remote is checked instead (one token proves the secret).

Google Drive has no headless installed-app flow, so login takes credentials made elsewhere, tests them
(signs in, lists the root, asks Drive who this is) and stores them, mode 0600, under the state
directory, where the remote uses them when its config section names no credentials itself:
  --service-account KEY.json   a service account key (with `subject` in the config for domain-wide
                               delegation into a user's My Drive)
  --token-file FILE            an authorized_user JSON (client_id, client_secret, refresh_token)
  --paste-refresh-token        read a refresh token from stdin; client_id/client_secret come from config
  --adc                        application default credentials; chosen by itself on Colab
With none of these, the credentials the config already names are tested.

Status and errors never print a token, a secret or a key.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from driveferry.commands.common import add_config_arg
from driveferry.errors import UserError

EPILOG = """\
examples:
  driveferry auth login onedrive                          # device code: open the URL, enter the code
  driveferry auth login gdrive --service-account sa-key.json
  driveferry auth login gdrive --token-file authorized_user.json
  driveferry auth login gdrive                            # on Colab: its default credentials
  driveferry auth status

`login` takes a configured remote name, or `gdrive`/`onedrive` when exactly one remote has that type.
exit codes: 0 signed in (or shown); 2 bad input, or the sign-in was refused (nothing stored)."""

CLOUD_TYPES = ("gdrive", "onedrive")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("auth", help="sign a remote in (device code, service account, token file, Colab)",
                       description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    asub = p.add_subparsers(dest="auth_command", metavar="ACTION", parser_class=type(p))
    login = asub.add_parser("login", help="sign a remote in and store the credentials (0600)",
                            description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    login.add_argument("remote", metavar="REMOTE", help="a configured remote name, or gdrive / onedrive")
    how = login.add_mutually_exclusive_group()
    how.add_argument("--service-account", metavar="KEY.json", help="Drive: a service account key file")
    how.add_argument("--token-file", metavar="FILE", help="Drive: an authorized_user JSON file")
    how.add_argument("--paste-refresh-token", action="store_true",
                     help="Drive: read a refresh token from stdin (never put one on the command line)")
    how.add_argument("--adc", action="store_true", help="Drive: application default credentials (Colab)")
    add_config_arg(login)
    login.set_defaults(func=run_login)
    status = asub.add_parser("status", help="show who is signed in to each remote (never a token)",
                             description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    status.add_argument("remote", metavar="REMOTE", nargs="?", help="one remote (default: all configured)")
    status.add_argument("--json", action="store_true", help="one JSON object per remote")
    add_config_arg(status)
    status.set_defaults(func=run_status)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def find_remote(config: Any, target: str) -> Any:
    """The RemoteConfig `target` names: a remote name, else a cloud type with exactly one remote.

    Raises UserError (unknown remote, or several remotes of that type)."""
    if target in config.remotes:
        return config.remotes[target]
    if target in CLOUD_TYPES:
        matches = sorted(r.name for r in config.remotes.values() if r.type == target)
        if len(matches) == 1:
            return config.remotes[matches[0]]
        if matches:
            raise UserError(f"several {target} remotes are configured ({', '.join(matches)}); name one")
    return config.remote(target)  # raises the usual "unknown remote" error


def in_colab() -> bool:
    """True on a Colab VM (its runtime sets COLAB_RELEASE_TAG; the google.colab package is there)."""
    if os.environ.get("COLAB_RELEASE_TAG"):
        return True
    import importlib.util
    try:
        return importlib.util.find_spec("google.colab") is not None
    except (ImportError, ValueError):
        return False


# --- login -----------------------------------------------------------------------------------------------


def run_login(args: argparse.Namespace) -> int:
    from driveferry import config as cfg
    config = cfg.load_config(args.config)
    remote = find_remote(config, args.remote)
    state_dir = Path(config.state_dir)
    gdrive_opts = args.service_account or args.token_file or args.paste_refresh_token or args.adc
    if remote.type == "onedrive":
        if gdrive_opts:
            raise UserError(f"remote {remote.name!r} is OneDrive: --service-account, --token-file, "
                            "--paste-refresh-token and --adc are for Google Drive remotes")
        return _login_onedrive(remote, state_dir)
    if remote.type == "gdrive":
        return _login_gdrive(remote, state_dir, args)
    raise UserError(f"remote {remote.name!r} is a {remote.type} remote: it needs no sign-in")


def _prompt(flow: Mapping[str, Any]) -> None:
    text = flow.get("message") or f"Open {flow.get('verification_uri')} and enter the code {flow.get('user_code')}"
    print(text, flush=True)  # stdout: what the user acts on; stderr stays for the one error line


def _login_onedrive(remote: Any, state_dir: Path) -> int:
    from driveferry.providers.onedrive import auth as od
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    who = od.login(remote.section, name=remote.name, state_dir=state_dir, prompt=_prompt)
    cache = od.AuthSettings.from_section(remote.section, name=remote.name, state_dir=state_dir).cache_path
    where = f"; token cache {cache} (mode 0600)" if cache.exists() else ""
    print(f"{remote.name}: signed in to OneDrive as {who or 'an unnamed account'}{where}")
    return 0


def _login_gdrive(remote: Any, state_dir: Path, args: argparse.Namespace) -> int:
    from driveferry.providers.gdrive import auth as ga
    section = dict(remote.section)
    login: dict[str, Any] | None = None
    if args.service_account:
        login = ga.read_json_file(args.service_account, "--service-account", remote.name)
        missing = [k for k in ("client_email", "private_key", "token_uri") if not login.get(k)]
        if login.get("type") != "service_account" or missing:
            raise UserError(f"{args.service_account} is not a service account key (type "
                            f"{str(login.get('type'))!r}{', lacks ' + ', '.join(missing) if missing else ''})")
    elif args.token_file:
        info = ga.read_json_file(args.token_file, "--token-file", remote.name)
        login = _authorized_user(info, args.token_file)
    elif args.paste_refresh_token:
        login = _authorized_user({**{k: section.get(k) for k in ("client_id", "client_secret", "token_uri")},
                                  "refresh_token": _read_secret("refresh token: ")}, f"config of {remote.name!r}")
    elif args.adc or (in_colab() and not ga.names_credentials(section)):
        _colab_authenticate()
        if ga.auth_mode(section) != "adc" or not section.get("auth"):  # `auth = "adc"` configured: just test
            login = {"type": "adc"}
    if login is not None:
        explicit = ga.names_credentials(section)
        if explicit:
            raise UserError(f"remote {remote.name!r} sets {', '.join(explicit)} in its config, which would win "
                            "over a stored sign-in: remove those keys, then log in again")
        test_section: Mapping[str, Any] = ga.apply_login(section, login)
    else:
        if not ga.names_credentials(section) and ga.stored_login(state_dir, remote.name) is None:
            raise UserError(f"remote {remote.name!r} has no Drive credentials: give --service-account KEY.json, "
                            "--token-file authorized_user.json or --paste-refresh-token (or run on Colab)")
        test_section = ga.section_with_login(section, name=remote.name, state_dir=state_dir)
    account = _test_gdrive(remote.name, test_section, state_dir)
    if login is not None:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        ga.write_private(ga.login_path(state_dir, remote.name), json.dumps({**login, "account": account}))
        print(f"{remote.name}: signed in to Google Drive as {account} ({_mode_text(login)}); stored in "
              f"{ga.login_path(state_dir, remote.name)} (mode 0600)")
    else:
        print(f"{remote.name}: the configured Google credentials work; signed in as {account}")
    return 0


def _authorized_user(info: Mapping[str, Any], where: str) -> dict[str, Any]:
    missing = [k for k in ("client_id", "client_secret", "refresh_token") if not info.get(k)]
    if missing:
        raise UserError(f"{where}: missing {', '.join(missing)} (an authorized_user JSON has client_id, "
                        "client_secret and refresh_token)")
    out = {"type": "authorized_user", **{k: str(info[k]) for k in ("client_id", "client_secret", "refresh_token")}}
    if info.get("token_uri"):
        out["token_uri"] = str(info["token_uri"])
    return out


def _read_secret(label: str) -> str:
    value = getpass.getpass(label) if sys.stdin.isatty() else sys.stdin.readline()
    value = value.strip()
    if not value:
        raise UserError("no refresh token given on stdin")
    return value


def _colab_authenticate() -> None:
    """On Colab, make sure the notebook's user has granted access (a no-op when already done)."""
    try:
        from google.colab import auth as colab_auth
    except ImportError:
        return
    colab_auth.authenticate_user()


def _test_gdrive(name: str, section: Mapping[str, Any], state_dir: Path) -> str:
    """Sign in with `section`, list the root and return the account's e-mail. Raises DriveferryError."""
    from driveferry.providers.gdrive.provider import from_remote_config
    from driveferry.providers.ops import resolve
    provider = from_remote_config(section, name=name, state_dir=state_dir)
    root = resolve(provider, "")
    next(iter(provider.list(root)), None)
    user = provider.api.about_user()
    return str(user.get("emailAddress") or user.get("displayName") or "an unnamed account")


def _mode_text(login: Mapping[str, Any]) -> str:
    kind = login.get("type")
    if kind == "service_account":
        return f"service account {login.get('client_email')}"
    if kind == "authorized_user":
        return f"refresh token of OAuth client {login.get('client_id')}"
    return "application default credentials"


# --- status ----------------------------------------------------------------------------------------------


def run_status(args: argparse.Namespace) -> int:
    from driveferry import config as cfg
    config = cfg.load_config(args.config)
    remotes = [find_remote(config, args.remote)] if args.remote else [config.remotes[n] for n in sorted(config.remotes)]
    if not remotes:
        raise UserError(f"no remotes configured in {config.path or config.looked_at}; create it from {cfg.EXAMPLE}")
    for remote in remotes:
        signed_in, text = describe(remote, Path(config.state_dir))
        if args.json:
            print(json.dumps({"remote": remote.name, "type": remote.type, "signed_in": signed_in, "detail": text}))
        else:
            print(f"{remote.name} ({remote.type}): {text}")
    return 0


def describe(remote: Any, state_dir: Path) -> tuple[bool | None, str]:
    """(signed in? None when no sign-in applies, a one-line description). Offline; never a secret."""
    section: Mapping[str, Any] = remote.section
    if remote.type == "onedrive":
        return _describe_onedrive(remote.name, section, state_dir)
    if remote.type == "gdrive":
        return _describe_gdrive(remote.name, section, state_dir)
    return None, "local folder, no sign-in"


def _describe_onedrive(name: str, section: Mapping[str, Any], state_dir: Path) -> tuple[bool | None, str]:
    from driveferry.providers.onedrive import auth as od
    if section.get("access_token"):
        return True, "a fixed access token from the config (cannot refresh)"
    try:
        settings = od.AuthSettings.from_section(section, name=name, state_dir=state_dir)
    except UserError as exc:
        return False, f"misconfigured: {exc}"
    if not settings.device_code:
        return True, f"app {settings.client_id} of tenant {settings.tenant} (client credentials)"
    accounts = _cached_accounts(settings.cache_path)
    if not accounts:
        return False, f"not signed in; run `driveferry auth login {name}`"
    return True, f"signed in as {accounts[0]} (device code; token cache {settings.cache_path})"


def _cached_accounts(path: Path) -> list[str]:
    """User names in an msal token cache file, read offline (msal apps would contact the authority)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    accounts = data.get("Account") if isinstance(data, dict) else None
    if not isinstance(accounts, dict):
        return []
    return sorted(str(a.get("username")) for a in accounts.values() if isinstance(a, dict) and a.get("username"))


def _describe_gdrive(name: str, section: Mapping[str, Any], state_dir: Path) -> tuple[bool | None, str]:
    from driveferry.providers.gdrive import auth as ga
    try:
        login = ga.stored_login(state_dir, name)
        merged = ga.section_with_login(section, name=name, state_dir=state_dir)
    except UserError as exc:
        return False, str(exc)
    source = "stored by `auth login`" if merged is not section else "from the config"
    account = f" as {login['account']}" if login and merged is not section and login.get("account") else ""
    mode = ga.auth_mode(merged)
    if mode == "access_token":
        return True, f"a fixed access token {source} (cannot refresh)"
    if mode == "oauth":
        if merged.get("token_file") and not merged.get("refresh_token"):
            return True, f"authorized_user token file {merged['token_file']}"
        return True, f"refresh token of OAuth client {merged.get('client_id')}{account} ({source})"
    if mode == "service_account":
        email = (merged.get("service_account_info") or {}).get("client_email") \
            if isinstance(merged.get("service_account_info"), Mapping) else None
        who = email or merged.get("service_account_file") or "a service account"
        subject = f", acting as {merged['subject']}" if merged.get("subject") else ""
        return True, f"service account {who}{subject} ({source})"
    if mode == "adc":
        where = "Colab" if in_colab() else "this machine"
        return True, f"application default credentials of {where}{account} ({source})"
    return False, f"unknown auth {mode!r}"
