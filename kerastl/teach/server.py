"""The teach page's server (kerastl.web.server): the page and the JSON API it uses (docs/teach.md).

    GET    /                                    the page
    GET    /api/classes                         [{"name", "examples", "pictures": [file names]}]
    POST   /api/classes                         {"name"}: a new, empty class
    POST   /api/classes/NAME/examples           one picture as the body -> {"class", "examples", "picture"} (the class is made if new)
    GET    /api/classes/NAME/examples/FILE      the picture (the page's thumbnails)
    DELETE /api/classes/NAME/examples/FILE      -> {"class", "examples"}; 409 while a training or an export runs
    POST   /api/classes/NAME/rename             {"name": NEW} -> the classes; 409 while a training or an export runs
    DELETE /api/classes/NAME                    -> the classes; 409 while a training or an export runs
    POST   /api/train                           starts a training (202); 409 while one runs
    GET    /api/train                           {"state", "progress", "results", "error", "labels", "pictures", "trained"}
    POST   /api/finetune                        fine-tunes the last training's transfer model (202); 409 while one runs or before a training
    POST   /api/train/stop                      stops a running training or fine-tune after its current step -> the status
    POST   /api/predict                         one picture -> {"results": [{"model", "title", "top": [{"label", "probability"}]}]}
    POST   /api/export                          -> {"run", "runs", "files", ...} once a training is done
    GET    /files/runs/...                      a file of an exported run (the page's download links)

A refused request gets its status (400 a bad request, 404 nothing there, 409 not now, 413 too
large) and {"error": one line}; the server stays up.
"""

from __future__ import annotations

import json
import mimetypes
from http import HTTPStatus
from urllib.parse import unquote

from kerastl.teach.session import RUNS, NotFound, SessionError
from kerastl.teach.teacher import Busy, NotReady, Teacher
from kerastl.web import page, server
from kerastl.web.server import Refused, Reply, html_reply, json_reply

PAGE = "page.html"
MAX_JSON = 4096  # a class name in JSON


def make_server(teacher: Teacher, host: str, port: int):
    html = page.assemble("kerastl.teach", PAGE)
    session = teacher.session

    class Handler(server.Handler):
        server_version = "kerastl-teach"

        def route(self, method: str, path: str) -> Reply:
            if method == "GET" and path in ("/", "/index.html"):
                return html_reply(html)
            parts = [unquote(part) for part in path.split("/") if part]
            try:
                if parts[:1] == ["api"]:
                    return self.api(method, parts[1:])
                if method == "GET" and parts[:2] == ["files", RUNS]:
                    return self.download(parts[1:])
            except (Busy, NotReady) as exc:
                raise Refused(HTTPStatus.CONFLICT, str(exc)) from None
            except NotFound as exc:
                raise Refused(HTTPStatus.NOT_FOUND, str(exc)) from None
            except SessionError as exc:
                raise Refused(HTTPStatus.BAD_REQUEST, str(exc)) from None
            raise Refused(HTTPStatus.NOT_FOUND, f"no {'page' if method == 'GET' else 'endpoint'} {path}")

        def api(self, method: str, parts: list[str]) -> Reply:
            match method, parts:
                case "GET", ["classes"]:
                    return json_reply(session.classes())
                case "POST", ["classes"]:
                    session.add_class(self.json_field("name"))
                    return json_reply(session.classes(), HTTPStatus.CREATED)
                case "POST", ["classes", name, "examples"]:
                    return json_reply(session.add_example(name, self.body()), HTTPStatus.CREATED)
                case "GET", ["classes", name, "examples", file_name]:
                    path = session.picture_path(name, file_name)
                    return Reply(HTTPStatus.OK, path.read_bytes(), mimetypes.guess_type(path.name)[0] or "application/octet-stream")
                case "DELETE", ["classes", name, "examples", file_name]:
                    with teacher.idle():
                        return json_reply(session.remove_example(name, file_name))
                case "POST", ["classes", name, "rename"]:
                    new_name = self.json_field("name")
                    with teacher.idle():
                        session.rename_class(name, new_name)
                    return json_reply(session.classes())
                case "DELETE", ["classes", name]:
                    with teacher.idle():
                        session.remove_class(name)
                    return json_reply(session.classes())
                case "POST", ["train"]:
                    return json_reply(teacher.start(), HTTPStatus.ACCEPTED)
                case "GET", ["train"]:
                    return json_reply(teacher.status())
                case "POST", ["finetune"]:
                    return json_reply(teacher.finetune(), HTTPStatus.ACCEPTED)
                case "POST", ["train", "stop"]:
                    return json_reply(teacher.stop(wait=0))
                case "POST", ["predict"]:
                    return json_reply(teacher.predict(self.body()))
                case "POST", ["export"]:
                    return json_reply(teacher.export())
            raise Refused(HTTPStatus.NOT_FOUND if method in ("GET", "POST", "DELETE") else HTTPStatus.METHOD_NOT_ALLOWED,
                          f"no endpoint {method} /api/{'/'.join(parts)}")

        def json_field(self, key: str) -> str:
            if int(self.headers.get("Content-Length") or 0) > MAX_JSON:
                raise Refused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"send a JSON object of at most {MAX_JSON} bytes")
            try:
                value = json.loads(self.body())[key]
            except (ValueError, KeyError, TypeError):
                raise SessionError(f'send a JSON object such as {{"{key}": "..."}}') from None
            if not isinstance(value, str):
                raise SessionError(f"{key} must be a string")
            return value

        def download(self, parts: list[str]) -> Reply:
            """A file under OUTPUT/runs/, and nothing outside it."""
            root = (session.output_dir / RUNS).resolve()
            path = root.joinpath(*parts[1:]).resolve() if len(parts) > 1 else root
            if root not in path.parents or not path.is_file():
                raise NotFound(f"no file {'/'.join(parts)}")
            return Reply(HTTPStatus.OK, path.read_bytes(), mimetypes.guess_type(path.name)[0] or "application/octet-stream",
                         {"Content-Disposition": f'attachment; filename="{path.name}"'})

    return server.listen(Handler, host, port)
