"""`python -m kerastl.teach [--output-dir DIR] [--port N] [--backbone NAME] [--host HOST]`: teach a
model your own classes on a local page, transfer and from scratch side by side.

Serves http://127.0.0.1:8001/ (this machine only unless --host says otherwise, with a warning).
DIR (default: teach/) holds the session: DIR/pictures/ one folder of pictures per class (reopen
DIR to continue; `python -m kerastl.fit --dataset DIR/pictures` reads it), DIR/cache/ the
backbone's features of each picture, DIR/runs/ the exported runs. Nothing is written elsewhere.
Ctrl-C stops the server.

Exit status: 0 after Ctrl-C, 2 for a mistake (a port in use, an unknown backbone, DIR not a folder).
"""

from __future__ import annotations

import sys
from pathlib import Path

from kerastl.backbones import backbone_spec
from kerastl.cli import OneLineParser, run_cli
from kerastl.errors import UserError
from kerastl.teach.server import make_server
from kerastl.teach.session import Session
from kerastl.teach.teacher import Teacher
from kerastl.web.server import add_address_arguments, exposure_warning, parse_address_arguments, serve

PROG = "kerastl.teach"
DEFAULT_PORT = 8001  # beside the demo's 8000
DEFAULT_OUTPUT = "teach"


def parse_args(argv=None):
    p = OneLineParser(prog=PROG, description="A local page: collect pictures of your own classes, train a pretrained "
                                             "backbone's new head and a CNN from scratch side by side, try them, export.")
    p.add_argument("--output-dir", default=DEFAULT_OUTPUT,
                   help=f"the session's folder: pictures/, cache/, runs/ (default: {DEFAULT_OUTPUT}; an existing one is reopened)")
    p.add_argument("--backbone", default="efficientnet_lite0", help="the pretrained backbone (default: efficientnet_lite0)")
    add_address_arguments(p, DEFAULT_PORT)
    return parse_address_arguments(p, argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    output = Path(args.output_dir).expanduser()
    if output.exists() and not output.is_dir():
        raise UserError(f"--output-dir {output}: not a folder")
    backbone_spec(args.backbone)  # an unknown name is a UserError before anything loads
    say = lambda line: print(f"{PROG}: {line}", flush=True)  # noqa: E731
    session = Session(output)
    classes = session.classes()
    if classes:
        say(f"reopened {session.root}: " + ", ".join(f"{c['name']} ({c['examples']})" for c in classes))
    teacher = Teacher(session, args.backbone, log=say)
    httpd = make_server(teacher, args.host, args.port)
    if exposure_warning(args.host):
        say(f"warning: {exposure_warning(args.host)}")
    teacher.warm_up()
    try:
        serve(httpd, say)
    finally:
        teacher.stop()
    return 0


def cli() -> int:
    return run_cli(PROG, main)


if __name__ == "__main__":
    sys.exit(cli())
