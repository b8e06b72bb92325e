"""Remotes configuration: a TOML file (+ environment) -> frozen, typed settings with secrets redacted.

Location: `--config FILE`, else $DRIVEFERRY_CONFIG, else ~/.config/driveferry/remotes.toml
($XDG_CONFIG_HOME respected). A missing *default* file is not an error (plain local paths need no
config); the error comes when a remote name is used, and says where we looked and how to start.

    state_dir = "~/.local/state/driveferry"    # optional: token caches and other per-user state

    [remotes.work]
    type = "onedrive"                          # "gdrive" | "onedrive" | "local"
    tenant_id = "..."                          # type-specific keys go to the provider's factory
    endpoint = "https://127.0.0.1:8443"        # optional: an emulator's base URL instead of the cloud
    ca_file = "/path/emulator-ca.pem"          # optional: CA that signs the emulator's certificate

Environment overrides per key, like rclone's: DRIVEFERRY_REMOTE_<NAME>_<KEY> (upper case, '-' -> '_'),
so secrets can stay out of the file. Relative paths in `*_file` keys (and a local remote's `root`)
are taken relative to the config file's folder.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from driveferry.errors import UserError
from driveferry.typedconfig import Field, FileValueError, check_table, read_toml

ENV_CONFIG = "DRIVEFERRY_CONFIG"
ENV_STATE_DIR = "DRIVEFERRY_STATE_DIR"
EXAMPLE = "configs/remotes.example.toml"
REMOTE_TYPES = ("gdrive", "onedrive", "local")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# keys whose values are credentials: never printed, logged or put in reports
_SECRET = re.compile(r"secret|password|refresh_token|access_token|private_key|service_account_info|"
                     r"client_assertion|api_key", re.IGNORECASE)


def is_secret_key(key: str) -> bool:
    return bool(_SECRET.search(key))


def redact(section: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `section` safe to print: secret values replaced by '***'."""
    return {k: ("***" if is_secret_key(k) and v else v) for k, v in section.items()}


@dataclass(frozen=True)
class RemoteConfig:
    """One `[remotes.NAME]` section. `section` holds every key (env overrides applied) for the factory."""

    name: str
    type: str
    section: Mapping[str, Any] = field(repr=False)
    endpoint: str | None = None
    ca_file: Path | None = None

    def __repr__(self) -> str:
        return (f"RemoteConfig(name={self.name!r}, type={self.type!r}, endpoint={self.endpoint!r}, "
                f"ca_file={self.ca_file!r}, section={redact(self.section)!r})")


@dataclass(frozen=True)
class Config:
    """The loaded remotes. `path` is the file read (None when the default file does not exist)."""

    remotes: Mapping[str, RemoteConfig]
    state_dir: Path
    path: Path | None = None
    looked_at: Path | None = None

    def remote(self, name: str) -> RemoteConfig:
        """The remote called `name`. Raises UserError naming the configured ones (or the missing file)."""
        found = self.remotes.get(name)
        if found is not None:
            return found
        if self.path is None:
            raise UserError(f"unknown remote {name!r}: no config file at {self.looked_at}; create it from "
                            f"{EXAMPLE} (or pass --config FILE / set ${ENV_CONFIG})")
        known = ", ".join(sorted(self.remotes)) or "none"
        raise UserError(f"unknown remote {name!r} in {self.path}; configured remotes: {known}")


_TOP = {"state_dir": Field("string", empty=False), "remotes": Field("table")}
_S, _N = Field("string"), Field("numeric", minimum=0)
_COMMON = {"type": _S, "endpoint": _S, "ca_file": _S, "root": _S,
           "create_root": Field("flag"), "auth": _S, "client_id": _S, "client_secret": _S, "access_token": _S,
           "time_scale": _N, "timeout_s": _N, "retry_give_up": Field("scalar"),
           "retry_transient_give_up": Field("scalar"), "retry_first_contact": Field("scalar"),
           "retry_base_delay_s": _N, "retry_max_delay_s": _N, "retry_jitter": Field("string", choices=("full", "decorrelated")),
           "retry_attempts": Field("numeric", minimum=1), "max_attempts": Field("numeric", minimum=1)}
_GDRIVE = {"refresh_token": _S, "token_file": _S, "token_uri": _S, "service_account_file": _S,
           "service_account_info": Field("table"), "subject": _S, "scopes": Field("strings"), "drive_id": _S,
           "root_folder_id": _S, "root_path": _S, "use_trash": Field("flag"),
           "download_chunk_bytes": Field("numeric", minimum=1), "daily_upload_cap_bytes": _N,
           "shared_drive": Field("string", empty=False)}
