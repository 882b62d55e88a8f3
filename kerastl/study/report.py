"""report.md and the study's figures, built from results.json alone (plus the best run's test
predictions and the test images for the two figures that show digits)."""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

from kerastl import plots
from kerastl.data.datasets import DATASETS
from kerastl.modes import BACKBONE_MODES
from kerastl.sizing import SMALL_DATA_IMAGES
from kerastl.files import atomic_write_text
from kerastl.study import results as results_module
from kerastl.study import why
from kerastl.study.plan import ALL, CONTENDERS, FASHION_PRETRAIN, LESSON
from kerastl.text import percent

REPORT = "report.md"
FIGURES = {
    "epochs": "val_accuracy_by_epoch.png",
    "seconds": "val_accuracy_by_seconds.png",
    "efficiency": "data_efficiency.png",
    "confusion": "confusion_best.png",
    "mistakes": "misclassified_best.png",
}
Row = dict[str, Any]


# Choosing rows ----------------------------------------------------------------------------------


def _ok(rows: list[Row]) -> list[Row]:
    return [r for r in rows if r["status"] == "ok" and r["contender"] != FASHION_PRETRAIN]


def _order(contender: str) -> int:
    return list(CONTENDERS).index(contender) if contender in CONTENDERS else len(CONTENDERS)


def _size_rank(size) -> float:
    return float("inf") if size == ALL else float(size)


def curve_rows(rows: list[Row]) -> tuple[list[Row], Any]:
    """For the learning-curve figures and the lesson table: seed 0 at the largest size trained (all images if any)."""
    ok = _ok(rows)
    if not ok:
        return [], None
    size = max((r["per_class"] for r in ok), key=_size_rank)
    chosen = [r for r in ok if r["per_class"] == size and r["seed"] == min(x["seed"] for x in ok if x["per_class"] == size and x["contender"] == r["contender"])]
    return sorted(chosen, key=lambda r: _order(r["contender"])), size


def best_row(rows: list[Row]) -> Row | None:
    chosen, _ = curve_rows(rows)
    return max(chosen, key=lambda r: r["test_accuracy"], default=None)


def labelled_per_class(r: Row) -> float:
    """The x of the data-efficiency figure: labelled images per class (validation included)."""
    if r["per_class"] != ALL:
        return float(r["per_class"])
    return round((r["train_images"] + r["validation_images"]) / 10)


def efficiency_table(rows: list[Row]) -> tuple[list[str], list[Any], dict[tuple[str, Any], list[float]]]:
    """(contenders, sizes, {(contender, size): [test accuracy per seed]}) of the successful runs."""
    ok = _ok(rows)
    contenders = sorted({r["contender"] for r in ok}, key=_order)
    sizes = sorted({r["per_class"] for r in ok}, key=_size_rank)
    table: dict[tuple[str, Any], list[float]] = {}
    for r in ok:
        table.setdefault((r["contender"], r["per_class"]), []).append(r["test_accuracy"])
    return contenders, sizes, table


