"""``tollgate serve``: run the proxy under uvicorn, in one process or several workers."""

from __future__ import annotations

import argparse
import os
import signal
from collections.abc import Callable
from pathlib import Path

from proxy.config import load_config


def add_serve_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    config_option: Callable[[argparse.ArgumentParser], object],
) -> None:
    """Add ``serve``; ``config_option`` adds ``--config`` to a parser."""
    serve = commands.add_parser("serve", help="run the proxy")
    config_option(serve)
    serve.add_argument("--host", help="address to listen on (default: [server] host)")
    serve.add_argument("--port", type=int, help="port to listen on (default: [server] port)")
    serve.add_argument("--workers", type=int, help="worker processes (default: [server] workers)")
    serve.set_defaults(run=_serve)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from proxy.app import create_app

    config = load_config(args.config)
    host = args.host or config.server.host
    port = args.port if args.port is not None else config.server.port
    workers = args.workers or config.server.workers
    options = {
        "host": host,
        "port": port,
        "loop": "uvloop",
        "http": "httptools",
        "access_log": False,
        # Tollgate does not trust X-Forwarded-For; parsing it costs on every request.
        "proxy_headers": False,
        # The provider's Date and Server headers pass through; uvicorn must not add its own.
        "server_header": False,
        "date_header": False,
        "log_level": os.environ.get("TOLLGATE_LOG_LEVEL", "info").lower(),
        "timeout_graceful_shutdown": 30,
    }
    # uvicorn shuts down gracefully on SIGTERM (in-flight requests finish, the recorder flushes),
    # then re-raises the signal to the handler that was there before it: make that an exit with status 0.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    if workers > 1:
        # Upgrade here, once, before any worker starts: uvicorn's supervisor would only see workers
        # die and exit 0, and several workers would race to migrate the same database.
        if not _prepare_database(config.database.url):
            return 3
        # Each worker process builds its own app from the same file.
        if args.config:
            os.environ["TOLLGATE_CONFIG"] = str(Path(args.config).resolve())
        uvicorn.run("proxy.app:app_from_environment", factory=True, workers=workers, **options)  # type: ignore[arg-type]
    else:
        uvicorn.run(create_app(config), **options)  # type: ignore[arg-type]
    return 0


def _prepare_database(url: str) -> bool:
    """Bring the database to the newest schema; False (after one line saying why) when it cannot be."""
    import logging

    from proxy.recording.migrations import UpgradeRefused
    from proxy.recording.store import Store

    store = Store(url)
    try:
        store.create_tables()
    except UpgradeRefused as exc:
        logging.getLogger("tollgate.app").error("tollgate cannot start: %s", exc)
        return False
    finally:
        store.engine.dispose()
    return True


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)