_ONEDRIVE = {"tenant": _S, "tenant_id": _S, "authority": _S, "user": _S, "drive_id": _S, "api_root": _S,
             "site": Field("string", empty=False), "library": Field("string", empty=False)}
_ALL_KEYS: dict[str, Field] = {**_COMMON, **_GDRIVE, **_ONEDRIVE}
# the keys each type reads (the providers' from_remote_config and registry.retry_policy)
_KEYS: dict[object, tuple[str, ...]] = {"gdrive": (*_COMMON, *_GDRIVE), "onedrive": (*_COMMON, *_ONEDRIVE),
                                        "local": ("type", "root")}


def default_config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "driveferry" / "remotes.toml"


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "driveferry"


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Read the remotes config. Raises UserError (one line) for a missing explicit file, a folder, bad
    TOML (with the line number), text that is not UTF-8, a value of the wrong type or an unknown key
    (`config file <file>: <key>: expected <type>, got <value>`), a missing `type` or an unknown one,
    or a bad `ca_file`."""
    explicit = path if path is not None else os.environ.get(ENV_CONFIG) or None
    file = Path(os.path.expanduser(explicit)) if explicit else default_config_path()
    if not file.exists():
        if explicit:
            raise UserError(f"config file {file} not found; create it from {EXAMPLE}")
        return Config(remotes=MappingProxyType({}), state_dir=_state_dir(None, None), looked_at=file)
    try:
        data = check_table(file, "", read_toml(file), _TOP)
    except FileValueError as exc:
        raise UserError(f"config file {exc}") from None
    sections = data.get("remotes", {})
    remotes = {name: _remote(name, sec, file) for name, sec in sections.items()}
    return Config(remotes=MappingProxyType(remotes), state_dir=_state_dir(data.get("state_dir"), file),
                  path=file, looked_at=file)


def _state_dir(value: object, file: Path | None) -> Path:
    chosen = os.environ.get(ENV_STATE_DIR) or (str(value) if value else None)
    if not chosen:
        return default_state_dir()
    p = Path(os.path.expanduser(chosen))
    return p if p.is_absolute() or file is None else file.parent / p


def _remote(name: str, section: object, file: Path) -> RemoteConfig:
    where = f"config file {file}, [remotes.{name}]"
    if not _NAME.match(name):
        raise UserError(f"{where}: remote names use letters, digits, '_', '-' and '.' only")
    if not isinstance(section, dict):
        raise UserError(f"{where}: must be a table")
    kind_in_file = section.get("type")
    keys = _KEYS.get(kind_in_file, _ALL_KEYS) if isinstance(kind_in_file, str) else _ALL_KEYS
    try:  # the file's own values; environment overrides are text, read by the providers as such
        check_table(file, f"remotes.{name}", section, {k: _ALL_KEYS[k] for k in keys})
    except FileValueError as exc:
        raise UserError(f"config file {exc}") from None
    merged: dict[str, Any] = dict(section)
    prefix = f"DRIVEFERRY_REMOTE_{name.upper().replace('-', '_').replace('.', '_')}_"
    for env_key, value in os.environ.items():
        if env_key.startswith(prefix) and len(env_key) > len(prefix):
            merged[env_key[len(prefix):].lower()] = value
    kind = merged.get("type")
    if not kind:
        raise UserError(f"{where}: missing required key 'type' (one of {', '.join(REMOTE_TYPES)})")
    if kind not in REMOTE_TYPES:
        raise UserError(f"{where}: unknown type {kind!r}; use one of {', '.join(REMOTE_TYPES)}")
    for key in list(merged):
        is_local_root = key == "root" and kind == "local"  # cloud types use `root` for a remote folder
        if (is_local_root or key.endswith("_file")) and isinstance(merged[key], str):
            p = Path(os.path.expanduser(merged[key]))
            merged[key] = str(p if p.is_absolute() else file.parent / p)
    if kind == "local" and not merged.get("root"):
        raise UserError(f"{where}: missing required key 'root' (the local folder)")
    endpoint = merged.get("endpoint")
    if endpoint is not None and not re.match(r"^https?://[^/\s]+", str(endpoint)):
        raise UserError(f"{where}: endpoint must be an http(s) URL, not {endpoint!r}")
    ca_file = Path(merged["ca_file"]) if merged.get("ca_file") else None
    if ca_file is not None and not ca_file.is_file():
        raise UserError(f"{where}: ca_file {ca_file} does not exist")
    return RemoteConfig(name=name, type=str(kind), section=MappingProxyType(merged),
                        endpoint=str(endpoint).rstrip("/") if endpoint else None, ca_file=ca_file)
