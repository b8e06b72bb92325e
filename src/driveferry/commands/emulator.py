"""`driveferry emulator serve`: a local, stateful stand-in for Google Drive v3, Microsoft Graph and both
sign-in services, on one loopback port."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from driveferry.errors import UserError

DEFAULT_PORT = 8443

EPILOG = """\
example:
  driveferry emulator serve --data ./emulator --tls --seed configs/emulator/small.toml \\
      --remotes-out ./emulator-remotes.toml
  driveferry ls emu-onedrive:/Projects --config ./emulator-remotes.toml

The port stays the same across restarts of one --data folder (8443 on a first start when it is free), so
a written remotes file stays valid; --port N picks one, --port 0 any free port.
Prints one JSON line: {"base_url", "ca_file", "data_dir", "credentials": {...}[, "connect_proxy"]
[, "remotes_file"]} and
serves until Ctrl-C. With --connect-proxy, clients with fixed endpoints reach it as
HTTPS_PROXY=<connect_proxy> with the CA file trusted (e.g. rclone --ca-cert <ca_file>).
State (metadata in SQLite, content as files under --data) survives a restart, open upload sessions
included. Control endpoint: <base_url>/_emulator/{counters,faults,clock,realism}. With --profile, the
emulator is as hard as the real services (see configs/emulator/real.toml)."""


def add_parser(sub: Any) -> None:
    p = sub.add_parser("emulator", help="run the local emulator of Google Drive and OneDrive",
                       description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    esub = p.add_subparsers(dest="emulator_command", metavar="ACTION", parser_class=type(p))
    s = esub.add_parser("serve", help="start the emulator and print its address and credentials",
                        description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("--data", required=True, metavar="DIR", help="state directory (created if missing)")
    s.add_argument("--host", default="127.0.0.1", help="bind address (loopback unless --allow-remote)")
    s.add_argument("--port", type=int, default=None,
                   help=f"port (default: the one this --data folder served on last time, else {DEFAULT_PORT} "
                        "if free, else any free port; 0: any free port)")
    s.add_argument("--tls", action="store_true", help="serve https with a generated local CA (msal needs it)")
    s.add_argument("--seed", metavar="FILE", help="TOML tree spec to create (see configs/emulator/)")
    s.add_argument("--faults", metavar="FILE", help="TOML fault plan (see configs/emulator/faults.example.toml)")
    s.add_argument("--profile", metavar="FILE",
                   help="realism profile TOML (configs/emulator/real.toml): rate limits, throttling, listing lag, "
                        "per-client appProperties, scaled clock, ...; default: none (the kind emulator)")
    s.add_argument("--latency-ms", type=float, metavar="MS",
                   help="wall-clock delay added to every API request, as a WAN round trip (also latency_ms in "
                        "a realism profile; this flag wins)")
    s.add_argument("--connect-proxy", type=int, metavar="PORT",
                   help="also run an HTTP CONNECT proxy on 127.0.0.1:PORT (0: any) tunnelling every host to the "
                        "emulator, for clients with fixed endpoints (rclone); needs --tls")
    s.add_argument("--remotes-out", metavar="FILE",
                   help="write a ready remotes file for this emulator here (mode 0600: it holds its secrets): "
                        "remotes emu-onedrive and emu-gdrive; use it as --config FILE")
    s.add_argument("--allow-remote", action="store_true", help="allow binding a non-loopback address")
    s.set_defaults(func=serve)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _load_profile(path: str) -> Any:
    """The Realism of a profile file; a UserError (one line, exit 2) if it is missing or invalid."""
    from driveferry.emulator.realism import Realism
    from driveferry.typedconfig import FileValueError
    try:
        return Realism.load(path)
    except FileValueError as exc:  # names the file and the key
        raise UserError(f"realism profile {exc}") from None
    except FileNotFoundError:
        raise UserError(f"realism profile {path} not found; see configs/emulator/real.toml") from None
    except ValueError as exc:
        raise UserError(f"realism profile {path}: {exc}") from None  # the message names the setting
    except OSError as exc:
        raise UserError(f"cannot read realism profile {path}: {exc.strerror}") from None


def _start(args: argparse.Namespace, plan: Any, realism: Any) -> Any:
    """The Emulator on the chosen port (see --port); the port is recorded in the data folder."""
    from driveferry.emulator.remotes import last_port, record_port
    from driveferry.emulator.server import Emulator
    wanted = args.port
    fallback = wanted is None  # only the default may move to another port when its own is taken
    if wanted is None:
        wanted = last_port(Path(args.data)) or DEFAULT_PORT
    try:
        try:
            emu = Emulator(args.data, host=args.host, port=wanted, tls=args.tls, faults=plan,
                           allow_remote=args.allow_remote, realism=realism)
        except OSError:
            if not fallback:
                raise
            emu = Emulator(args.data, host=args.host, port=0, tls=args.tls, faults=plan,
                           allow_remote=args.allow_remote, realism=realism)
            print(f"driveferry: note: port {wanted} is in use; serving on {emu.port} instead "
                  "(give --port to choose)", file=sys.stderr)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    except OSError as exc:
        raise UserError(f"cannot listen on {args.host}:{wanted}: {exc.strerror}; give another --port "
                        "(0: any free port)") from None
    record_port(Path(args.data), emu.port)
    return emu


def _seed_once(emu: Any, spec: Path) -> None:
    """Seed the emulator from `spec`, unless this data folder was already seeded from the same bytes (a
    restart with the same command line keeps its state instead of failing on names that exist)."""
    import hashlib

    from driveferry.emulator.remotes import record_seeded, was_seeded
    from driveferry.emulator.seed import SeedSpecError, load_spec, seed_emulator
    try:
        digest = hashlib.sha256(spec.read_bytes()).hexdigest()
    except OSError as exc:
        emu.stop()
        raise UserError(f"seed spec {spec}: {exc.strerror}; see configs/emulator/") from None
    if was_seeded(emu.data_dir, digest):
        print(f"driveferry: note: {emu.data_dir} was already seeded from {spec}; keeping its state",
              file=sys.stderr)
        return
    try:
        seed_emulator(emu, load_spec(spec))
    except FileNotFoundError:
        emu.stop()
        raise UserError(f"seed spec {spec} not found; see configs/emulator/") from None
    except SeedSpecError as exc:
        emu.stop()
        raise UserError(f"seed spec {exc}") from None
    record_seeded(emu.data_dir, digest)


def _write_remotes(described: dict[str, Any], path: Path) -> None:
    """The emulator's remotes file (emu-onedrive, emu-gdrive), written owner-only: it holds secrets."""
    from driveferry.commands.common import write_private
    from driveferry.emulator.remotes import remote_sections, remotes_toml
    header = ("# written by `driveferry emulator serve` for the emulator at "
              f"{described['base_url']}; holds its secrets: keep it private\n")
    write_private(path, header + remotes_toml(remote_sections(described), prefix="emu-"))
    os.chmod(path, 0o600)  # an existing file keeps its mode through O_TRUNC


