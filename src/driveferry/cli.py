"""The `driveferry` command line: parsing, exit codes and error printing. No logic of its own.

Each command lives in `driveferry.commands.<name>` and exposes `add_parser(subparsers)` (which sets
`func` on its parser) and the function it names. A command returns its exit code.

Exit codes (all commands):
  0  success, nothing to report
  1  finished, but problems were found (verify) or some items failed (migrate)
  2  bad input or configuration: nothing was changed
  3  stopped at a quota (daily upload cap or --max-transfer); run the same command again later
  4  interrupted (Ctrl-C); the journal is consistent, run the same command again to resume
  5  failed after changes began (a provider or journal error mid-run): some files may be copied;
     run the same command again to continue
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from driveferry import __version__
from driveferry.errors import DriveferryError, FailedAfterWritesError, UserError
from driveferry.memory import tune_allocator

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, EXIT_QUOTA, EXIT_INTERRUPTED, EXIT_FAILED_AFTER_WRITES = 0, 1, 2, 3, 4, 5

# Command modules, in the order `--help` lists them.
COMMANDS = ("demo", "migrate", "status", "verify", "doctor", "ls", "hashsum", "remotes", "auth", "emulator")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # one line, exit 2, like every other usage error
        self.exit(EXIT_USAGE, f"driveferry: error: {message} (see '{self.prog} --help')\n")


def _command_in(argv: Sequence[str]) -> str | None:
    """The command named in `argv` (its first word that is not an option), if it is one of COMMANDS."""
    word = next((a for a in argv if not a.startswith("-")), None)
    return word if word in COMMANDS else None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole parser, or with `only` just that command's: each command module imports what it
    needs (SQLAlchemy, the emulator, ...), and a run should pay for its own command only."""
    parser = _Parser(prog="driveferry", description=__doc__.split("\n\n")[0] if __doc__ else None,
                     epilog="Exit codes: 0 ok, 1 problems found or items failed, 2 bad input (nothing "
                            "changed), 3 stopped at a quota, 4 interrupted, 5 failed after changes began "
                            "(run again to continue).",
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"driveferry {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in (only,) if only else COMMANDS:
        try:
            module = importlib.import_module(f"driveferry.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"driveferry.commands.{name}":
                continue  # not built yet
            raise
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; its exit code. Output piped into a reader that stops early (`| head`) ends the
    command quietly with exit code 1, as the Python docs advise for SIGPIPE
    (https://docs.python.org/3/library/signal.html#note-on-sigpipe): stdout is pointed at /dev/null so
    the interpreter's final flush cannot raise again."""
    try:
        code = _run(argv)
        sys.stdout.flush()  # inside the try: a reader gone since the last write shows up here
        return code
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_PROBLEMS


def _run(argv: Sequence[str] | None) -> int:
    tune_allocator()
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(_command_in(argv))
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.func(args))
    except UserError as exc:
        print(f"driveferry: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("driveferry: interrupted; run the same command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    except FailedAfterWritesError as exc:
        print(f"driveferry: error: {exc}", file=sys.stderr)
        return EXIT_FAILED_AFTER_WRITES
    except DriveferryError as exc:  # raised before anything changed (the commands wrap later ones)
        print(f"driveferry: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
