"""`python -m kerastl.demo RUN_DIR [RUN_DIR ...]`: draw a digit in the browser, see each model's answer.

Serves a local page (http://127.0.0.1:8000/ by default) where you draw with the mouse or a finger,
or drop a picture, and see every model's top 3 classes side by side. A RUN_DIR is a run folder (or a
`.keras`, SavedModel or `.tflite` file, as `kerastl.predict` takes); a study folder of
`kerastl.compare` stands for its best MLP, CNN and fine-tuned runs. Ctrl-C stops the server.

Exit status: 0 after Ctrl-C, 2 for a mistake (a folder without a model, a port in use).
"""

from __future__ import annotations

import sys

from kerastl.cli import OneLineParser, run_cli
from kerastl.web.server import add_address_arguments, parse_address_arguments  # --host 0.0.0.0 shows the page to your network

PROG = "kerastl.demo"
DEFAULT_PORT = 8000


def parse_args(argv=None):
    p = OneLineParser(prog=PROG, description="A local web page: draw a digit or drop a picture and compare the models' top 3 classes.")
    p.add_argument("models", nargs="+", metavar="RUN_DIR",
                   help="run folders (or .keras / SavedModel / .tflite files); a kerastl.compare study folder gives its best MLP, CNN and fine-tuned runs")
    add_address_arguments(p, DEFAULT_PORT)
    return parse_address_arguments(p, argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from kerastl.demo import models, server
    from kerastl.web.server import exposure_warning, serve

    chosen = models.models_to_show(args.models)  # every folder checked before a framework loads
    say = lambda line: print(f"{PROG}: {line}", flush=True)  # noqa: E731
    say(f"loading {len(chosen)} model{'s' if len(chosen) > 1 else ''}: " + "; ".join(title for _, title in chosen))
    try:
        loaded = models.load_models(chosen, warn=lambda message: say(f"warning: {message}"))
        httpd = server.make_server(loaded, args.host, args.port)
        if exposure_warning(args.host):
            say(f"warning: {exposure_warning(args.host)}")
        serve(httpd, say)
    except KeyboardInterrupt:  # while the models load
        say("stopped")
    return 0


def cli() -> int:
    return run_cli(PROG, main)


if __name__ == "__main__":
    sys.exit(cli())
