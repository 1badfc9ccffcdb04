"""``kmseg serve``: serve the local web page.

:func:`register` only adds the verb; FastAPI and uvicorn are imported when the verb runs,
so ``kmseg`` works without the ``web`` extra and ``kmseg serve`` then says what to install.
"""

from __future__ import annotations

import argparse
import importlib.util
import ipaddress
import socket
import sys
import threading
import time
import webbrowser
from typing import Any

from ..cli import parse_float, parse_int, positive_int

__all__ = ["register"]

INSTALL_HINT = 'pip install "kmseg[web]"'
_REQUIRED = (("fastapi", "fastapi"), ("uvicorn", "uvicorn"), ("python-multipart", "python_multipart"))


def _port(text: str) -> int:
    v = parse_int(text)
    if not 0 <= v <= 65535:
        raise argparse.ArgumentTypeError(f"{v} is out of range; a port runs from 0 (any free port) to 65535")
    return v


def _megabytes(text: str) -> float:
    v = parse_float(text)
    if not v > 0:
        raise argparse.ArgumentTypeError(f"{v} is out of range; it must be more than 0")
    return v


def register(subparsers: Any) -> None:
    """Add the ``serve`` verb (works without the web extra installed)."""
    p = subparsers.add_parser(
        "serve",
        help="serve the local web page (needs the 'web' extra)",
        description="Serve kmseg's web page: drop in an image, move K, hide clusters, see the elbow "
        "curve and download the results. The JSON API is described at /openapi.json. "
        f"Needs the web extra: {INSTALL_HINT}",
    )
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this computer only; the page has no login)")
    p.add_argument("--port", type=_port, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument("--open", action="store_true", help="open the page in the web browser once the server is up")
    p.add_argument("--max-upload-mb", type=_megabytes, default=50.0, metavar="MB",
                   help="largest upload accepted (default 50)")
    p.add_argument("--max-pixels", type=positive_int, default=None,
                   help="largest image accepted, in pixels (default: Pillow's, about 89 million)")
    p.add_argument("--cache-mb", type=_megabytes, default=1024.0, metavar="MB",
                   help="memory for decoded uploads kept for re-segmenting (default 1024)")
    p.set_defaults(func=cmd_serve)


def missing_web_modules() -> list[str]:
    """Distribution names of the web extra's packages that are not installed."""
    missing = []
    for dist, module in _REQUIRED:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found and module == "python_multipart":  # python-multipart before 0.0.13
            try:
                found = importlib.util.find_spec("multipart") is not None
            except (ImportError, ValueError):
                found = False
        if not found:
            missing.append(dist)
    return missing


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else ("[::1]" if host == "::" else host)
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/"


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket, so that a busy port is one clear line, before uvicorn starts."""
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise OSError(f"cannot resolve --host {host!r} ({exc.strerror}); pass an address such as 127.0.0.1") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port} ({exc.strerror}); pick another --port") from None
    sock.set_inheritable(True)
    return sock


def cmd_serve(args: argparse.Namespace) -> int:
    missing = missing_web_modules()
    if missing:
        print(f"kmseg: error: 'kmseg serve' needs the web extra ({', '.join(missing)} missing); "
              f"install it with: {INSTALL_HINT}", file=sys.stderr)
        return 1
    import uvicorn

    from .app import create_app

    try:
        sock = _bind(args.host, args.port)
    except OSError as exc:
        print(f"kmseg: error: {exc}", file=sys.stderr)
        return 1
    port = sock.getsockname()[1]
    loopback = _is_loopback(args.host)
    named = f"[{args.host}]" if ":" in args.host else args.host
    allowed = ["127.0.0.1", "localhost", "[::1]", named] if loopback else None
    app = create_app(
        max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
        max_pixels=args.max_pixels,
        cache_bytes=int(args.cache_mb * 1024 * 1024),
        allowed_hosts=allowed,
    )
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    url = _url(args.host, port)
    if not loopback:
        print(f"kmseg: warning: listening on {args.host}, so other computers can reach the page; it has no login",
              file=sys.stderr)

    def announce() -> None:
        while not server.started and not server.should_exit:
            time.sleep(0.05)
        if server.started:
            print(f"kmseg: serving {url} (press Ctrl+C to stop)", file=sys.stderr, flush=True)
            if args.open:
                webbrowser.open(url)

    threading.Thread(target=announce, name="kmseg-announce", daemon=True).start()
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn shuts down cleanly on Ctrl+C, then re-raises the signal
        pass
    finally:
        sock.close()
    print("kmseg: server stopped", file=sys.stderr)
    return 0
