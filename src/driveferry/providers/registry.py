"""From `REMOTE:PATH` to a provider: rclone-style addressing over the remotes config.

    gdrive:Backup/Videos      remote "gdrive", path "Backup/Videos"
    onedrive:/Documents       remote "onedrive", path "Documents" (a leading slash is the remote root)
    backup:                   remote "backup", its root
    ./photos, /data/x, x      a plain local path (no remote name before a colon)

Each remote type maps to a module exposing
`from_remote_config(section: Mapping[str, Any], *, name: str, state_dir: Path) -> Provider`.
Modules are imported lazily, so a broken or missing provider only fails the remotes that use it.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, cast

from driveferry.config import Config, RemoteConfig
from driveferry.errors import TransientError, UserError
from driveferry.providers.base import Provider
from driveferry.providers.ops import normalise_path
from driveferry.providers.pacing import RetryPolicy
from driveferry.providers.retrying import RetryingProvider
from driveferry.units import parse_duration

Factory = Callable[..., Provider]

# type -> module that defines `from_remote_config`
MODULES: dict[str, str] = {
    "gdrive": "driveferry.providers.gdrive.provider",
    "onedrive": "driveferry.providers.onedrive.provider",
    "local": "driveferry.providers.local",
}

# "name:" at the start, where name is a remote name (Windows drive letters are not supported paths)
_SPEC = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.-]*):(.*)$", re.DOTALL)


def parse_spec(spec: str) -> tuple[str | None, str]:
    """(remote name or None for a local path, path). A path with a '/' before the first ':' is local."""
    m = _SPEC.match(spec)
    if m is None:
        return None, spec
    return m.group(1), m.group(2)


def factory_for(kind: str) -> Factory:
    """The `from_remote_config` of remote type `kind`. Raises UserError when it cannot be loaded."""
    module_name = MODULES.get(kind)
    if module_name is None:
        raise UserError(f"remote type {kind!r} is not known; use one of {', '.join(sorted(MODULES))}")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise UserError(f"remote type {kind!r} is not available in this build of driveferry") from None
        raise
    if kind == "local":
        return cast(Factory, module.LocalProvider.from_remote_config)
    factory = getattr(module, "from_remote_config", None)
    if factory is None:
        raise UserError(f"remote type {kind!r} is not available (its module has no from_remote_config)")
    return cast(Factory, factory)


# the URL a cloud remote without `endpoint` talks to (named when it cannot be reached)
CLOUD_URLS = {"gdrive": "https://www.googleapis.com", "onedrive": "https://graph.microsoft.com"}


def build_provider(remote: RemoteConfig, state_dir: Path) -> Provider:
    """A provider for one configured remote. The state dir is created (0700) for cloud remotes, whose
    token caches live there; a local remote keeps no state.

    Cloud providers are wrapped here, once, in the retry and pacing layer (retrying.py), with the
    policy from the remote's section (`retry_policy`); the adapters themselves never retry.
    """
    if remote.type == "local":
        return factory_for(remote.type)(remote.section, name=remote.name, state_dir=state_dir)
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    endpoint = remote.endpoint or CLOUD_URLS.get(remote.type)
    try:
        inner = factory_for(remote.type)(remote.section, name=remote.name, state_dir=state_dir)
    except TransientError as exc:  # msal discovers its authority while the client is built
        raise TransientError(f"{remote.name}: cannot reach {endpoint} ({exc}); check the network and the "
                             "remote's endpoint", status=exc.status, code=exc.code) from exc
    return RetryingProvider(inner, retry_policy(remote.section, remote.name), endpoint=endpoint)


def retry_policy(section: Mapping[str, Any], name: str = "remote") -> RetryPolicy:
    """The RetryPolicy of a remote section. Keys: `time_scale` (an emulator's clock speed-up; every wait
    is divided by it), `retry_give_up` (how long one call may keep retrying throttles, e.g. "6h", the
    default; "0" or "never": forever), `retry_transient_give_up` (how long a run of 5xx and network
    errors may last, throttles between them not counted; default "15m"), `retry_first_contact` (how
    long to keep trying a remote that has not answered yet in this process, e.g. "10m"; default: 4
    tries, a few seconds), `retry_base_delay_s`, `retry_max_delay_s`, `retry_jitter` (full or
    decorrelated), `retry_attempts` (an optional cap on tries). Raises UserError for bad values."""
    base = RetryPolicy()
    try:
        give_up = _duration(section.get("retry_give_up", base.give_up_s))
        transient_give_up = _duration(section.get("retry_transient_give_up", base.transient_give_up_s))
        first_contact = _duration(section.get("retry_first_contact"))
        attempts = section.get("retry_attempts", section.get("max_attempts"))
        return RetryPolicy(
            base_delay_s=float(section.get("retry_base_delay_s", base.base_delay_s)),
            max_delay_s=float(section.get("retry_max_delay_s", base.max_delay_s)),
            jitter=str(section.get("retry_jitter", base.jitter)),  # type: ignore[arg-type]
            give_up_s=give_up, transient_give_up_s=transient_give_up, first_contact_give_up_s=first_contact,
            max_attempts=int(attempts) if attempts else None,
            time_scale=float(section.get("time_scale", 1.0)))
    except (TypeError, ValueError) as exc:
        raise UserError(f"remote {name!r}: bad retry setting: {exc}") from None



def _duration(value: Any) -> float | None:
    """Seconds from a number or a duration text ("15m"); None for "0", "never" or nothing (no limit)."""
    if value is None or str(value).strip().lower() in ("0", "0.0", "never", ""):
        return None
    return parse_duration(value)

def provider_from_section(name: str, section: Mapping[str, Any], state_dir: Path) -> Provider:
    """A provider from a section given in code (tests, the conformance suite's child processes)."""
    kind = str(section.get("type", ""))
    ca = section.get("ca_file")
    remote = RemoteConfig(name=name, type=kind, section=section,
                          endpoint=section.get("endpoint"), ca_file=Path(str(ca)) if ca else None)
    return build_provider(remote, state_dir)


def local_provider_for(path: str) -> tuple[Provider, str]:
    """A plain local path: a provider rooted at the filesystem root ('/'), and the path under it.

    The path is made absolute against the current directory without resolving symlinks, so names the
    user typed stay as typed.
    """
    from driveferry.providers.local import LocalProvider
    absolute = os.path.abspath(os.path.expanduser(path or "."))
    anchor = Path(absolute).anchor or "/"
    return LocalProvider(Path(anchor), name="local"), absolute[len(anchor):]


def open_remote(spec: str, config: Config) -> tuple[Provider, str]:
    """(provider, normalised path) for a spec. Each call builds a new provider (callers keep it).

    Raises UserError for an unknown remote (naming the configured ones), a missing config file, a
    remote type that is not available, or '..' in a remote path.
    """
    name, path = parse_spec(spec)
    if name is None:
        return local_provider_for(path)
    remote = config.remote(name)
    return build_provider(remote, config.state_dir), normalise_path(path)
