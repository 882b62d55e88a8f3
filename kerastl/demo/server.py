"""The demo's web server (kerastl.web.server): one page and two JSON endpoints.

    GET  /          the page (kerastl/demo/page.html with kerastl/web's style and script): a canvas
                    to draw on, a drop zone, one column per model
    GET  /models    [{"name", "title", "labels"}, ...] in the order given on the command line
    POST /predict   body: one picture (PNG, JPEG, ...); answer: {"results": [one per model, see models.classify]}

The page loads nothing from anywhere else (kerastl.web.server's Content-Security-Policy).
"""

from __future__ import annotations

import json
import threading
from http import HTTPStatus
from http.server import ThreadingHTTPServer

from kerastl.demo.models import DemoModel, classify
from kerastl.web import page, server
from kerastl.web.server import Refused, Reply, html_reply, json_reply

PAGE = "page.html"


def make_server(models: list[DemoModel], host: str, port: int) -> ThreadingHTTPServer:
    """A server bound to host:port (port 0: any free port), not yet serving; UserError if it cannot bind."""
    html = page.assemble("kerastl.demo", PAGE)
    catalogue = json.dumps([m.describe() for m in models]).encode()
    lock = threading.Lock()  # one picture at a time: the models are not shared between threads

    class Handler(server.Handler):
        server_version = "kerastl-demo"

        def route(self, method: str, path: str) -> Reply:
            if method == "GET" and path in ("/", "/index.html"):
                return html_reply(html)
            if method == "GET" and path == "/models":
                return Reply(HTTPStatus.OK, catalogue, "application/json")
            if method == "GET":
                raise Refused(HTTPStatus.NOT_FOUND, f"no page {path}")
            if method != "POST" or path != "/predict":
                raise Refused(HTTPStatus.NOT_FOUND, f"no endpoint {path}")
            picture = self.body()
            with lock:
                return json_reply({"results": classify(models, picture)})

    return server.listen(Handler, host, port)