def _check_serve_args(args: argparse.Namespace) -> None:
    """UserError for a port out of range, a --data path that is a file, or a seed spec that is missing or
    invalid: refused before the data folder is created or a port is bound."""
    if args.port is not None and not 0 <= args.port <= 65535:
        raise UserError(f"--port {args.port}: expected a port in 0..65535 (0: any free port)")
    data = Path(args.data)
    if data.exists() and not data.is_dir():
        raise UserError(f"--data {args.data} is a file; give a folder for the emulator's state (created if missing)")
    above = next((p for p in data.absolute().parents if p.exists()), None)
    if above is not None and not above.is_dir():
        raise UserError(f"--data {args.data}: {above} is a file, not a folder; give another --data")
    if args.seed:
        from driveferry.emulator.seed import SeedSpecError, load_spec
        if not Path(args.seed).is_file() and not Path(args.seed).is_dir():
            raise UserError(f"seed spec {args.seed} not found; see configs/emulator/")
        try:
            load_spec(Path(args.seed))
        except SeedSpecError as exc:
            raise UserError(f"seed spec {exc}") from None


def serve(args: argparse.Namespace) -> int:
    from driveferry.emulator.faults import FaultPlan
    from driveferry.typedconfig import FileValueError
    plan = None
    if args.faults:
        try:
            plan = FaultPlan.load(Path(args.faults))
        except FileNotFoundError:
            raise UserError(f"fault plan {args.faults} not found") from None
        except FileValueError as exc:  # names the file and the key
            raise UserError(f"fault plan {exc}") from None
        except (ValueError, TypeError) as exc:
            raise UserError(f"fault plan {args.faults} is invalid: {exc}") from None
    realism = _load_profile(args.profile) if getattr(args, "profile", None) else None
    latency = getattr(args, "latency_ms", None)
    if latency is not None:
        import dataclasses

        from driveferry.emulator.realism import Realism, Settings
        base = realism.settings if realism is not None else Settings()
        try:
            realism = Realism(dataclasses.replace(base, latency_ms=latency).validate())
        except ValueError as exc:
            raise UserError(f"--latency-ms: {exc}") from None
    proxy_port = getattr(args, "connect_proxy", None)
    if proxy_port is not None and (not args.tls or not 0 <= proxy_port <= 65535):
        raise UserError("--connect-proxy needs --tls and a port in 0..65535")
    _check_serve_args(args)  # before the data directory is created
    if args.remotes_out:
        from driveferry.commands.common import check_output_path
        check_output_path(args.remotes_out, "--remotes-out")
    emu = _start(args, plan, realism)
    if args.seed:
        _seed_once(emu, Path(args.seed))
    described = emu.describe()
    proxy = None
    if proxy_port is not None:
        from driveferry.emulator.proxy import ConnectProxy
        try:
            proxy = ConnectProxy((emu.host, emu.port), port=proxy_port).start()
        except OSError as exc:
            emu.stop()
            raise UserError(f"cannot listen on 127.0.0.1:{proxy_port}: {exc.strerror}") from None
        described["connect_proxy"] = proxy.url
    if args.remotes_out:
        _write_remotes(described, Path(args.remotes_out))
        described["remotes_file"] = str(Path(args.remotes_out).resolve())
    print(json.dumps(described), flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        emu.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        if proxy is not None:
            proxy.stop()
        emu.stop()
    return 0
