"""`driveferry emulator serve`: a local, stateful stand-in for Google Drive v3, Microsoft Graph and both
sign-in services, on one loopback port."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path
from typing import Any

from driveferry.errors import UserError

EPILOG = """\
example:
  driveferry emulator serve --data /tmp/emu --tls --seed configs/emulator/small.toml

Prints one JSON line: {"base_url", "ca_file", "data_dir", "credentials": {...}[, "connect_proxy"]} and
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
    s.add_argument("--port", type=int, default=0, help="port (default 0: any free port)")
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
    s.add_argument("--allow-remote", action="store_true", help="allow binding a non-loopback address")
    s.set_defaults(func=serve)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _load_profile(path: str) -> Any:
    """The Realism of a profile file; a UserError (one line, exit 2) if it is missing or invalid."""
    from driveferry.emulator.realism import Realism
    try:
        return Realism.load(path)
    except FileNotFoundError:
        raise UserError(f"realism profile {path} not found; see configs/emulator/real.toml") from None
    except ValueError as exc:
        raise UserError(f"realism profile {path} is invalid: {exc}") from None
    except OSError as exc:
        raise UserError(f"cannot read realism profile {path}: {exc.strerror}") from None


def serve(args: argparse.Namespace) -> int:
    from driveferry.emulator.faults import FaultPlan
    from driveferry.emulator.server import Emulator
    plan = None
    if args.faults:
        try:
            plan = FaultPlan.load(Path(args.faults))
        except FileNotFoundError:
            raise UserError(f"fault plan {args.faults} not found") from None
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
    if args.seed and not Path(args.seed).is_file():  # before the data directory is created
        raise UserError(f"seed spec {args.seed} not found; see configs/emulator/")
    try:
        emu = Emulator(args.data, host=args.host, port=args.port, tls=args.tls, faults=plan,
                       allow_remote=args.allow_remote, realism=realism)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    except OSError as exc:
        raise UserError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}") from None
    if args.seed:
        from driveferry.emulator.seed import SeedSpecError, load_spec, seed_emulator
        try:
            seed_emulator(emu, load_spec(Path(args.seed)))
        except FileNotFoundError:
            raise UserError(f"seed spec {args.seed} not found; see configs/emulator/") from None
        except SeedSpecError as exc:
            raise UserError(f"seed spec {exc}") from None
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
