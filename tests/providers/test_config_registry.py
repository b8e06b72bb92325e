"""Remotes config and the registry: addressing, errors as one-line UserErrors, redaction, factories."""

from __future__ import annotations

from pathlib import Path

import pytest

from driveferry.config import Config, RemoteConfig, load_config, redact
from driveferry.errors import UserError
from driveferry.providers import registry
from driveferry.providers.local import LocalProvider


@pytest.fixture(autouse=True)
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("DRIVEFERRY_CONFIG", raising=False)
    monkeypatch.delenv("DRIVEFERRY_STATE_DIR", raising=False)


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "remotes.toml"
    p.write_text(text)
    return p


@pytest.mark.parametrize(("spec", "expected"), [
    ("gdrive:Backup/Videos", ("gdrive", "Backup/Videos")),
    ("onedrive:/Documents", ("onedrive", "/Documents")),
    ("work:", ("work", "")),
    ("./photos", (None, "./photos")),
    ("/data/x", (None, "/data/x")),
    ("plain", (None, "plain")),
    ("./odd:name", (None, "./odd:name")),
    ("g:", ("g", "")),
])
def test_parse_spec(spec: str, expected: tuple[str | None, str]) -> None:
    assert registry.parse_spec(spec) == expected


def test_missing_default_file_is_fine_until_a_remote_is_used(tmp_path: Path) -> None:
    cfg = load_config()
    assert cfg.path is None and cfg.looked_at == tmp_path / "xdg" / "driveferry" / "remotes.toml"
    provider, path = registry.open_remote(str(tmp_path), cfg)
    assert isinstance(provider, LocalProvider) and provider.stat(path).is_dir
    with pytest.raises(UserError, match="no config file at .*remotes.example.toml"):
        registry.open_remote("gdrive:x", cfg)


def test_explicit_or_env_file_must_exist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UserError, match="not found"):
        load_config(tmp_path / "none.toml")
    monkeypatch.setenv("DRIVEFERRY_CONFIG", str(tmp_path / "env.toml"))
    with pytest.raises(UserError, match="env.toml not found"):
        load_config()


@pytest.mark.parametrize(("text", "message"), [
    ("[remotes.a\n", "line 1"),
    ("[remotes.a]\nroot = '/'\n", "missing required key 'type'"),
    ("[remotes.a]\ntype = 'ftp'\n", "unknown type 'ftp'"),
    ("[remotes.a]\ntype = 'local'\n", "missing required key 'root'"),
    ("[remotes.a]\ntype = 'gdrive'\nendpoint = 'localhost'\n", "endpoint must be an http"),
    ("[remotes.a]\ntype = 'gdrive'\nca_file = 'nope.pem'\n", "ca_file .* does not exist"),
    ("remotes = 3\n", "remotes: expected a table"),
])
def test_config_errors_are_one_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(UserError, match=message) as info:
        load_config(write(tmp_path, text))
    assert "\n" not in str(info.value)


def test_sections_paths_env_overrides_and_redaction(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ca.pem").write_text("x")
    (tmp_path / "data").mkdir()
    monkeypatch.setenv("DRIVEFERRY_REMOTE_EMU_G_CLIENT_SECRET", "from-env")
    cfg = load_config(write(tmp_path, """
state_dir = "st"
[remotes.emu-g]
type = "gdrive"
endpoint = "https://127.0.0.1:8443/"
ca_file = "ca.pem"
refresh_token = "rt-secret"
root = "Backup"
[remotes.disk]
type = "local"
root = "data"
"""))
    g = cfg.remote("emu-g")
    assert g.endpoint == "https://127.0.0.1:8443" and g.ca_file == tmp_path / "ca.pem"
    assert g.section["client_secret"] == "from-env" and g.section["root"] == "Backup"
    assert "rt-secret" not in repr(g) and "from-env" not in repr(g) and "***" in repr(g)
    assert "rt-secret" not in repr(cfg)
    assert redact({"client_secret": "s", "token_uri": "u"}) == {"client_secret": "***", "token_uri": "u"}
    assert cfg.state_dir == tmp_path / "st"
    provider, path = registry.open_remote("disk:/", cfg)
    assert isinstance(provider, LocalProvider) and provider.root_path == tmp_path / "data" and path == ""
    with pytest.raises(UserError, match="configured remotes: disk, emu-g"):
        cfg.remote("nope")
    with pytest.raises(UserError, match="'..'"):
        registry.open_remote("disk:../up", cfg)


def test_unavailable_provider_module_is_a_user_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(registry.MODULES, "gdrive", "driveferry.providers.not_written_yet")
    remote = RemoteConfig(name="g", type="gdrive", section={"type": "gdrive"})
    cfg = Config(remotes={"g": remote}, state_dir=tmp_path / "s", path=tmp_path / "r.toml")
    with pytest.raises(UserError, match="remote type 'gdrive' is not available"):
        registry.open_remote("g:x", cfg)
