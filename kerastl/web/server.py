"""The standard library's `http.server`, made safe to leave running for kerastl's local pages.

A page's handler subclasses `Handler` and answers `route(method, path)` with a `Reply`; a request it
refuses raises `Refused(status, message)`, which reaches the page as `{"error": message}`, and any
other exception becomes a 500 with its first line: the server stays up either way. Every answer
carries a Content-Security-Policy that lets the page fetch only from this server (and data: and
blob: URLs), and is never cached. `listen` binds 127.0.0.1 by default; `exposure_warning` is the
line to print when a user asks for another address; `serve` runs until Ctrl-C.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import urlsplit

from kerastl.errors import UserError, first_line
from kerastl.web.pictures import MAX_UPLOAD

DEFAULT_HOST = "127.0.0.1"  # this machine only
LOOPBACK = ("127.0.0.1", "localhost", "::1")
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; connect-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
    "style-src 'unsafe-inline'; script-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
)


@dataclass
class Reply:
    status: int
    body: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)


def json_reply(document: Any, status: int = HTTPStatus.OK) -> Reply:
    return Reply(status, json.dumps(document).encode(), "application/json")


def html_reply(page: bytes) -> Reply:
    return Reply(HTTPStatus.OK, page, "text/html; charset=utf-8")


class Refused(Exception):
    """A request the server turns down: its status and one line for the page."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class Handler(BaseHTTPRequestHandler):
    """Dispatches GET, POST and DELETE to `route`; answers refusals and failures as JSON."""

    server_version = "kerastl"
    max_body = MAX_UPLOAD
    body_limit_message = f"send one picture of at most {MAX_UPLOAD // 2**20} MB"

    def route(self, method: str, path: str) -> Reply:
        raise NotImplementedError

    def do_GET(self):  # noqa: N802 (http.server's naming)
        self._answer("GET")

    def do_POST(self):  # noqa: N802
        self._answer("POST")

    def do_DELETE(self):  # noqa: N802
        self._answer("DELETE")

    def _answer(self, method: str) -> None:
        try:
            reply = self.route(method, urlsplit(self.path).path)  # still %-encoded: split it, then unquote the parts
        except Refused as exc:
            reply = json_reply({"error": exc.message}, exc.status)
        except Exception as exc:  # a failure must not take the server down
            reply = json_reply({"error": first_line(exc)}, HTTPStatus.INTERNAL_SERVER_ERROR)
        self._send(reply)

    def body(self, required: bool = True) -> bytes:
        """The request's body, at most `max_body` bytes (a larger one is refused unread)."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length > self.max_body:
            self.close_connection = True  # the unread body must not be taken for the next request
            raise Refused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, self.body_limit_message)
        if length < 0 or (required and length == 0):
            raise Refused(HTTPStatus.BAD_REQUEST, self.body_limit_message)
        return self.rfile.read(length)

    def _send(self, reply: Reply) -> None:
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the browser went away (a newer stroke, a closed tab): nothing to answer

    def log_message(self, format, *args):  # noqa: A002 (http.server's signature)
        pass  # one line per request would bury the URL; errors reach the page as JSON


def add_address_arguments(parser, default_port: int) -> None:
    """The --host and --port flags every kerastl page takes."""
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default: {DEFAULT_HOST}, this machine only)")
    parser.add_argument("--port", type=int, default=default_port, help=f"port (default: {default_port}; 0: any free port)")


def parse_address_arguments(parser, argv):
    """`parser`'s arguments, with --port checked (a bad one: one line, exit 2)."""
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port {args.port}: must be between 0 and 65535")
    return args


def listen(handler: type[Handler], host: str, port: int) -> ThreadingHTTPServer:
    """A server bound to host:port (port 0: any free port), not yet serving; UserError if it cannot bind."""
    try:
        server = ThreadingHTTPServer((host, port), handler)
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another --port or --host") from None
    server.daemon_threads = True  # Ctrl-C does not wait for a browser that keeps a connection open
    return server


def url_of(server: ThreadingHTTPServer) -> str:
    host, port = server.server_address[:2]
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def exposure_warning(host: str) -> str | None:
    """The warning for a host other than this machine's loopback, or None."""
    if host in LOOPBACK:
        return None
    return (f"--host {host}: the page is open to other machines on your network, with no password; "
            f"anyone who reaches it can use it (the default, {DEFAULT_HOST}, keeps it to this machine)")


def serve(server: ThreadingHTTPServer, say: Callable[[str], None]) -> None:
    """Serve until Ctrl-C, then close the socket; `say` gets the URL line and the last line."""
    with server:
        say(f"open {url_of(server)} in a browser (Ctrl-C stops the server)")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            say("stopped")
