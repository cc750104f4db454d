"""``tollgate serve``: run the proxy under uvicorn, in one process or several workers.

The port is bound before anything starts, so a busy port is one clear line and exit status 1,
never a "ready" followed by ``[Errno 98]``. Once the app has started (database upgraded,
recorder running) one short block says where Tollgate listens and what to do next
(``proxy.startup``); uvicorn's own lines are shown only at ``TOLLGATE_LOG_LEVEL=debug``.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path

from proxy.config import load_config

logger = logging.getLogger("tollgate.serve")
_BACKLOG = 2048  # uvicorn's default


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
    serve.add_argument(
        "--access-log",
        action="store_true",
        help="log one line per request (as server.access_log = true); refusals and failures are logged anyway",
    )
    serve.set_defaults(run=_serve)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from proxy.app import create_app
    from proxy.cli import _version
    from proxy.recording.migrations import database_name
    from proxy.startup import listen_url, start_block

    config = load_config(args.config)
    if args.access_log:
        config = config.model_copy(update={"server": config.server.model_copy(update={"access_log": True})})
    host = args.host or config.server.host
    port = args.port if args.port is not None else config.server.port
    workers = args.workers or config.server.workers
    try:
        sock = _bind(host, port)
    except OSError as exc:
        sys.stderr.write(f"tollgate cannot start: cannot listen on {host}:{port}: {_bind_problem(exc)}\n")
        return 1
    level = os.environ.get("TOLLGATE_LOG_LEVEL", "info").lower()
    url = listen_url(host, sock.getsockname()[1])
    block = start_block(
        config,
        url,
        admin_on=bool(os.environ.get("TOLLGATE_ADMIN_KEY")),
        database=database_name(config.database.url),
        version=_version(),
        workers=workers,
    )
    options = {
        "loop": "uvloop",
        "http": "httptools",
        "access_log": False,  # Tollgate's own access log (server.access_log) says what a request cost
        # Tollgate does not trust X-Forwarded-For; parsing it costs on every request.
        "proxy_headers": False,
        # The provider's Date and Server headers pass through; uvicorn must not add its own.
        "server_header": False,
        "date_header": False,
        # uvicorn's start and stop lines repeat what Tollgate's block says; its warnings and errors still show.
        "log_level": level if level == "debug" else "warning",
        "timeout_graceful_shutdown": 30,
    }
    # uvicorn shuts down gracefully on SIGTERM (in-flight requests finish, the recorder flushes),
    # then re-raises the signal to the handler that was there before it: make that an exit with status 0.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    if workers > 1:
        from uvicorn.supervisors import Multiprocess

        # Upgrade here, once, before any worker starts: uvicorn's supervisor would only see workers
        # die and exit 0, and several workers would race to migrate the same database.
        if not _prepare_database(config.database.url):
            sock.close()
            return 3
        # Each worker process builds its own app from the same file.
        if args.config:
            os.environ["TOLLGATE_CONFIG"] = str(Path(args.config).resolve())
        if args.access_log:
            os.environ["TOLLGATE_ACCESS_LOG"] = "1"
        multi = uvicorn.Config("proxy.app:app_from_environment", factory=True, workers=workers, **options)  # type: ignore[arg-type]
        logger.info("%s", block)
        Multiprocess(multi, sockets=[sock]).run()
        return 0
    app = create_app(config, start_message=block, owns_process=True)
    server = uvicorn.Server(uvicorn.Config(app, **options))  # type: ignore[arg-type]
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    # The app did not start (its database, say): the lifespan logged why. Status 3, as uvicorn gives.
    return 0 if server.started else 3


def _prepare_database(url: str) -> bool:
    """Bring the database to the newest schema; False (after one line saying why) when it cannot be."""
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


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``, inheritable by worker processes; OSError when it cannot be had."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(_BACKLOG)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _bind_problem(exc: OSError) -> str:
    import errno

    if exc.errno == errno.EADDRINUSE:
        return "the port is in use (another Tollgate, or another server); stop it or choose --port"
    if exc.errno == errno.EACCES:
        return "permission denied (ports below 1024 need privileges); choose --port 8787 or above"
    if exc.errno == errno.EADDRNOTAVAIL:
        return "this machine has no such address; choose --host 127.0.0.1 or 0.0.0.0"
    return exc.strerror or type(exc).__name__


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)
