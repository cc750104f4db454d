"""The ``tollgate`` command: serve, report usage, show prices, make keys.

Each command group is a module that adds its subparser (``add_*_command(s)``); this module
assembles them and runs the command chosen. The heavy imports (uvicorn, the app, the store)
wait inside the command functions, so ``tollgate --help`` does not pay for them.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from proxy.billing.cli import add_invoice_commands
from proxy.cli.advise import add_advise_command
from proxy.cli.alerts import add_alerts_command
from proxy.cli.db import add_db_commands
from proxy.cli.exports import add_export_commands, add_rollup_commands
from proxy.cli.keys import add_key_commands
from proxy.cli.limits import add_limits_command
from proxy.cli.options import add_config_option
from proxy.cli.prices import add_prices_command
from proxy.cli.reprice import add_reprice_command
from proxy.cli.serve import add_serve_command
from proxy.cli.storage import add_storage_command
from proxy.cli.usage import add_usage_command
from proxy.config import ConfigError

logger = logging.getLogger("tollgate.cli")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("TOLLGATE_LOG_LEVEL", "INFO").upper(), format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        code: int = args.run(args)
    except ConfigError as exc:
        print(f"tollgate: invalid config: {exc}", file=sys.stderr)
        return 2
    return code


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tollgate")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "(not installed)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tollgate", description="An OpenAI-compatible metering proxy.")
    parser.add_argument("--version", action="version", version=f"tollgate {_version()}")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    # In the order `tollgate --help` lists them.
    add_serve_command(commands, add_config_option)
    add_usage_command(commands, add_config_option)
    add_limits_command(commands, add_config_option)
    add_alerts_command(commands, add_config_option)
    add_advise_command(commands, add_config_option)
    add_export_commands(commands, add_config_option)
    add_invoice_commands(commands, add_config_option)
    add_db_commands(commands, add_config_option)
    add_rollup_commands(commands, add_config_option)
    add_storage_command(commands, add_config_option)
    add_prices_command(commands, add_config_option)
    add_reprice_command(commands, add_config_option)
    add_key_commands(commands)
    return parser
