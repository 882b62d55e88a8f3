"""`python -m kerastl.teach`'s targets, through its HTTP API as the page uses it.

    python benchmarks/teach.py [--seeds 0,1,2] [--per-class 10] [--new 20]

Three easily told Fashion-MNIST classes (trouser, sneaker, bag) as photo-like colour JPEGs (96 px, a
tinted item on a noisy coloured background: benchmarks/small_data.py's photo_like_folder), `--per-class`
pictures a class sent to a fresh session, one draw per seed. The server runs in this process with
the command's defaults; the backbone is built before Train is pressed (the command builds it at
start, while the page is open). For each draw:
- seconds from POST /api/train until the transfer model is scored (its result appears in
  GET /api/train, polled every 0.1 s), and until the CNN from scratch is;
- each model's accuracy on `--new` new pictures a class (never seen in training or scoring),
  classified one by one with POST /api/predict, and the cross-validated accuracy the page shows;
- the latency of POST /api/predict (both models answer each picture), median and 90th percentile.
Prints one markdown row per draw and the means.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CLASSES = {1: "trouser", 7: "sneaker", 8: "bag"}


def call(url: str, method: str = "GET", body: bytes | None = None) -> dict:
    with urllib.request.urlopen(urllib.request.Request(url, data=body, method=method), timeout=900) as reply:
        return json.loads(reply.read())


def one_draw(seed: int, per_class: int, new: int, teacher_options: dict, work: Path) -> dict:
    from benchmarks.small_data import photo_like_folder
    from kerastl.teach.server import make_server
    from kerastl.teach.session import Session
    from kerastl.teach.teacher import Teacher
    from kerastl.web.server import url_of

    data = photo_like_folder(work / f"data-{seed}", per_class, new, seed=seed, classes=CLASSES)
    teacher = Teacher(Session(work / f"session-{seed}"), log=lambda _: None, **teacher_options)
    teacher.warm_up().join()  # the backbone, built while the page is open
    httpd = make_server(teacher, "127.0.0.1", 0)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = url_of(httpd)
    try:
        for name in CLASSES.values():
            for picture in sorted((data / "train" / name).iterdir()):
                call(f"{url}api/classes/{name}/examples", "POST", picture.read_bytes())
        pressed = time.perf_counter()
        call(url + "api/train", "POST")
        ready = {}
        while True:
            status = call(url + "api/train")
            for model in status["results"]:
                ready.setdefault(model, time.perf_counter() - pressed)
            if status["state"] != "running":
                break
            time.sleep(0.1)
        if status["state"] != "done":
            raise SystemExit(f"training failed: {status['error']}")
        right = {"transfer": 0, "scratch": 0}
        latency = []
        tests = [(name, p) for name in CLASSES.values() for p in sorted((data / "test" / name).iterdir())]
        for name, picture in tests:
            body = picture.read_bytes()
            start = time.perf_counter()
            answer = call(url + "api/predict", "POST", body)
            latency.append(time.perf_counter() - start)
            for result in answer["results"]:
                right[result["model"]] += result["top"][0]["label"] == name
        latency.sort()
        return {
            "seed": seed, "transfer_s": ready["transfer"], "scratch_s": ready["scratch"],
            "transfer_new": right["transfer"] / len(tests), "scratch_new": right["scratch"] / len(tests),
            "transfer_cv": status["results"]["transfer"]["accuracy"], "scratch_cv": status["results"]["scratch"]["accuracy"],
            "scored_by": status["results"]["transfer"]["scored_by"], "new_pictures": len(tests),
            "latency_median_ms": 1000 * statistics.median(latency), "latency_p90_ms": 1000 * latency[int(0.9 * (len(latency) - 1))],
        }
    finally:
        httpd.shutdown()
        httpd.server_close()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--per-class", type=int, default=10)
    p.add_argument("--new", type=int, default=20, help="new pictures a class to classify after training")
    args = p.parse_args(argv)
    started = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory(prefix="kerastl-teach-bench-") as work:
        for seed in (int(s) for s in args.seeds.split(",")):
            rows.append(one_draw(seed, args.per_class, args.new, {}, Path(work)))
            print(json.dumps(rows[-1]), flush=True)
    print(f"\n{len(CLASSES)} classes x {args.per_class} pictures; {rows[0]['scored_by']}; {rows[0]['new_pictures']} new pictures per draw\n")
    print("| draw | Train to transfer scored | Train to CNN scored | transfer, new pictures | CNN, new pictures | transfer, cross-validated | CNN, cross-validated | predict median / p90 |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| seed {r['seed']} | {r['transfer_s']:.1f} s | {r['scratch_s']:.1f} s | {100 * r['transfer_new']:.1f} % | {100 * r['scratch_new']:.1f} % "
              f"| {100 * r['transfer_cv']:.1f} % | {100 * r['scratch_cv']:.1f} % | {r['latency_median_ms']:.0f} / {r['latency_p90_ms']:.0f} ms |")
    mean = lambda key: statistics.mean(r[key] for r in rows)  # noqa: E731
    print(f"| mean | {mean('transfer_s'):.1f} s | {mean('scratch_s'):.1f} s | {100 * mean('transfer_new'):.1f} % | {100 * mean('scratch_new'):.1f} % "
          f"| {100 * mean('transfer_cv'):.1f} % | {100 * mean('scratch_cv'):.1f} % | {mean('latency_median_ms'):.0f} / {mean('latency_p90_ms'):.0f} ms |")
    gaps = [100 * (r["transfer_new"] - r["scratch_new"]) for r in rows]
    print(f"\ntransfer minus CNN on new pictures: {', '.join(f'{g:+.1f}' for g in gaps)} pp (mean {statistics.mean(gaps):+.1f} pp); "
          f"wall time {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