def _stdev(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


# Formatting -------------------------------------------------------------------------------------


def mean_spread(values: list[float]) -> str:
    if not values:
        return "—"
    if len(values) == 1:
        return f"{100 * values[0]:.1f}"
    return f"{100 * statistics.mean(values):.1f} ± {100 * statistics.stdev(values):.1f} (n={len(values)})"


def seconds(value: float | None) -> str:
    return "—" if value is None else (f"{value:.0f} s" if value >= 10 else f"{value:.1f} s")


def _size_label(size) -> str:
    return "all images" if size == ALL else f"{size} per class"


def _labels(rows: list[Row]) -> dict[str, str]:
    return {r["contender"]: r["label"] for r in rows}


def _colors(rows: list[Row]) -> dict[str, str]:
    """One colour per contender, the same in every figure."""
    return {r["label"]: f"C{_order(r['contender'])}" for r in rows}


# Figures ----------------------------------------------------------------------------------------


def draw_figures(study_dir: Path, rows: list[Row], log=print) -> dict[str, str]:
    """The five figures; returns {key: file name} of those drawn."""
    drawn: dict[str, str] = {}
    chosen, size = curve_rows(rows)
    if chosen:
        where = _size_label(size)
        epochs = {r["label"]: [(i + 1, v) for i, v in enumerate(r["val_accuracy"]) if v is not None] for r in chosen}
        plots.accuracy_lines(
            epochs, study_dir / FIGURES["epochs"], f"Validation accuracy per epoch ({where}, seed 0)", "epoch (all stages)",
            colors=_colors(chosen),
        )
        drawn["epochs"] = FIGURES["epochs"]
        timed = {r["label"]: [(t, v) for t, v in zip(r["val_seconds"], r["val_accuracy"]) if v is not None] for r in chosen}
        plots.accuracy_lines(
            timed, study_dir / FIGURES["seconds"], f"Validation accuracy against wall-clock time ({where}, seed 0)",
            "seconds since the run started (log scale)", log_x=True, colors=_colors(chosen),
        )
        drawn["seconds"] = FIGURES["seconds"]
    contenders, sizes, table = efficiency_table(rows)
    if sizes:
        labels = _labels(_ok(rows))
        x_of = {s: next(labelled_per_class(r) for r in _ok(rows) if r["per_class"] == s) for s in sizes}
        curves = {labels[c]: [(x_of[s], table[(c, s)]) for s in sizes if (c, s) in table] for c in contenders}
        ticks = {x_of[s]: (f"all\n(~{x_of[s]:,.0f})" if s == ALL else f"{s:,}") for s in sizes}
        plots.data_efficiency(
            curves, study_dir / FIGURES["efficiency"],
            "Test accuracy against labelled images per class\n(line: mean over seeds; bar: min to max; dots: seeds)", ticks,
            colors=_colors(_ok(rows)),
        )
        drawn["efficiency"] = FIGURES["efficiency"]
    best = best_row(rows)
    if best is not None:
        try:
            drawn.update(_best_model_figures(study_dir, best))
        except Exception as exc:  # missing predictions must not cost the report
            from kerastl.errors import first_line

            log(f"figures of the best model not drawn ({first_line(exc)})")
    return drawn


def _best_model_figures(study_dir: Path, best: Row) -> dict[str, str]:
    from kerastl.data import load_arrays
    from kerastl.evaluation import load_predictions

    predictions = load_predictions(study_dir / best["run"])
    title = f"Best model: {best['label']}, {_size_label(best['per_class'])}"
    plots.confusion(predictions["y_true"], predictions["y_pred"], study_dir / FIGURES["confusion"], title)
    x_test = load_arrays(best["dataset"], log=lambda _: None)["x_test"][: len(predictions["y_true"])]
    plots.misclassified_grid(x_test, predictions["y_true"], predictions["y_pred"], predictions["confidence"], study_dir / FIGURES["mistakes"], title)
    return {"confusion": FIGURES["confusion"], "mistakes": FIGURES["mistakes"]}


# The report -------------------------------------------------------------------------------------


def lesson_table(rows: list[Row]) -> list[str]:
    chosen, size = curve_rows(rows)
    if not chosen:
        return ["No run finished."]
    lines = [
        f"Measured on {_size_label(size)} (seed 0). The lesson's numbers are in the columns marked *lesson*; "
        "epochs count every stage (a fine-tuning run's head epoch is epoch 1); times are from the start of the run "
        "(data loading and model building included).",
        "",
        "| model | epochs to 95 % (*lesson*) | epochs to 95 % | final accuracy (*lesson*) | test accuracy | wall time | time to 95 % "
        "| trainable parameters | training images/s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in chosen:
        lesson_row = CONTENDERS[r["contender"]].lesson
        lesson_epochs, lesson_acc = LESSON.get(lesson_row, ("", ""))
        name = r["label"] + (f" (lesson: {lesson_row})" if lesson_row and lesson_row != r["label"] else "")
        to95 = r["epochs_to_95"] if r["epochs_to_95"] is not None else f"not reached in {r['epochs']}"
        lines.append(
            f"| {name} | {lesson_epochs or '—'} | {to95} | {lesson_acc or '—'} | {percent(r['test_accuracy'])} | {seconds(r['wall_seconds'])} "
            f"| {seconds(r['seconds_to_95'])} | {r['trainable_parameters']:,} | {r['images_per_second'] or 0:,.0f} |"
        )
    return lines


def data_efficiency_lines(rows: list[Row]) -> list[str]:
    contenders, sizes, table = efficiency_table(rows)
    if not sizes:
        return ["No run finished."]
    labels = _labels(_ok(rows))
    header = ["model", *[("all" if s == ALL else f"{s}") for s in sizes]]
    lines = [
        "Test accuracy (%) by labelled training images per class (validation drawn from the same budget); "
        "mean ± standard deviation over seeds where more than one seed ran.",
        "",
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---" for _ in header) + " |",
    ]
    for c in contenders:
        lines.append("| " + " | ".join([labels[c], *[mean_spread(table.get((c, s), [])) for s in sizes]]) + " |")
    return lines


def findings(rows: list[Row]) -> list[str]:
    """Plain sentences read off the numbers, including where transfer did not win."""
    chosen, size = curve_rows(rows)
    return _lesson_size_findings(chosen, size) + _small_data_findings(rows, size) + _pretraining_findings(rows)


def _lesson_size_findings(chosen: list[Row], size) -> list[str]:
    """Speed to 95 %, epochs against the lesson's, the best model, transfer against the CNN."""
    if not chosen:
        return []
    out = []
    by = {r["contender"]: r for r in chosen}
    fastest = [r for r in chosen if r["seconds_to_95"] is not None]
    if fastest:
        first = min(fastest, key=lambda r: r["seconds_to_95"])
        out.append(f"On {_size_label(size)}, {first['label']} reached 95 % validation accuracy soonest in wall-clock time "
                   f"({seconds(first['seconds_to_95'])}, epoch {first['epochs_to_95']}).")
    epochs = [(r, LESSON.get(CONTENDERS[r["contender"]].lesson or "", (None,))[0]) for r in chosen]
    out.append("Epochs to 95 % validation accuracy: "
               + ", ".join(f"{r['label']} {r['epochs_to_95'] or 'never'}" + (f" (lesson: {lesson})" if lesson else "") for r, lesson in epochs)
               + ".")
    top = max(chosen, key=lambda r: r["test_accuracy"])
    out.append(f"The best test accuracy on {_size_label(size)} was {percent(top['test_accuracy'])}, by {top['label']}.")
    if "finetune" in by and "cnn" in by:
        ft, cnn = by["finetune"], by["cnn"]
        diff = 100 * (ft["test_accuracy"] - cnn["test_accuracy"])
        out.append(f"Fine-tuned ImageNet transfer {'beat' if diff > 0 else 'did not beat'} the CNN from scratch on {_size_label(size)}: "
                   f"{percent(ft['test_accuracy'])} against {percent(cnn['test_accuracy'])} ({diff:+.2f} pp), "
                   f"in {seconds(ft['wall_seconds'])} against {seconds(cnn['wall_seconds'])}.")
    return out


def compare_on_small_data(rows: list[Row], a: str = "finetune", b: str = "cnn") -> list[dict[str, Any]]:
    """Contender `a` against `b` at every per-class size both ran: means, difference (pp), the
    noise (the larger of the spread over seeds and twice the test-set sampling error of the
    difference), and the verdict: ahead, behind or level."""
    contenders, sizes, table = efficiency_table(rows)
    if a not in contenders or b not in contenders:
        return []
    out = []
    for s in sizes:
        if s == ALL or (a, s) not in table or (b, s) not in table:
            continue
        mean_a, mean_b = statistics.mean(table[(a, s)]), statistics.mean(table[(b, s)])
        diff = 100 * (mean_a - mean_b)
        n = next(r["test_images"] for r in _ok(rows) if r["per_class"] == s)
        sampling = 200 * math.sqrt((mean_a * (1 - mean_a) + mean_b * (1 - mean_b)) / n)
        noise = max(100 * max(_stdev(table[(a, s)]), _stdev(table[(b, s)])), sampling)
        verdict = "level" if abs(diff) <= noise else ("ahead" if diff > 0 else "behind")
        out.append({"size": s, "a": mean_a, "b": mean_b, "diff_pp": diff, "noise_pp": noise, "verdict": verdict})
    return out


def _small_data_findings(rows: list[Row], lesson_size) -> list[str]:
    comparisons = compare_on_small_data(rows)
    out = []
    for c in comparisons:
        if c["size"] != lesson_size:  # the size of the lesson table was said above
            note = f", within the noise of {c['noise_pp']:.1f} pp: seed spread or test-set sampling" if c["verdict"] == "level" else ""
            out.append(f"With {c['size']} labelled images per class, fine-tuned ImageNet transfer scored {percent(c['a'], 1)} "
                       f"and the CNN from scratch {percent(c['b'], 1)} ({c['diff_pp']:+.1f} pp{note}).")
    said = [f"{v} at {', '.join(str(c['size']) for c in comparisons if c['verdict'] == v)} per class"
            for v in ("ahead", "behind", "level") if any(c["verdict"] == v for c in comparisons)]
    if said:
        out.append("Against the CNN from scratch on small data, transfer was " + "; ".join(said).replace("level", "level (within the noise)") + ".")
    return out


def _pretraining_findings(rows: list[Row]) -> list[str]:
    """The same architecture from Fashion-MNIST weights against random weights, per size."""
    contenders, sizes, table = efficiency_table(rows)
    mean = lambda c, s: statistics.mean(table[(c, s)]) if (c, s) in table else None  # noqa: E731
    out = []
    for s in sizes if "fashion" in contenders and "scratch" in contenders else []:
        if mean("fashion", s) is not None and mean("scratch", s) is not None:
            gain = 100 * (mean("fashion", s) - mean("scratch", s))
            line = (f"Same architecture, {_size_label(s)}: starting from Fashion-MNIST weights scored {percent(mean('fashion', s), 1)}, "
                    f"from random weights {percent(mean('scratch', s), 1)} ({gain:+.1f} pp)")
            if mean("finetune", s) is not None:
                line += f"; ImageNet fine-tuning (other architecture) {percent(mean('finetune', s), 1)}"
            out.append(line + ".")
    return out


def _px(b: dict) -> str:
    if not b.get("img_size"):
        return f"{b['label']} at its native size"
    small = f" ({b['small_data_img_size']} px with at most {SMALL_DATA_IMAGES:,} training images)" if b.get("small_data_img_size") else ""
    return f"{b['label']} at {b['img_size']} px{small}"


def backbone_note(study: dict) -> list[str]:
    imagenet, domain = study["imagenet_backbone"], study["domain_backbone"]
    return [
        f"Backbones: the ImageNet contenders (frozen features; fine-tuned) use {_px(imagenet)}, whose ImageNet weights install "
        "with kerastl (the lesson's ResNet-18 ImageNet weights cannot be downloaded offline). The random-init and Fashion-MNIST "
        f"contenders share {_px(domain)}, the `--mode pretrain` default, so those two differ only in their starting weights "
        "(random, or pretrained on Fashion-MNIST in this study). Batch norm learns in the random-init run, as in `--mode pretrain`, "
        "and stays in inference mode while fine-tuning. ImageNet against Fashion-MNIST also compares two architectures: "
        "read it as two recipes, not as domain distance alone. (EfficientNet-Lite0 from scratch was not used for those two: "
        "3 epochs on 10,000 Fashion-MNIST images once scored 9.4 %, chance.)",
    ]


def labels_section(dataset: str) -> list[str]:
    """What `kerastl.inspect` finds in the dataset's test labels: benchmark labels are not ground truth."""
    note = DATASETS[dataset].test_labels if dataset in DATASETS else ""
    return ["## The test labels are not ground truth", "", note, ""] if note else []


def build(study_dir: Path, command: str, log=print) -> Path:
    """Draw the figures and write report.md from results.json; returns the report's path."""
    data = results_module.read(study_dir)
    study, rows = data["study"], data["runs"]
    drawn = draw_figures(study_dir, rows, log)
    failed = [r for r in rows if r["status"] != "ok"]
    pretrain = next((r for r in rows if r["contender"] == FASHION_PRETRAIN and r["status"] == "ok"), None)
    m = study["machine"]
    lines = [
        "# MLP vs CNN vs transfer learning on MNIST: the measured comparison",
        "",
        f"Command: `{command}`  ",
        f"Budget: **{study['budget']}**; contenders: {', '.join(study['contenders'])}; labelled images per class: "
        f"{', '.join(map(str, study['sizes']))}; {study['seeds']} seed(s) for sizes up to {study['many_seeds_up_to']} per class, "
        "seed 0 above.  ",
        f"Runs: {len(rows)} ({len(rows) - len(failed)} finished, {len(failed)} failed); total training wall time "
        f"{seconds(sum(r['wall_seconds'] or 0 for r in rows))}.",
        "",
    ]
    if study.get("reductions"):
        lines += [f"What this study leaves out compared with `--budget full` on a GPU (the {study['budget']} budget"
                  + (", made to finish in about 30 minutes on a 2-core CPU" if study["budget"] == "quick" else "") + "):", ""]
        lines += [f"- {text}" for text in study["reductions"]] + [""]
    if any(r["mode"] in BACKBONE_MODES for r in rows):
        lines += backbone_note(study) + [""]
    if pretrain:
        lines += [
            f"The Fashion-MNIST backbone (run `{pretrain['run']}`) was pretrained on {pretrain['train_images']:,} images in "
            f"{seconds(pretrain['wall_seconds'])} (Fashion-MNIST test accuracy {percent(pretrain['test_accuracy'])}); that time is not "
            "included in the fine-tuning runs' times.",
            "",
        ]
    lines += ["## The lesson's table, measured", ""] + lesson_table(rows) + [""]
    lines += ["## Data efficiency", ""] + data_efficiency_lines(rows) + [""]
    lines += ["## What the numbers show", ""] + ([f"- {s}" for s in findings(rows)] or ["No run finished."]) + [""]
    lines += labels_section(rows[0]["dataset"] if rows else "mnist")
    lines += why.section(study_dir)  # from why/probe.csv, when the study explained its ImageNet backbone
    if failed:
        lines += ["## Failed runs", ""] + [f"- `{r['run']}`: {r['reason']}" for r in failed] + [""]
    captions = {
        "epochs": "Validation accuracy per epoch; the dashed line is 95 %.",
        "seconds": "The same curves against wall-clock seconds since each run started: the fair comparison of speed.",
        "efficiency": "Test accuracy against labelled images per class (log scale).",
        "confusion": "Confusion matrix of the best model on the largest data size (each row sums to 100 %).",
        "mistakes": "The best model's most confident mistakes on the test set.",
    }
    lines += plots.markdown_figures(captions, drawn)
    lines += [
        "## Machine",
        "",
        f"{m['platform']}, {m['processor']}, {m['cpu_count']} CPU cores; Keras backend **{m['backend']}** on {m['device']}; "
        + ", ".join(f"{k} {v}" for k, v in m["versions"].items()) + ".",
        "",
        "Every number above comes from `results.json`, which is read from the run folders' `metrics.json`, `history.csv` "
        "and `config.yaml`; each run folder also holds its own `curves.png` and `confusion.png`.",
        "",
    ]
    path = Path(study_dir) / REPORT
    atomic_write_text(path, "\n".join(lines))
    return path

