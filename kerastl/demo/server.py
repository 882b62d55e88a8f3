"""The demo's web server: the standard library's `http.server`, one page and two JSON endpoints.

    GET  /          the page (kerastl/demo/page.html): a canvas to draw on, a drop zone, one column per model
    GET  /models    [{"name", "title", "labels"}, ...] in the order given on the command line
    POST /predict   body: one picture (PNG, JPEG, ...); answer: {"results": [one per model, see models.classify]}

The page loads nothing from anywhere else: its style and script are inline, and its
Content-Security-Policy lets the browser fetch only from this server (and data: URLs).
"""

from __future__ import annotations

import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources

from kerastl.demo.models import DemoModel, classify
from kerastl.errors import first_line

PAGE = "page.html"
MAX_UPLOAD = 20 * 1024 * 1024  # bytes; kerastl's 40-megapixel limit refuses larger pictures after decoding anyway
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; connect-src 'self'; img-src 'self' data: blob:; style-src 'unsafe-inline'; "
    "script-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
)


def make_server(models: list[DemoModel], host: str, port: int) -> ThreadingHTTPServer:
    """A server bound to host:port (port 0: any free port), not yet serving; OSError if it cannot bind."""
    page = (resources.files("kerastl.demo") / PAGE).read_bytes()
    catalogue = json.dumps([m.describe() for m in models]).encode()
    lock = threading.Lock()  # one picture at a time: the models are not shared between threads

    class Handler(BaseHTTPRequestHandler):
        server_version = "kerastl-demo"

        def do_GET(self):  # noqa: N802 (http.server's naming)
            if self.path in ("/", "/index.html"):
                self._send(HTTPStatus.OK, page, "text/html; charset=utf-8")
            elif self.path == "/models":
                self._send(HTTPStatus.OK, catalogue, "application/json")
            else:
                self._send_json(HTTPStatus.NOT_FOUND, {"error": f"no page {self.path}"})

        def do_POST(self):  # noqa: N802
            if self.path != "/predict":
                return self._send_json(HTTPStatus.NOT_FOUND, {"error": f"no endpoint {self.path}"})
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if not 0 < length <= MAX_UPLOAD:
                return self._send_json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE if length > MAX_UPLOAD else HTTPStatus.BAD_REQUEST,
                                       {"error": f"send one picture of at most {MAX_UPLOAD // 2**20} MB"})
            picture = self.rfile.read(length)
            try:
                with lock:
                    results = classify(models, picture)
            except Exception as exc:  # a model that fails must not take the server down
                return self._send_json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": first_line(exc)})
            self._send_json(HTTPStatus.OK, {"results": results})

        def _send_json(self, status, document) -> None:
            self._send(status, json.dumps(document).encode(), "application/json")

        def _send(self, status, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format, *args):  # noqa: A002 (http.server's signature)
            pass  # one line per request would bury the URL; errors reach the page as JSON

    return ThreadingHTTPServer((host, port), Handler)


def url_of(server: ThreadingHTTPServer) -> str:
    host, port = server.server_address[:2]
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"
