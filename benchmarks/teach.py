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
- the latency of POST /api/predict (both models answer each picture), median and 90th percentile;
- then Fine-tune (POST /api/finetune): seconds until it is done, its accuracy on the pictures it was
  scored on (fold 1) beside the frozen model's on the same pictures, and on the same new pictures
  (classified again: now three models answer each, and that latency is reported too);
  `--no-finetune` leaves it out;
- "not sure" (kerastl.teach.gate): the share of the new pictures each model answers (does not
  abstain on), and the transfer model's share answered of pictures of no class sent through POST
  /api/predict as PNG files at 96 px: NOISE uniform noise pictures, a blank (black) and a white one
  (kerastl.confidence.outside's sets).
Prints one markdown row per draw and the means (medians for the times).
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


def wait_for(url: str, pressed: float) -> tuple[dict, dict]:
    """(the final status of a training or fine-tune, {model: seconds from `pressed` until its result appeared})."""
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
    return status, ready


def classify(url: str, tests: list[tuple[str, Path]], answered: dict | None = None) -> tuple[dict, list[float]]:
    """({model: share of `tests` whose top class is right}, the round trips in seconds, sorted);
    `answered` (if given) receives {model: share of `tests` it did not abstain on}."""
    right, kept, latency = {}, {}, []
    for name, picture in tests:
        body = picture if isinstance(picture, bytes) else picture.read_bytes()
        start = time.perf_counter()
        answer = call(url + "api/predict", "POST", body)
        latency.append(time.perf_counter() - start)
        for result in answer["results"]:
            right[result["model"]] = right.get(result["model"], 0) + (result["top"][0]["label"] == name)
            kept[result["model"]] = kept.get(result["model"], 0) + (not result["abstained"])
    if answered is not None:
        answered.update({model: n / len(tests) for model, n in kept.items()})
    return {model: n / len(tests) for model, n in right.items()}, sorted(latency)


NOISE, SIDE = 20, 96  # pictures of uniform noise; the pictures' side (the benchmark's photos')


def no_class_pictures() -> dict[str, list[bytes]]:
    """PNG files of no class: {"noise": NOISE of them, "blank": one, "white": one}."""
    import io

    from PIL import Image

    from kerastl.confidence.outside import constant, uniform_noise

    def png(pixels):
        out = io.BytesIO()
        Image.fromarray(pixels).save(out, format="PNG")
        return out.getvalue()

    shape = (SIDE, SIDE, 3)
    return {"noise": [png(p) for p in uniform_noise(shape, NOISE)], "blank": [png(constant(shape, 0, 1)[0])],
            "white": [png(constant(shape, 255, 1)[0])]}


def answered_share(url: str, pictures: list[bytes], model: str = "transfer") -> float:
    answered = {}
    classify(url, [("", p) for p in pictures], answered)
    return answered[model]


def percentile_ms(latency: list[float], share: float) -> float:
    return 1000 * latency[int(share * (len(latency) - 1))]


def one_draw(seed: int, per_class: int, new: int, teacher_options: dict, work: Path, finetune: bool = True) -> dict:
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
        status, ready = wait_for(url, pressed)
        tests = [(name, p) for name in CLASSES.values() for p in sorted((data / "test" / name).iterdir())]
        kept = {}
        right, latency = classify(url, tests, kept)
        row = {
            "seed": seed, "transfer_s": ready["transfer"], "scratch_s": ready["scratch"],
            "transfer_new": right["transfer"], "scratch_new": right["scratch"],
            "transfer_cv": status["results"]["transfer"]["accuracy"], "scratch_cv": status["results"]["scratch"]["accuracy"],
            "scored_by": status["results"]["transfer"]["scored_by"], "new_pictures": len(tests),
            "latency_median_ms": 1000 * statistics.median(latency), "latency_p90_ms": percentile_ms(latency, 0.9),
            "threshold": status["results"]["transfer"]["threshold"], "transfer_new_answered": kept["transfer"],
            **{f"{name}_answered": answered_share(url, pictures) for name, pictures in no_class_pictures().items()},
        }
        if not finetune:
            return row
        pressed = time.perf_counter()
        call(url + "api/finetune", "POST")
        tuned_status, tuned_ready = wait_for(url, pressed)
        tuned = tuned_status["results"]["finetuned"]
        right_after, latency_after = classify(url, tests)
        return {
            **row,
            "finetune_s": tuned_ready["finetuned"], "finetuned_new": right_after["finetuned"],
            "finetuned_fold": tuned["accuracy"], "frozen_fold": tuned["frozen_accuracy"], "fold_pictures": tuned["held_out"],
            "finetune_scored_by": tuned["scored_by"], "finetune_epochs": tuned["epochs"],
            "latency3_median_ms": 1000 * statistics.median(latency_after), "latency3_p90_ms": percentile_ms(latency_after, 0.9),
        }
    finally:
        httpd.shutdown()
        httpd.server_close()


def print_not_sure(rows: list[dict]) -> None:
    pct = lambda v: f"{100 * v:.1f} %"  # noqa: E731
    print(f"\n\"not sure\" (the transfer model): share answered of {rows[0]['new_pictures']} new pictures of the classes, "
          f"of {NOISE} noise pictures, a blank and a white one ({SIDE} px)\n")
    print("| draw | threshold | new pictures answered | noise answered | blank answered | white answered |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| seed {r['seed']} | {r['threshold']:.3f} | {pct(r['transfer_new_answered'])} | {pct(r['noise_answered'])} "
              f"| {pct(r['blank_answered'])} | {pct(r['white_answered'])} |")
    mean = lambda key: statistics.mean(r[key] for r in rows)  # noqa: E731
    print(f"| mean | | {pct(mean('transfer_new_answered'))} | {pct(mean('noise_answered'))} | {pct(mean('blank_answered'))} "
          f"| {pct(mean('white_answered'))} |")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--per-class", type=int, default=10)
    p.add_argument("--new", type=int, default=20, help="new pictures a class to classify after training")
    p.add_argument("--no-finetune", action="store_true", help="leave out Fine-tune (its times and accuracies)")
    args = p.parse_args(argv)
    started = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory(prefix="kerastl-teach-bench-") as work:
        for seed in (int(s) for s in args.seeds.split(",")):
            rows.append(one_draw(seed, args.per_class, args.new, {}, Path(work), not args.no_finetune))
            print(json.dumps(rows[-1]), flush=True)
    print_not_sure(rows)
    if args.no_finetune:
        print(f"\nwall time {time.perf_counter() - started:.0f} s")
        return 0
    print(f"\n{len(CLASSES)} classes x {args.per_class} pictures; {rows[0]['scored_by']}; {rows[0]['new_pictures']} new pictures per draw; "
          f"fine-tune scored on {rows[0]['finetune_scored_by']}, {rows[0]['finetune_epochs']} epochs\n")
    print("| draw | Train to transfer scored | Train to CNN scored | Fine-tune to done | new pictures: transfer / CNN / fine-tuned "
          "| cross-validated: transfer / CNN | fold 1: frozen / fine-tuned | predict median / p90 (2 models; 3 models) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    pct = lambda v: f"{100 * v:.1f} %"  # noqa: E731
    for r in rows:
        print(f"| seed {r['seed']} | {r['transfer_s']:.1f} s | {r['scratch_s']:.1f} s | {r['finetune_s']:.1f} s "
              f"| {pct(r['transfer_new'])} / {pct(r['scratch_new'])} / {pct(r['finetuned_new'])} | {pct(r['transfer_cv'])} / {pct(r['scratch_cv'])} "
              f"| {pct(r['frozen_fold'])} / {pct(r['finetuned_fold'])} of {r['fold_pictures']} "
              f"| {r['latency_median_ms']:.0f} / {r['latency_p90_ms']:.0f} ms; {r['latency3_median_ms']:.0f} / {r['latency3_p90_ms']:.0f} ms |")
    mean = lambda key: statistics.mean(r[key] for r in rows)  # noqa: E731
    median = lambda key: statistics.median(r[key] for r in rows)  # noqa: E731
    print(f"| median (times), mean (accuracies) | {median('transfer_s'):.1f} s | {median('scratch_s'):.1f} s | {median('finetune_s'):.1f} s "
          f"| {pct(mean('transfer_new'))} / {pct(mean('scratch_new'))} / {pct(mean('finetuned_new'))} | {pct(mean('transfer_cv'))} / {pct(mean('scratch_cv'))} "
          f"| {pct(mean('frozen_fold'))} / {pct(mean('finetuned_fold'))} | {median('latency_median_ms'):.0f} / {median('latency_p90_ms'):.0f} ms; "
          f"{median('latency3_median_ms'):.0f} / {median('latency3_p90_ms'):.0f} ms |")
    for a, b in (("transfer", "scratch"), ("finetuned", "transfer")):
        gaps = [100 * (r[f"{a}_new"] - r[f"{b}_new"]) for r in rows]
        print(f"\n{a} minus {b} on new pictures: {', '.join(f'{g:+.1f}' for g in gaps)} pp (mean {statistics.mean(gaps):+.1f} pp)")
    print(f"\nwall time {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
