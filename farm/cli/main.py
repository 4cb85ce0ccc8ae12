"""Entry point of the ``farm`` command: builds the parser from the sub-command modules and maps errors to exit codes.

Exit codes: 0 ok, 1 run or infrastructure failure, 2 bad input (usage, YAML, schema).
Each sub-command module exposes ``register(subparsers)`` which adds its parsers and sets ``func`` to a callable
``(args) -> int``. Adding a command is one module plus one line in ``COMMAND_MODULES``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from farm.errors import ConfigError, FarmError, farm_error

COMMAND_MODULES = [
    "farm.cli.validate_cmd",
    "farm.cli.plan_cmd",
    "farm.cli.parse_cmd",
    "farm.cli.run_cmd",
    "farm.cli.rerun_cmd",
    "farm.cli.results_cmd",
    "farm.cli.cluster_cmd",
    "farm.cli.sim_cmd",
    "farm.cli.report_cmd",
    "farm.cli.regress_cmd",
    "farm.cli.api_cmd",
]

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse exits 2 on usage errors as well; keep its message short and our prefix.
        self.print_usage(sys.stderr)
        sys.stderr.write(f"farm: error: {message}\n")
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="farm", description="Benchmark inference on a farm of edge devices.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except BrokenPipeError:
        # The reader went away (`farm plan --json | head`): not an error; keep Python from complaining at exit.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except KeyboardInterrupt:
        print("farm: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        error = farm_error(exc)
        if error is None:
            raise
        return _report(error)


def _report(exc: FarmError) -> int:
    if isinstance(exc, ConfigError):
        for line in exc.lines():
            print(line, file=sys.stderr)
        return EXIT_USAGE
    print(f"farm: {exc}", file=sys.stderr)
    return EXIT_FAIL


if __name__ == "__main__":
    raise SystemExit(main())
